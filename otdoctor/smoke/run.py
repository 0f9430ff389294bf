"""`otdoctor smoke`: a short real training run that proves the machine trains and measures its speed.

Two modes:
- OneTrainer mode runs the checkout's own `scripts/train.py` from its venv with a temporary config
  (the user's, or the guide's SDXL settings) and `--config-value` overrides: a tiny dataset, one
  epoch, no sampling/backups/saves/tensorboard, workspace/cache/output in a temporary folder. It is
  stopped with SIGINT after the measured steps, like a user pressing Ctrl-C.
- Synthetic mode runs `synthetic_train.py` (shipped beside this file) with any interpreter that has
  torch and diffusers: a UNet from `data/unet_configs.toml` with random weights.
otdoctor never imports torch itself.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otdoctor.data import FOLDER as DATA_FOLDER
from otdoctor.errors import UserError
from otdoctor.estimate.progress_bars import BarStream, BarUpdate
from otdoctor.smoke.meter import Meter, VramPoller, rate_spread
from otdoctor.smoke.process import Child, run_folder, terminate_as_interrupt
from otdoctor.smoke.results import SmokeResult

DATA = DATA_FOLDER
SCRIPT = Path(__file__).resolve().parent / "synthetic_train.py"
IMAGE_EXTENSIONS = (".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".avif")
DTYPES = {"bf16": "BFLOAT_16", "fp16": "FLOAT_16", "fp32": "FLOAT_32"}
MODEL_TYPES = {"sdxl": "STABLE_DIFFUSION_XL_10_BASE", "sd15": "STABLE_DIFFUSION_15"}
OUTPUT_TAIL_CHARS = 200_000


def _toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    return tomllib.loads(path.read_text(encoding="utf-8"))


def unet_models() -> dict[str, Any]:
    return _toml(DATA / "unet_configs.toml")


def model_key_for(model_type: str) -> str:
    return "sdxl" if "XL" in model_type.upper() else "sd15"


@dataclass
class SmokeOptions:
    model: str = "sdxl"
    resolution: int | None = None
    batch_size: int = 1
    dtype: str = "bf16"
    steps: int = 20
    warmup: int = 3
    gradient_checkpointing: bool = True
    fused_back_pass: bool = False
    keep: bool = False
    device: str = "auto"
    timeout_s: float = 3600.0
    overrides: list[str] = field(default_factory=list)  # extra --config-value KEY=VALUE
    own_adafactor: bool = False
    save_every: int = 0  # synthetic: periodic saves (the accuracy benchmark)
    measure_save: bool = True


Progress = Callable[[str, "BarUpdate | None"], None]


def _noop(_msg: str, _bar: BarUpdate | None = None) -> None:
    pass


# Synthetic ---------------------------------------------------------------------------------------
def synthetic_argv(python: Path, opts: SmokeOptions, save_dir: Path | None) -> list[str]:
    models = unet_models()
    if opts.model not in models:
        raise UserError(f"unknown model {opts.model!r}; choose one of {', '.join(models)}", exit_code=2)
    model = models[opts.model]
    resolution = opts.resolution or int(model["default_resolution"])
    argv = [
        str(python),
        "-u",
        str(SCRIPT),
        "--model-json",
        json.dumps(model),
        "--resolution",
        str(resolution),
        "--batch-size",
        str(opts.batch_size),
        "--dtype",
        opts.dtype,
        "--steps",
        str(opts.steps),
        "--warmup",
        str(opts.warmup),
        "--device",
        opts.device,
    ]
    if opts.model == "tiny":
        # A toy UNet gains nothing from more threads, and on a busy CPU their barriers cost 10x.
        argv += ["--threads", "1"]
    if opts.gradient_checkpointing:
        argv.append("--gradient-checkpointing")
    if opts.fused_back_pass:
        argv.append("--fused-back-pass")
    if opts.own_adafactor:
        argv.append("--own-adafactor")
    if save_dir is not None:
        argv += ["--save-dir", str(save_dir)]
        if opts.measure_save:
            argv.append("--measure-save")
        if opts.save_every:
            argv += ["--save-every", str(opts.save_every)]
    return argv


def _gpu_facts() -> tuple[str | None, str | None]:
    """(GPU name, driver version) from NVML, or (None, None) on a machine without one."""
    try:
        from otdoctor.probe.nvml import load_nvml

        nvml = load_nvml(os.environ)
        nvml.nvmlInit()
        try:
            name = nvml.nvmlDeviceGetName(nvml.nvmlDeviceGetHandleByIndex(0))
            driver = nvml.nvmlSystemGetDriverVersion()
        finally:
            nvml.nvmlShutdown()
        dec = lambda v: v.decode() if isinstance(v, bytes) else str(v)
        return dec(name), dec(driver)
    except Exception:
        return None, None


def run_synthetic(python: Path, opts: SmokeOptions, progress: Progress = _noop) -> SmokeResult:
    if not Path(python).exists():
        raise UserError(f"interpreter not found: {python}", exit_code=2)
    models = unet_models()
    resolution = opts.resolution or int(models.get(opts.model, {}).get("default_resolution", 1024))
    result_line: dict[str, Any] | None = None
    tail: list[str] = []
    stream = BarStream()
    progress(
        f"starting {python} (synthetic {opts.model} UNet, {resolution} px, batch {opts.batch_size}, {opts.dtype})", None
    )

    with terminate_as_interrupt(), run_folder(keep=opts.keep) as folder:
        save_dir = folder / "saves"
        save_dir.mkdir()

        def on_output(text: str, t: float) -> None:
            nonlocal result_line
            for ev in stream.feed(text, t):
                if isinstance(ev, BarUpdate):
                    progress("training", ev)
                    continue
                if ev.startswith("OTDOCTOR_RESULT "):
                    result_line = json.loads(ev.split(" ", 1)[1])
                elif ev.startswith("OTDOCTOR_EVENT "):
                    data = json.loads(ev.split(" ", 1)[1])
                    progress(
                        f"model ready in {data.get('load_s', 0):.1f} s ({data.get('parameters')} parameters, "
                        f"{data.get('device')})",
                        None,
                    )
                else:
                    tail.append(ev)
                    del tail[:-200]

        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "0"}
        child = Child(synthetic_argv(Path(python), opts, save_dir), env, folder, on_output)
        poller = VramPoller(child.pid)
        try:
            rc = child.wait(opts.timeout_s)
            if rc is None:
                child.stop()
                raise UserError(f"the synthetic run did not finish within {opts.timeout_s:.0f} s")
        except BaseException:
            child.stop()
            poller.stop()
            raise
        on_output("", time.monotonic())
        for ev in stream.close():
            if isinstance(ev, str) and ev.startswith("OTDOCTOR_RESULT "):
                result_line = json.loads(ev.split(" ", 1)[1])
        peak_vram, vram_source = poller.stop()

    gpu_name, driver = _gpu_facts()
    if result_line is None:
        error = _explain_failure("\n".join(tail)) or f"the synthetic trainer exited with code {rc}"
        return SmokeResult(
            "synthetic",
            opts.model,
            resolution,
            opts.batch_size,
            opts.dtype,
            gpu_name or "unknown",
            ok=False,
            error=error,
            notes=tail[-15:],
        )
    r = result_line
    spread = rate_spread(r.get("step_s") or [])
    if spread is not None and r.get("its"):
        r["its_low"], r["its_high"] = min(spread[0], r["its"]), max(spread[1], r["its"])
    device_name = r.get("device_name") or "CPU"
    if r.get("device") == "cuda" and peak_vram is None:
        peak_vram, vram_source = r.get("peak_memory_bytes"), r.get("peak_memory_kind", "torch")
    notes = (
        []
        if opts.model == "tiny"
        else [
            "UNet only with random weights: OneTrainer also trains text encoder 1 with the guide's settings, "
            "so expect real it/s somewhat lower"
        ]
    )
    if not r.get("loss_finite"):
        notes.append("the loss became NaN or infinite: with fp16 on SDXL use bf16")
    return SmokeResult(
        mode="synthetic",
        model=opts.model,
        resolution=resolution,
        batch_size=opts.batch_size,
        dtype=opts.dtype,
        gpu=gpu_name if r.get("device") == "cuda" and gpu_name else device_name,
        steps=r.get("steps", 0),
        warmup_steps=r.get("warmup_steps", 0),
        its=r.get("its"),
        its_low=r.get("its_low"),
        its_high=r.get("its_high"),
        load_s=r.get("load_s"),
        peak_vram_bytes=peak_vram if r.get("device") == "cuda" else None,
        peak_vram_source=vram_source if r.get("device") == "cuda" else "no GPU used",
        peak_memory_bytes=r.get("peak_memory_bytes"),
        peak_memory_kind=r.get("peak_memory_kind"),
        driver=driver,
        torch=r.get("torch"),
        diffusers=r.get("diffusers"),
        optimizer=r.get("optimizer_impl"),
        gradient_checkpointing=opts.gradient_checkpointing,
        fused_back_pass=r.get("fused_back_pass"),
        parameters=r.get("parameters"),
        loss_first=r.get("loss_first"),
        loss_last=r.get("loss_last"),
        loss_finite=r.get("loss_finite"),
        save_bytes=r.get("save_bytes"),
        save_s=r.get("save_s"),
        wall_s=r.get("wall_s"),
        ok=bool(r.get("loss_finite")) and bool(r.get("its")),
        error=None if r.get("loss_finite") else "loss not finite",
        notes=notes,
    )


def _explain_failure(output: str) -> str | None:
    """One line for the user: a known problem from `otdoctor explain`, else the last error line."""
    try:
        from otdoctor.explain.known_problems import explain_text, last_error_line
    except ImportError:  # the explain engine is optional
        explain_text = None  # type: ignore[assignment]
        last_error_line = None  # type: ignore[assignment]
    if explain_text is not None:
        matches = explain_text(output)
        if matches:
            m = matches[-1]
            p = m.problem
            cmd = f" ({'; '.join(p.commands)})" if p.commands else ""
            return f"{p.title}: {m.evidence} -> {p.fix}{cmd}"
    if last_error_line is not None:
        line = last_error_line(output)
        if line:
            return line
    lines = [ln for ln in output.splitlines() if ln.strip()]
    return lines[-1] if lines else None


# OneTrainer mode -----------------------------------------------------------------------------------
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


def make_dataset(folder: Path, count: int, resolution: int, source: Path | None) -> str:
    """`count` images in `folder`: the first of the user's concept (with captions/masks), or generated."""
    folder.mkdir(parents=True, exist_ok=True)
    picked = _dataset_images(source, count) if source else []
    if picked:
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
        return f"the first {len(picked)} images of {source}"
    from PIL import Image

    for i in range(count):
        # Smooth gradients with noise: cheap to make, and nothing a VAE finds degenerate.
        img = Image.effect_noise((resolution, resolution), 64).convert("RGB")
        img.save(folder / f"{i:04d}.png")
        (folder / f"{i:04d}.txt").write_text("a photo of a test pattern", encoding="utf-8")
    return f"{count} generated {resolution} px images"


@dataclass
class OneTrainerRun:
    argv: list[str]
    folder: Path
    dataset: str
    model: str
    resolution: int


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
    if config_raw is not None:
        raw = json.loads(json.dumps(config_raw))
    else:
        raw = json.loads((DATA / "smoke_guide_sdxl.json").read_text(encoding="utf-8"))
        if opts.model in MODEL_TYPES:
            raw["model_type"] = MODEL_TYPES[opts.model]
    if base_model:
        raw["base_model_name"] = base_model
    raw.pop("concepts", None)
    model = model_key_for(str(raw.get("model_type", "STABLE_DIFFUSION_15")))
    res_text = str(raw.get("resolution", "1024" if model == "sdxl" else "512"))
    resolution = opts.resolution or int(str(res_text).split(",")[0].split("x")[0])
    # Spare batches, so the run is stopped mid-epoch: an epoch that ends triggers OneTrainer's final save.
    count = (opts.warmup + opts.steps + max(5, opts.steps // 2)) * opts.batch_size
    dataset = folder / "dataset"
    dataset_note = make_dataset(dataset, count, resolution, source_concept)
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
    argv = [str(python), "-u", "scripts/train.py"]
    if "__version" in raw:
        raw["concept_file_name"] = str(folder / "concepts.json")
        (folder / "config.json").write_text(json.dumps(raw, indent=1), encoding="utf-8")
    else:  # a preset (partial, unversioned): OneTrainer applies it before a current-format config
        raw.pop("concept_file_name", None)
        (folder / "preset.json").write_text(json.dumps(raw, indent=1), encoding="utf-8")
        from otdoctor.onetrainer.config import KNOWN_CONFIG_VERSION

        (folder / "config.json").write_text(
            json.dumps({"__version": KNOWN_CONFIG_VERSION, "concept_file_name": str(folder / "concepts.json")}),
            encoding="utf-8",
        )
        argv += ["--preset-path", str(folder / "preset.json")]
    argv += ["--config-path", str(folder / "config.json")]
    values = {
        "workspace_dir": str(folder / "workspace"),
        "cache_dir": str(folder / "cache"),
        "output_model_destination": str(folder / "output" / "model.safetensors"),
        "epochs": "1",
        "batch_size": str(opts.batch_size),
        "resolution": str(resolution),
        "sample_after_unit": "NEVER",
        "backup_after_unit": "NEVER",
        "save_every_unit": "NEVER",
        "backup_before_save": "false",
        "tensorboard": "false",
        "continue_last_backup": "false",
        "clear_cache_before_training": "true",
        "validation": "false",
    }
    if opts.dtype in DTYPES and config_raw is None:
        values["train_dtype"] = DTYPES[opts.dtype]
    if not (source_concept and any(source_concept.glob("*-masklabel.png"))):
        values["masked_training"] = "false"  # the generated dataset has no masks
    for item in opts.overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set wants KEY=VALUE, got {item!r}", exit_code=2)
        values[key.strip()] = value
    for key, value in values.items():
        argv += ["--config-value", f"{key}={value}"]
    return OneTrainerRun(argv, folder, dataset_note, model, resolution)


def run_onetrainer(
    ot_dir: Path,
    python: Path,
    opts: SmokeOptions,
    config_raw: dict[str, Any] | None = None,
    base_model: str | None = None,
    source_concept: Path | None = None,
    progress: Progress = _noop,
) -> SmokeResult:
    if not (ot_dir / "scripts" / "train.py").is_file():
        raise UserError(f"{ot_dir} has no scripts/train.py: not a OneTrainer checkout", exit_code=2)
    if not Path(python).exists():
        raise UserError(f"OneTrainer's venv interpreter not found: {python}", hint="run `otdoctor install` first")
    output: list[str] = []
    size = 0
    stream = BarStream()
    target = opts.warmup + opts.steps
    done = {"measured": False}
    measured = threading.Event()

    with terminate_as_interrupt(), run_folder(keep=opts.keep) as folder:
        run = prepare_onetrainer(ot_dir, python, folder, opts, config_raw, base_model, source_concept)
        progress(f"running OneTrainer's scripts/train.py on {run.dataset} (temporary folder {folder})", None)
        t0 = time.monotonic()
        meter = Meter(t0)

        def on_output(text: str, t: float) -> None:
            nonlocal size
            output.append(text)
            size += len(text)
            while size > OUTPUT_TAIL_CHARS and len(output) > 1:
                size -= len(output.pop(0))
            for ev in stream.feed(text, t):
                if isinstance(ev, BarUpdate):
                    meter.add(ev)
                    progress(ev.desc, ev)
                    if ev.desc == "step" and ev.n >= target:
                        done["measured"] = True
                        measured.set()

        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        child = Child(run.argv, env, ot_dir, on_output)
        poller = VramPoller(child.pid)
        rc: int | None = None
        try:
            deadline = t0 + opts.timeout_s
            while True:
                # Woken by the reader the moment the last measured step is drawn: stop without delay.
                if measured.wait(0.2):
                    break
                rc = child.poll()
                if rc is not None or time.monotonic() > deadline:
                    break
            if rc is None:
                progress("measured: stopping OneTrainer (SIGINT)" if done["measured"] else "timed out: stopping", None)
                rc = child.stop()
        except BaseException:
            child.stop()
            poller.stop()
            raise
        peak_vram, vram_source = poller.stop()
        text = "".join(output)

    gpu_name, driver = _gpu_facts()
    rate = meter.step_rate(opts.warmup)
    result = SmokeResult(
        mode="onetrainer",
        model=run.model,
        resolution=run.resolution,
        batch_size=opts.batch_size,
        dtype=_short_dtype((config_raw or {}).get("train_dtype")) or opts.dtype,
        gpu=gpu_name or "unknown",
        driver=driver,
        load_s=meter.load_s,
        caching_images_per_s=meter.caching_images_per_s(),
        peak_vram_bytes=peak_vram,
        peak_vram_source=vram_source,
        wall_s=time.monotonic() - t0,
        notes=[f"dataset: {run.dataset}"],
    )
    if rate is not None:
        result.its, result.its_low, result.its_high, result.steps = rate.its, rate.its_low, rate.its_high, rate.steps
        result.warmup_steps = opts.warmup
    if not done["measured"]:
        result.ok = False
        why = _explain_failure(text)
        if rc == 0 or child.stopped_by_us and rc is not None and why is None:
            why = why or "OneTrainer ended before the measured steps were reached"
        result.error = why or f"OneTrainer exited with code {rc}"
        result.notes += [ln for ln in text.replace("\r", "\n").splitlines() if ln.strip()][-12:]
    return result


def _short_dtype(value: Any) -> str | None:
    for short, long in DTYPES.items():
        if value == long:
            return short
    return None


def describe_host() -> str:
    return f"{platform.system()} {platform.machine()}, Python {sys.version.split()[0]}"
