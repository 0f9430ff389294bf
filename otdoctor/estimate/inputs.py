"""What `otdoctor estimate` is asked: the request, its checks, and what it reads from a config
(concepts with their image sizes, action schedules). Impossible numbers become one-line usage errors."""

from __future__ import annotations

import datetime as _dt
import math
import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

from otdoctor.data import load_table
from otdoctor.dataset.listing import list_concept
from otdoctor.errors import UserError
from otdoctor.estimate import arithmetic as est

if TYPE_CHECKING:
    from otdoctor.onetrainer.config import TrainConfig

UNITS = ("NEVER", "EPOCH", "STEP", "SECOND", "MINUTE", "HOUR")
STRATEGIES = ("REPEATS", "SAMPLES")


@dataclass
class EstimateRequest:
    images: int | None = None
    reg: int | None = None
    balancing: float | None = None
    want: int | None = None
    strategy: str = "REPEATS"
    epochs: int | None = None
    batch_size: int | None = None
    its: float | None = None
    from_smoke: bool = False
    gpu: str | None = None
    config: Path | None = None
    ot_dir: Path | None = None
    model: str | None = None
    resolution: str | None = None
    sample_every: float | None = None
    sample_unit: str | None = None
    save_every: float | None = None
    save_unit: str | None = None
    backup_every: float | None = None
    backup_unit: str | None = None
    load_s: float | None = None
    caching_rate: float | None = None
    write_mbps: float | None = None
    sample_s: float | None = None
    save_gb: float | None = None
    backup_before_save: bool | None = None
    latent_caching: bool | None = None
    start: _dt.datetime | None = None

    def option(self, name: str) -> Any:
        """The value of option `name` ("--batch-size" is `batch_size`)."""
        return getattr(self, name[2:].replace("-", "_"))


# Checking the request ----------------------------------------------------------------------------
# Checked in this order; the first problem found is the one reported.
_LIMITS = load_table("gpu_speed.toml")["limits"]
_UNIT_OPTIONS = ("--sample-unit", "--save-unit", "--backup-unit")


@dataclass(frozen=True)
class _Bound:
    """Options that take a number in [low, high]."""

    names: tuple[str, ...]
    low: float
    high: float
    low_text: str | None  # "0 or more", "at least 1"; None: the message gives the range
    unit: str = ""


def _bounds() -> tuple[_Bound, ...]:
    lim = _LIMITS
    return (
        _Bound(("--images", "--reg", "--want"), 0, lim["images"], "0 or more"),
        _Bound(("--images",), 1, lim["images"], "at least 1: a run needs training images"),
        _Bound(("--epochs",), 0, lim["epochs"], "0 or more"),
        _Bound(("--batch-size",), 1, lim["batch_size"], "1 or more"),
        _Bound(("--its",), lim["its"][0], lim["its"][1], None, " it/s (steps per second)"),
        _Bound(("--caching-rate",), lim["rate"][0], lim["rate"][1], None, " images per second"),
        _Bound(("--write-mbps",), lim["rate"][0], lim["rate"][1], None, " MB/s"),
        _Bound(("--balancing",), 0, lim["balancing"], "0 or more"),
        _Bound(("--sample-every", "--save-every", "--backup-every"), 0, lim["interval"], "0 or more"),
        _Bound(("--load-s", "--sample-s"), 0, lim["seconds"], "0 or more"),
        _Bound(("--save-gb",), 0, lim["save_gb"], "0 or more"),
    )


def _number_problems(req: EstimateRequest) -> Iterator[str]:
    for bound in _bounds():
        for name in bound.names:
            value = req.option(name)
            if value is None:
                continue
            if bound.low_text is None and not bound.low <= value <= bound.high:  # NaN too
                yield f"{name} must be between {bound.low:g} and {bound.high:g}{bound.unit}, got {value:g}"
            elif not math.isfinite(value) or value < bound.low:
                yield f"{name} must be {bound.low_text}, got {value:g}"
            elif value > bound.high:
                yield f"{name} must be at most {bound.high:g}: no real run has {value:g}"
    if req.strategy.upper() not in STRATEGIES:
        yield f"--strategy is repeats or samples, got {req.strategy!r}"


def _unit_problems(req: EstimateRequest) -> Iterator[str]:
    for name in _UNIT_OPTIONS:
        unit = req.option(name)
        if unit is not None and unit.upper() not in UNITS:
            yield f"{name} is one of {', '.join(UNITS)}, got {unit!r}"


def check_request(req: EstimateRequest) -> None:
    """Refuse impossible numbers up front: one line naming the option, not a crash or a negative time."""
    problem = next(chain(_number_problems(req), _unit_problems(req)), None)
    if problem is not None:
        raise UserError(problem, exit_code=2)
    if req.resolution is not None:
        check_resolution(req.resolution, "--resolution")


def check_resolution(text: str, where: str) -> None:
    from otdoctor.onetrainer.config_keys import resolution_problem

    if resolution_problem(text) is not None:
        raise UserError(
            f"{where} wants pixels like 1024, 768,1024 or 832x1216, each 64..16384: got {text!r}", exit_code=2
        )


# Reading the config ------------------------------------------------------------------------------
def start_time(value: str | None) -> _dt.datetime | None:
    """--start: HH:MM today, or an ISO date-time; local time unless it names its zone."""
    if value is None:
        return None
    try:
        t = _dt.datetime.fromisoformat(value)
    except ValueError:
        try:
            hm = _dt.datetime.strptime(value, "%H:%M").time()
        except ValueError:
            raise UserError(f"--start wants HH:MM or an ISO date-time, got {value!r}", exit_code=2) from None
        t = _dt.datetime.combine(_dt.date.today(), hm)
    years = int(_LIMITS["run_years"])
    now = _dt.datetime.now(_dt.timezone.utc)
    try:
        t = t if t.tzinfo else t.astimezone()
        off_by = abs(t - now)
    except (OverflowError, OSError, ValueError):  # year 1 or 9999: no local time for it
        off_by = _dt.timedelta.max
    if off_by > _dt.timedelta(days=365.25 * years):
        raise UserError(f"--start {value} is more than {years} years from now: not a start of a run", exit_code=2)
    return t


def read_log(source: str) -> str:
    """--from-log: the end of a running OneTrainer's output, from a regular file or (`-`) stdin.

    Only the last `log_tail_bytes` are read: the newest bars are at the end, and a log can be
    gigabytes. A FIFO or device (`/dev/zero`) is refused: it may block or never end.
    """
    cap = int(_LIMITS["log_tail_bytes"])
    if source == "-":
        kept = ""
        while chunk := sys.stdin.read(1 << 20):
            kept = (kept + chunk)[-cap:]
        return kept
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK)
    except (OSError, ValueError) as exc:
        raise UserError(
            f"cannot read --from-log {source}: {getattr(exc, 'strerror', None) or exc}", exit_code=2
        ) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise UserError(f"--from-log {source} is not a regular file (a log file, or - for stdin)", exit_code=2)
    with os.fdopen(fd, "rb") as f:
        f.seek(max(0, info.st_size - cap))
        return f.read(cap).decode("utf-8", errors="replace")


def image_sizes(paths: list[Path]) -> tuple[tuple[int, int], ...] | None:
    """(width, height) of each image from its header (Pillow opens lazily: no pixel is decoded)."""
    from PIL import Image

    sizes = []
    for p in paths:
        try:
            with Image.open(p) as im:
                sizes.append((int(im.size[0]), int(im.size[1])))
        except Exception:  # an unreadable image: OneTrainer skips or fails on it; the sizes are unknown
            return None
    return tuple(sizes)


def concepts_from_config(cfg: TrainConfig, ot_dir: Path | None, notes: list[str]) -> list[est.ConceptPlan]:
    """Each concept with its images (the listing the dataset checks use) and their sizes."""
    plans = []
    for c in cfg.concepts:
        path = cfg.resolve(c.path, ot_dir)
        counted = c.enabled and c.type != "VALIDATION"
        images = list(list_concept(path, c.include_subdirectories).images) if c.enabled else []
        if counted and not path.is_dir():
            notes.append(f"concept {c.name}: folder {path} not found; counted as 0 images")
        sizes = image_sizes(images) if images and counted else ()
        plans.append(
            est.ConceptPlan(
                name=c.name,
                n_images=len(images),
                balancing=c.balancing,
                strategy=c.balancing_strategy,
                enabled=c.enabled,
                type=c.type,
                image_variations=c.image_variations,
                image_sizes=sizes,
            )
        )
    _refuse_no_images(cfg, plans)
    relative = cfg.relative_paths_note()
    if relative:
        notes.append(relative)
    return plans


def _refuse_no_images(cfg: TrainConfig, plans: list[est.ConceptPlan]) -> None:
    """No image in any counted concept: a run of 0 steps, which OneTrainer stops at; no time to give."""
    counted = [c for c in cfg.concepts if c.enabled and c.type != "VALIDATION"]
    if not counted or any(p.n_images for p in plans if p.enabled and p.type != "VALIDATION"):
        return
    folders = ", ".join(str(cfg.resolve(c.path)) if c.path else f"{c.name} (no path set)" for c in counted)
    raise UserError(
        f"no images found in {folders}: the run would have 0 steps",
        exit_code=2,
        hint=cfg.relative_paths_note() or "correct the concept paths in the Concepts tab, or pass --images N",
    )


def schedule(
    every: float | None, unit: str | None, cfg: TrainConfig | None, key: str, unit_key: str, default: tuple[float, str]
) -> est.Schedule:
    """An action's schedule: from the options, else from the config, else OneTrainer's default."""
    if every is not None or unit is not None:
        return est.Schedule(every if every is not None else default[0], (unit or default[1]).upper())
    if cfg is not None and (key in cfg.raw or unit_key in cfg.raw):
        skip_key = key.replace("_after", "").replace("_every", "") + "_skip_first"
        interval = cfg.float_value(key)
        return est.Schedule(
            default[0] if interval is None else interval,
            str(cfg.raw.get(unit_key, default[1])).upper(),
            cfg.int_value(skip_key),
        )
    return est.Schedule(*default)
