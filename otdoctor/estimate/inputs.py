"""What `otdoctor estimate` is asked: the request, its checks, and what it reads from a config
(concepts with their image sizes, action schedules). Impossible numbers become one-line usage errors."""

from __future__ import annotations

import datetime as _dt
import math
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from otdoctor.dataset.listing import list_concept
from otdoctor.errors import UserError
from otdoctor.estimate import arithmetic as est

if TYPE_CHECKING:
    from otdoctor.onetrainer.config import TrainConfig

T = TypeVar("T")
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
_COUNTS = ("--images", "--reg", "--want")
_RATES = ("--caching-rate", "--write-mbps")
_AMOUNTS = ("--balancing", "--sample-every", "--save-every", "--backup-every", "--load-s", "--sample-s", "--save-gb")
_UNIT_OPTIONS = ("--sample-unit", "--save-unit", "--backup-unit")


def _finite(value: float, low: float, inclusive: bool) -> bool:
    return math.isfinite(value) and (value >= low if inclusive else value > low)


def _count_problems(req: EstimateRequest) -> Iterator[str]:
    for name in _COUNTS:
        value = req.option(name)
        if value is not None and value < 0:
            yield f"{name} must be 0 or more, got {value:g}"
    if req.images is not None and req.images == 0:
        yield "--images must be at least 1: a run needs training images"
    if req.epochs is not None and req.epochs < 0:
        yield f"--epochs must be 0 or more, got {req.epochs}"
    if req.batch_size is not None and req.batch_size < 1:
        yield f"--batch-size must be 1 or more, got {req.batch_size}"
    if req.strategy.upper() not in STRATEGIES:
        yield f"--strategy is repeats or samples, got {req.strategy!r}"


def _number_problems(req: EstimateRequest) -> Iterator[str]:
    if req.its is not None and not _finite(req.its, 0, inclusive=False):
        yield f"--its must be a positive number of steps per second, got {req.its:g}"
    for name in _RATES:
        value = req.option(name)
        if value is not None and not _finite(value, 0, inclusive=False):
            yield f"{name} must be a positive number, got {value:g}"
    for name in _AMOUNTS:
        value = req.option(name)
        if value is not None and not _finite(value, 0, inclusive=True):
            yield f"{name} must be 0 or more, got {value:g}"


def _unit_problems(req: EstimateRequest) -> Iterator[str]:
    for name in _UNIT_OPTIONS:
        unit = req.option(name)
        if unit is not None and unit.upper() not in UNITS:
            yield f"{name} is one of {', '.join(UNITS)}, got {unit!r}"


def check_request(req: EstimateRequest) -> None:
    """Refuse impossible numbers up front: one line naming the option, not a crash or a negative time."""
    problem = next(chain(_count_problems(req), _number_problems(req), _unit_problems(req)), None)
    if problem is not None:
        raise UserError(problem, exit_code=2)
    if req.resolution is not None:
        check_resolution(req.resolution, "--resolution")


def check_resolution(text: str, where: str) -> None:
    try:
        targets, fixed = est.parse_resolution(text)
    except ValueError:
        targets, fixed = [], None
    if not all(v > 0 for v in [*targets, *(fixed or ())]) or not (targets or fixed):
        raise UserError(f"{where} wants pixels like 1024, 768,1024 or 832x1216, got {text!r}", exit_code=2)


def number(kind: Callable[[Any], T], value: Any, where: str) -> T:
    """int/float of a config value; a hand-edited "ten" is a one-line error, not a crash."""
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise UserError(
            f"{where} is {value!r}, not a number",
            exit_code=2,
            hint="correct it in the config, or export the config again from the UI",
        ) from None


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
    return t if t.tzinfo else t.astimezone()


def read_log(source: str) -> str:
    """--from-log: a running OneTrainer's output, from a file or (`-`) stdin."""
    if source == "-":
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UserError(f"cannot read --from-log {source}: {exc.strerror or exc}", exit_code=2) from None


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


def _concept_folder(raw: Mapping[str, Any], cfg: TrainConfig, ot_dir: Path | None) -> Path:
    path = Path(str(raw.get("path", ""))).expanduser()
    if path.is_absolute():
        return path
    base = ot_dir if ot_dir is not None else (cfg.path.parent if cfg.path else Path.cwd())
    return base / path


def concepts_from_config(cfg: TrainConfig, ot_dir: Path | None, notes: list[str]) -> list[est.ConceptPlan]:
    plans = []
    for c in cfg.concepts:
        raw = c.raw
        path = _concept_folder(raw, cfg, ot_dir)
        enabled = bool(raw.get("enabled", True))
        ctype = str(raw.get("type", "STANDARD"))
        # The same listing the dataset checks use: OneTrainer's image extensions, masks and captions left out.
        images = list(list_concept(path, bool(raw.get("include_subdirectories", False))).images) if enabled else []
        if enabled and ctype != "VALIDATION" and not path.is_dir():
            notes.append(f"concept {c.name}: folder {path} not found; counted as 0 images")
        sizes = image_sizes(images) if images and enabled and ctype != "VALIDATION" else ()
        plans.append(
            est.ConceptPlan(
                name=c.name,
                n_images=len(images),
                balancing=number(float, raw.get("balancing", 1.0), f"concept {c.name}: balancing"),
                strategy=str(raw.get("balancing_strategy", "REPEATS")),
                enabled=enabled,
                type=ctype,
                image_variations=number(
                    int, raw.get("image_variations", 1) or 1, f"concept {c.name}: image_variations"
                ),
                image_sizes=sizes,
            )
        )
    return plans


def schedule(
    every: float | None, unit: str | None, cfg: TrainConfig | None, key: str, unit_key: str, default: tuple[float, str]
) -> est.Schedule:
    """An action's schedule: from the options, else from the config, else OneTrainer's default."""
    if every is not None or unit is not None:
        return est.Schedule(every if every is not None else default[0], (unit or default[1]).upper())
    if cfg is not None:
        raw = cfg.raw
        if key in raw or unit_key in raw:
            skip_key = key.replace("_after", "").replace("_every", "") + "_skip_first"
            return est.Schedule(
                number(float, raw.get(key, default[0]) or 0, f"config {key}"),
                str(raw.get(unit_key, default[1])).upper(),
                number(int, raw.get(skip_key, 0) or 0, f"config {skip_key}"),
            )
    return est.Schedule(*default)
