"""Where each figure of `otdoctor estimate` comes from: an option, a smoke result, the config, or a
rough default from the shipped tables. Every figure travels with the words that say which."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from otdoctor.data import load_table
from otdoctor.estimate.inputs import EstimateRequest

if TYPE_CHECKING:
    from otdoctor.onetrainer.config import TrainConfig
    from otdoctor.smoke.results import SmokeResult

# A backup holds the weights in the train dtype (bf16) plus Adafactor's small optimizer state.
_BACKUP_STATE_FACTOR = 1.05
_LORA_SAVE_BYTES = int(50e6)


def gpu_table() -> dict[str, Any]:
    return load_table("gpu_speed.toml")


def unet_models() -> dict[str, Any]:
    return load_table("unet_configs.toml")


def save_bytes(params: int, dtype: str) -> float:
    """A checkpoint of `params` weights written in `dtype` (16-bit when the dtype is unknown)."""
    per_weight = load_table("training.toml")["dtype_bytes"]
    return params * per_weight.get(dtype, per_weight["BFLOAT_16"])


def backup_bytes(params: int) -> int:
    return int(params * load_table("training.toml")["dtype_bytes"]["BFLOAT_16"] * _BACKUP_STATE_FACTOR)


_SMOKE_RUN = "MEASURED by the smoke run"


# Everything but the steps ------------------------------------------------------------------------
@dataclass(frozen=True)
class Sourced:
    value: float
    source: str


def model_load(req: EstimateRequest, smoke: SmokeResult | None, mtable: dict[str, Any]) -> Sourced:
    if req.load_s is not None:
        return Sourced(req.load_s, "--load-s")
    if smoke is not None and smoke.load_s:
        return Sourced(smoke.load_s, _SMOKE_RUN)
    return Sourced(float(mtable["model_load_s_rough"]), "rough default")


def caching_rate(req: EstimateRequest, smoke: SmokeResult | None, mtable: dict[str, Any]) -> Sourced:
    if smoke is not None and smoke.caching_images_per_s and req.caching_rate is None:
        return Sourced(smoke.caching_images_per_s, _SMOKE_RUN)
    if req.caching_rate is not None:
        return Sourced(req.caching_rate, "--caching-rate")
    return Sourced(float(mtable["caching_images_per_s_rough"]), "rough default")


@dataclass(frozen=True)
class Writes:
    save_bytes: int
    backup_bytes: int
    bytes_per_s: float
    source: str


def writes(
    req: EstimateRequest, cfg: TrainConfig | None, smoke: SmokeResult | None, mtable: dict[str, Any], notes: list[str]
) -> Writes:
    """How big a save and a backup are, and how fast the disk writes them."""
    write_src = "rough default (SATA SSD)"
    write_bps = float(gpu_table()["disk_write_bytes_per_s"])
    if req.write_mbps is not None:
        write_bps, write_src = req.write_mbps * 1e6, "--write-mbps"
    elif smoke is not None and smoke.write_bytes_per_s and smoke.save_bytes and smoke.save_bytes > 50e6:
        write_bps, write_src = smoke.write_bytes_per_s, "smoke run's save"

    out_dtype = str(cfg.get("output_dtype")) if cfg is not None else "BFLOAT_16"
    params = int(mtable["checkpoint_parameters"])
    if req.save_gb is not None:
        save = int(req.save_gb * 1e9)
    elif smoke is not None and smoke.model == "tiny" and smoke.save_bytes:
        save = int(smoke.save_bytes)
        if smoke.save_s:
            write_bps, write_src = smoke.save_bytes / smoke.save_s, "smoke run's save"
    else:
        save = int(save_bytes(params, out_dtype))
    backup = backup_bytes(params)
    training_method = str(cfg.get("training_method")) if cfg is not None else "FINE_TUNE"
    if training_method == "LORA":
        save = backup = _LORA_SAVE_BYTES
        notes.append("LoRA: saves are small; estimated at 50 MB")
    return Writes(save, backup, write_bps, write_src)


def sample_source(req: EstimateRequest) -> str:
    if req.sample_s is not None:
        return "--sample-s"
    table = gpu_table()
    return (
        f"rough: {table['sample_steps']} steps at {table['sampling_speedup']:g}x the training rate"
        f" + {table['sample_overhead_s']:g} s"
    )


@dataclass(frozen=True)
class Overheads:
    """OneTrainer's overheads as a OneTrainer-mode smoke run measured them (None: not measured, the
    rough rules apply): one sampling pass, one save, one backup, one epoch boundary (each the time
    beyond a steady step), and the final save with the exit (the last step to the process's end)."""

    sample: Sourced | None = None
    save: Sourced | None = None
    backup: Sourced | None = None
    epoch: Sourced | None = None
    final: Sourced | None = None


_MEASURED = {
    "sample": "sample_s",
    "save": "save_s",
    "backup": "backup_s",
    "epoch": "epoch_s",
    "final": "final_s",
}
_WHAT = {
    "sample": "one sampling pass",
    "save": "one save",
    "backup": "one backup",
    "epoch": "one epoch boundary",
    "final": "the final save and the exit",
}


def _given(req: EstimateRequest) -> dict[str, bool]:
    """Which overheads the user's options set: those win over the smoke's figures."""
    return {
        "sample": req.sample_s is not None,
        "save": req.save_gb is not None or req.write_mbps is not None,
        "backup": req.write_mbps is not None,
        "epoch": False,
        "final": req.save_gb is not None or req.write_mbps is not None,
    }


def measured_overheads(req: EstimateRequest, smoke: SmokeResult | None) -> Overheads:
    """What the smoke run measured of OneTrainer's own overheads; options the user gives win."""
    if smoke is None or smoke.mode != "onetrainer":
        return Overheads()
    given = _given(req)
    found: dict[str, Sourced | None] = {}
    for key, attr in _MEASURED.items():
        value = getattr(smoke, attr)
        usable = value is not None and value >= 0 and not given[key]
        what = f"{_SMOKE_RUN} of {smoke.date or 'unknown date'}: {_WHAT[key]}"
        found[key] = Sourced(float(value), what) if usable else None
    return Overheads(**found)


def overhead_fields(req: EstimateRequest, smoke: SmokeResult | None, write_source: str) -> dict[str, Any]:
    """The TimeInputs fields for sampling, saves, backups and epoch boundaries: what the smoke run
    measured, else the rough rules, each labelled MEASURED or (beside a OneTrainer smoke) ASSUMED."""
    over = measured_overheads(req, smoke)
    onetrainer = smoke is not None and smoke.mode == "onetrainer"
    assumed = "ASSUMED, the smoke run did not measure it: " if onetrainer else ""
    out: dict[str, Any] = {"sample_s": req.sample_s, "sample_source": sample_source(req)}
    if over.sample is not None:
        out.update(sample_s=over.sample.value, sample_source=over.sample.source)
    elif req.sample_s is None:
        out["sample_source"] = assumed + out["sample_source"]
    given = _given(req)
    for key in ("save", "backup", "epoch", "final"):
        found: Sourced | None = getattr(over, key)
        if found is not None:
            out.update({f"{key}_s": found.value, f"{key}_source": found.source})
        elif key in ("save", "backup") and assumed and not given[key]:
            out[f"{key}_source"] = assumed + write_source
    return out
