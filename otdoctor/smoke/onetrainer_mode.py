"""OneTrainer mode: the checkout's own `scripts/train.py`, from its venv, on a tiny temporary dataset.

The run uses a temporary config (the user's, or the guide's SDXL settings) and `--config-value`
overrides: one epoch, no sampling/backups/saves/tensorboard, workspace/cache/output in a temporary
folder. It is stopped with SIGINT after the measured steps, like a user pressing Ctrl-C.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otdoctor.data import data_file
from otdoctor.errors import UserError
from otdoctor.estimate.progress_bars import BarStream, BarUpdate
from otdoctor.onetrainer.commands import train_argv
from otdoctor.probe.child import Child, terminate_as_interrupt
from otdoctor.probe.nvml import gpu_name_and_driver
from otdoctor.smoke.folders import run_folder
from otdoctor.smoke.meter import Meter, VramPoller
from otdoctor.smoke.onetrainer_phases import Event, RssPoller, overheads
from otdoctor.smoke.results import SmokeResult
from otdoctor.smoke.run import (
    DTYPES,
    MODEL_TYPES,
    Progress,
    SmokeOptions,
    explain_failure,
    model_key_for,
    noop,
    short_dtype,
)

IMAGE_EXTENSIONS = (".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".avif")
OUTPUT_TAIL_CHARS = 200_000
# Whatever the user's config says: nothing sampled, backed up or saved, no earlier run continued.
_NOTHING_KEPT = {
    "sample_after_unit": "NEVER",
    "backup_after_unit": "NEVER",
    "save_every_unit": "NEVER",
    "backup_before_save": "false",
    "tensorboard": "false",
    "continue_last_backup": "false",
    "clear_cache_before_training": "true",
    "validation": "false",
}


def base_model_present(name: str, ot_dir: Path) -> bool:
    """Is the base model on disk (a file, a diffusers folder, or a Hugging Face cache entry)?"""
    if not name:
        return False
    p = Path(name).expanduser()
    if not p.is_absolute():
        p = ot_dir / p
    if p.exists():
        return True
    if "/" in name and not name.startswith((".", "/", "~")) and name.count("/") == 1:
        hub = Path(
            os.environ.get("HF_HUB_CACHE")
            or Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface") / "hub"
        )
        return (hub / ("models--" + name.replace("/", "--"))).is_dir()
    return False


def _dataset_images(concept_path: Path, limit: int) -> list[Path]:
    if not concept_path.is_dir():
        return []
    files = sorted(
        p
        for p in concept_path.iterdir()
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.stem.endswith(("-masklabel", "-condlabel"))
    )
    return files[:limit]


def _copy_images(folder: Path, count: int, picked: list[Path]) -> None:
    for i in range(count):  # repeat the user's images when the concept has fewer
        img = picked[i % len(picked)]
        stem = f"{i:04d}-{img.stem}"
        shutil.copyfile(img, folder / f"{stem}{img.suffix}")
        for extra, name in (
            (img.with_suffix(".txt"), f"{stem}.txt"),
            (img.with_name(img.stem + "-masklabel.png"), f"{stem}-masklabel.png"),
        ):
            if extra.is_file():
                shutil.copyfile(extra, folder / name)
        if not (folder / f"{stem}.txt").exists():
            (folder / f"{stem}.txt").write_text("a photo", encoding="utf-8")


def make_dataset(folder: Path, count: int, resolution: int, source: Path | None) -> str:
    """`count` images in `folder`: the first of the user's concept (with captions/masks), or generated."""
    folder.mkdir(parents=True, exist_ok=True)
    picked = _dataset_images(source, count) if source else []
    if picked:
        _copy_images(folder, count, picked)
        return f"the first {len(picked)} images of {source}"
    from PIL import Image

    for i in range(count):
        # Smooth gradients with noise: cheap to make, and nothing a VAE finds degenerate.
        Image.effect_noise((resolution, resolution), 64).convert("RGB").save(folder / f"{i:04d}.png")
        (folder / f"{i:04d}.txt").write_text("a photo of a test pattern", encoding="utf-8")
    return f"{count} generated {resolution} px images"


@dataclass
class OneTrainerRun:
    argv: list[str]
    folder: Path
    dataset: str
    model: str
    resolution: int


def _base_config(opts: SmokeOptions, config_raw: dict[str, Any] | None, base_model: str | None) -> dict[str, Any]:
    """A private copy of the user's config, or the guide's SDXL settings, without its concepts."""
    if config_raw is not None:
        raw = json.loads(json.dumps(config_raw))
    else:
        raw = json.loads(data_file("smoke_guide_sdxl.json").read_text(encoding="utf-8"))
        if opts.model in MODEL_TYPES:
            raw["model_type"] = MODEL_TYPES[opts.model]
    if base_model:
        raw["base_model_name"] = base_model
    raw.pop("concepts", None)
    return raw


def _write_concepts(folder: Path, dataset: Path) -> None:
    concepts = [
        {
            "__version": 2,
            "name": "otdoctor-smoke",
            "path": str(dataset),
            "enabled": True,
            "type": "STANDARD",
            "include_subdirectories": False,
            "image_variations": 1,
            "text_variations": 1,
            "balancing": 1.0,
            "balancing_strategy": "REPEATS",
            "loss_weight": 1.0,
            "text": {"prompt_source": "sample"},
        }
    ]
    (folder / "concepts.json").write_text(json.dumps(concepts, indent=1), encoding="utf-8")


def _ensure_samples_file(raw: dict[str, Any], ot_dir: Path, folder: Path) -> None:
    """OneTrainer reads the sample definitions at start, sampling or not (`TrainConfig.to_pack_dict`):
    without the file (a checkout where the UI never ran) train.py stops with FileNotFoundError."""
    if raw.get("samples") is not None:
        return
    name = Path(str(raw.get("sample_definition_file_name") or "training_samples/samples.json")).expanduser()
    if not (name if name.is_absolute() else ot_dir / name).is_file():
        (folder / "samples.json").write_text("[]", encoding="utf-8")
        raw["sample_definition_file_name"] = str(folder / "samples.json")


def _write_config(raw: dict[str, Any], folder: Path) -> list[str]:
    """Write config.json (and preset.json for a preset); the train.py options that name them."""
    if "__version" in raw:
        raw["concept_file_name"] = str(folder / "concepts.json")
        (folder / "config.json").write_text(json.dumps(raw, indent=1), encoding="utf-8")
        return ["--config-path", str(folder / "config.json")]
    # A preset (partial, unversioned): OneTrainer applies it before a current-format config.
    raw.pop("concept_file_name", None)
    (folder / "preset.json").write_text(json.dumps(raw, indent=1), encoding="utf-8")
    from otdoctor.onetrainer.config import KNOWN_CONFIG_VERSION

    (folder / "config.json").write_text(
        json.dumps({"__version": KNOWN_CONFIG_VERSION, "concept_file_name": str(folder / "concepts.json")}),
        encoding="utf-8",
    )
    return ["--preset-path", str(folder / "preset.json"), "--config-path", str(folder / "config.json")]


def _config_values(
    folder: Path, opts: SmokeOptions, resolution: int, user_config: bool, source_concept: Path | None
) -> dict[str, str]:
    """The `--config-value KEY=VALUE` overrides, the user's `--set` ones last."""
    values = {
        "workspace_dir": str(folder / "workspace"),
        "cache_dir": str(folder / "cache"),
        "output_model_destination": str(folder / "output" / "model.safetensors"),
        "epochs": "1",
        "batch_size": str(opts.batch_size),
        "resolution": str(resolution),
        **_NOTHING_KEPT,
    }
    if opts.dtype in DTYPES and not user_config:
        values["train_dtype"] = DTYPES[opts.dtype]
    if not (source_concept and any(source_concept.glob("*-masklabel.png"))):
        values["masked_training"] = "false"  # the generated dataset has no masks
    for item in opts.overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set wants KEY=VALUE (got {item!r})", exit_code=2)
        values[key.strip()] = value
    return values


def whole_run_epochs(opts: SmokeOptions) -> int | None:
    """`--set epochs=N` (N > 1): run OneTrainer's own schedule to its end (sampling, backups, epoch
    boundaries and the final save included) instead of stopping after the measured steps."""
    for item in reversed(opts.overrides):
        key, _, value = item.partition("=")
        if key.strip() == "epochs":
            return int(value) if value.strip().isdigit() and int(value) > 1 else None
    return None


def prepare_onetrainer(
    ot_dir: Path,
    python: Path,
    folder: Path,
    opts: SmokeOptions,
    config_raw: dict[str, Any] | None,
    base_model: str | None,
    source_concept: Path | None,
) -> OneTrainerRun:
    """Write the temporary config, preset and dataset; return the command line."""
    raw = _base_config(opts, config_raw, base_model)
    model = model_key_for(str(raw.get("model_type", "STABLE_DIFFUSION_15")))
    res_text = str(raw.get("resolution", "1024" if model == "sdxl" else "512"))
    resolution = opts.resolution or int(str(res_text).split(",")[0].split("x")[0])
    # Spare batches, so the run is stopped mid-epoch: an epoch that ends triggers OneTrainer's final save.
    count = (opts.warmup + opts.steps + max(5, opts.steps // 2)) * opts.batch_size
    epochs = whole_run_epochs(opts)
    if epochs:  # OneTrainer's own schedule, to its end: about warmup + steps steps in all
        count = max(1, -(-(opts.warmup + opts.steps) // epochs)) * opts.batch_size
    dataset = folder / "dataset"
    dataset_note = make_dataset(dataset, count, resolution, source_concept)
    _write_concepts(folder, dataset)
    _ensure_samples_file(raw, ot_dir, folder)
    config_args = _write_config(raw, folder)
    values = _config_values(folder, opts, resolution, config_raw is not None, source_concept)
    argv = train_argv(python, config_args, (f"{key}={value}" for key, value in values.items()))
    return OneTrainerRun(argv, folder, dataset_note, model, resolution)


class _TrainOutput:
    """Keeps the last OUTPUT_TAIL_CHARS of output and feeds the bars to the meter and `progress`."""

    def __init__(self, meter: Meter, target: int, progress: Progress) -> None:
        self.meter = meter
        self.target = target
        self.progress = progress
        self.stream = BarStream()
        self.chunks: list[str] = []
        self.size = 0
        self.measured = threading.Event()
        self.events: list[Event] = []  # with arrival times, for OneTrainer's overheads
        self.peak_rss: int | None = None
        self.end: float | None = None  # when OneTrainer ended by itself (not stopped by us)

    def __call__(self, text: str, t: float) -> None:
        self.chunks.append(text)
        self.size += len(text)
        while self.size > OUTPUT_TAIL_CHARS and len(self.chunks) > 1:
            self.size -= len(self.chunks.pop(0))
        for ev in self.stream.feed(text, t):
            self.events.append((t, ev))
            if isinstance(ev, BarUpdate):
                self.meter.add(ev)
                self.progress(ev.desc, ev)
                if ev.desc == "step" and ev.n >= self.target:
                    self.measured.set()

    def text(self) -> str:
        return "".join(self.chunks)


def _until_measured(child: Child, out: _TrainOutput, deadline: float, progress: Progress) -> int | None:
    """Wait for the last measured step (or the end, or the deadline), then stop the run; its exit code."""
    rc: int | None = None
    while True:
        # Woken by the reader the moment the last measured step is drawn: stop without delay.
        if out.measured.wait(0.2):
            break
        rc = child.poll()
        if rc is not None or time.monotonic() > deadline:
            break
    if rc is None:
        progress("measured: stopping OneTrainer (SIGINT)" if out.measured.is_set() else "timed out: stopping", None)
        return child.stop()
    # It ended by itself: let the reader take its last words (the error) before they are read.
    return child.wait(0)


def run_onetrainer(
    ot_dir: Path,
    python: Path,
    opts: SmokeOptions,
    config_raw: dict[str, Any] | None = None,
    base_model: str | None = None,
    source_concept: Path | None = None,
    progress: Progress = noop,
) -> SmokeResult:
    if not (ot_dir / "scripts" / "train.py").is_file():
        raise UserError(f"{ot_dir} has no scripts/train.py: not a OneTrainer checkout", exit_code=2)
    if not Path(python).exists():
        raise UserError(f"OneTrainer's venv interpreter not found: {python}", hint="run `otdoctor install` first")
    with terminate_as_interrupt(), run_folder(keep=opts.keep) as folder:
        run = prepare_onetrainer(ot_dir, python, folder, opts, config_raw, base_model, source_concept)
        progress(f"running OneTrainer's scripts/train.py on {run.dataset} (temporary folder {folder})", None)
        t0 = time.monotonic()
        target = 10**12 if whole_run_epochs(opts) else opts.warmup + opts.steps
        out = _TrainOutput(Meter(t0), target, progress)
        child = Child(run.argv, {**os.environ, "PYTHONUNBUFFERED": "1"}, ot_dir, out)
        poller, rss = VramPoller(child.pid), RssPoller(child.pid)
        try:
            rc = _until_measured(child, out, t0 + opts.timeout_s, progress)
        except BaseException:
            child.stop()
            poller.stop()
            rss.stop()
            raise
        vram = poller.stop()
        out.peak_rss = rss.stop()
        out.end = None if child.stopped_by_us else time.monotonic()
        if whole_run_epochs(opts) and rc == 0:
            out.measured.set()  # the whole run is the measurement
        text = out.text()
    return _result(run, opts, config_raw, out, vram, (rc, child.stopped_by_us, text), t0)


def _result(
    run: OneTrainerRun,
    opts: SmokeOptions,
    config_raw: dict[str, Any] | None,
    out: _TrainOutput,
    vram: tuple[int | None, str],
    ending: tuple[int | None, bool, str],
    t0: float,
) -> SmokeResult:
    """What the run measured; `ending` is (exit code, stopped by us, the output's tail)."""
    rc, stopped_by_us, text = ending
    gpu_name, driver = gpu_name_and_driver()
    meter = out.meter
    rate = meter.step_rate(opts.warmup)
    result = SmokeResult(
        mode="onetrainer",
        model=run.model,
        resolution=run.resolution,
        batch_size=opts.batch_size,
        dtype=short_dtype((config_raw or {}).get("train_dtype")) or opts.dtype,
        gpu=gpu_name or ("CPU" if _on_cpu(config_raw, opts) else "unknown"),
        driver=driver,
        load_s=meter.load_s,
        caching_images_per_s=meter.caching_images_per_s(),
        peak_vram_bytes=vram[0],
        peak_vram_source=vram[1],
        wall_s=time.monotonic() - t0,
        notes=[f"dataset: {run.dataset}"],
    )
    if rate is not None:
        result.its, result.its_low, result.its_high, result.steps = rate.its, rate.its_low, rate.its_high, rate.steps
        result.warmup_steps = opts.warmup
    _add_overheads(result, out, whole_run_epochs(opts) is not None, opts.warmup)
    if not out.measured.is_set():
        result.ok = False
        why = explain_failure(text)
        if rc == 0 or stopped_by_us and rc is not None and why is None:
            why = why or "OneTrainer ended before the measured steps were reached"
        result.error = why or f"OneTrainer exited with code {rc}"
        result.notes += [ln for ln in text.replace("\r", "\n").splitlines() if ln.strip()][-12:]
    return result


def _on_cpu(config_raw: dict[str, Any] | None, opts: SmokeOptions) -> bool:
    sets = dict(item.partition("=")[::2] for item in opts.overrides)
    return str(sets.get("train_device", (config_raw or {}).get("train_device", ""))).strip().lower() == "cpu"


def _add_overheads(result: SmokeResult, out: _TrainOutput, whole_run: bool, warmup: int) -> None:
    """OneTrainer's own overheads (sampling, backup, save, epoch boundary) and the peak RSS; over a
    whole run, the speed of its steady steps (every epoch's bar restarts, so the meter sees only one)."""
    found = overheads(out.events, out.end, warmup)
    if whole_run and found.step_s:
        result.its = result.its_low = result.its_high = 1 / found.step_s
        result.steps = found.steady_steps
    result.sample_s, result.backup_s, result.epoch_s = found.sample_s, found.backup_s, found.epoch_s
    result.final_s = found.final_s
    result.save_s = found.save_s if found.save_s is not None else found.final_s
    if out.peak_rss:
        result.peak_memory_bytes, result.peak_memory_kind = out.peak_rss, "RSS of the training processes"
    counted = [f"{n} {what}" for n, what in ((found.samples, "sampling"), (found.backups, "backup")) if n]
    if counted:
        result.notes.append("overheads measured from " + ", ".join(counted))
