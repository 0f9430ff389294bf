"""system.disk: free space where the venv, the saves, the workspace and the cache go, per filesystem."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otdoctor.data import load_table
from otdoctor.engine.check import Check, Context
from otdoctor.engine.results import CheckResult, Fix, Status
from otdoctor.onetrainer.config import DEFAULTS
from otdoctor.probe.host import DiskUsage
from otdoctor.render.units import human_bytes

from .system_common import family, no_checkout, run_config, thresholds


@dataclass
class _Need:
    role: str  # checkout, model output, workspace, cache
    path: Path
    needed_bytes: int


@dataclass
class _Filesystem:
    usage: DiskUsage
    needs: list[_Need] = field(default_factory=list)

    @property
    def needed_bytes(self) -> int:
        return sum(n.needed_bytes for n in self.needs)

    @property
    def name(self) -> str:
        return self.usage.mountpoint or self.usage.path


def save_bytes(model_type: str, output_dtype: str, training_method: str) -> int:
    """The size of one checkpoint save for these settings (system.toml [disk] in 16-bit, scaled by
    the bytes per weight of the output dtype in training.toml; an unknown dtype counts as 16-bit)."""
    disk = thresholds()["disk"]
    if training_method.upper() in ("LORA", "EMBEDDING"):
        return int(disk["adapter_save_bytes"])
    base = disk["save_bytes_16bit"][family(model_type)]
    per_weight = load_table("training.toml")["dtype_bytes"]
    return int(base * per_weight.get(output_dtype.upper(), 2) / 2)


def _venv_exists(ot_dir: Path) -> bool:
    try:
        return (ot_dir / "venv" / "bin" / "activate").is_file() or (ot_dir / "venv" / "Scripts" / "activate").is_file()
    except OSError:  # another user's venv: it exists, venv.exists says why it cannot be used
        return True


class DiskSpace(Check):
    id = "system.disk"
    title = "Free disk space"
    area = "system"
    requires = ("onetrainer.checkout",)

    def diagnose(self, ctx: Context) -> CheckResult:
        ot_dir = ctx.ot_dir
        if ot_dir is None:  # onetrainer.checkout was not selected (--only system)
            return no_checkout()
        notes: list[str] = []
        needs, basis = _needs(ctx, ot_dir, notes)
        filesystems, unmeasured = _by_filesystem(ctx, needs)
        warn_factor = float(thresholds()["disk"]["warn_factor"])
        worst, details, data_fs = _assess(filesystems, warn_factor)
        details.extend(unmeasured + notes)
        data = {"filesystems": data_fs, "basis": basis}
        short = "; ".join(
            f"{fs.name} {human_bytes(fs.usage.free_bytes)} free (needs {human_bytes(fs.needed_bytes)})"
            for fs in filesystems
        )
        if worst is Status.OK:
            return CheckResult.ok(short, details=tuple(details), data=data)
        low = [fs for fs in filesystems if fs.usage.free_bytes < fs.needed_bytes * warn_factor]
        return CheckResult(
            worst,
            ("not enough free disk: " if worst is Status.FAIL else "disk space is tight: ") + short,
            expected=f"free space for the venv, caches and {basis}, and room for more than one save",
            why="a training run that cannot write its save or backup fails after hours of work, "
            "and pip fails half-way through installing torch",
            fix=Fix(
                "free space on "
                + ", ".join(fs.name for fs in low)
                + ", or point workspace_dir / cache_dir / output_model_destination at a larger disk",
                tuple(f"du -xh --max-depth=2 {fs.name} | sort -h | tail -n 15" for fs in low),
            ),
            details=tuple(details),
            data=data,
        )


def _needs(ctx: Context, ot_dir: Path, notes: list[str]) -> tuple[list[_Need], str]:
    """What goes where: the venv in the checkout, and the run's saves, workspace and cache; and the
    basis the save size was measured on."""
    disk = thresholds()["disk"]
    venv_need = disk["venv_update_bytes"] if _venv_exists(ot_dir) else disk["venv_install_bytes"]
    needs = [_Need("checkout (venv)", ot_dir, int(venv_need))]
    config, note = run_config(ctx)
    if note:
        notes.append(f"{note}; measured as without a config")
    if config is None:
        # OneTrainer's default output is models/ inside the checkout; the guide trains SDXL.
        guide = thresholds()["guide_run"]
        one_save = save_bytes(guide["model_type"], guide["output_dtype"], guide["training_method"])
        needs.append(_Need("model output", ot_dir / "models", one_save))
        return needs, f"one SDXL bf16 save ({human_bytes(one_save)}; no training config found)"
    one_save = save_bytes(config.model_type, str(config.get("output_dtype")), config.training_method)
    out = str(config.get("output_model_destination") or DEFAULTS["output_model_destination"])
    needs.append(_Need("model output", config.resolve(out, ot_dir), one_save))
    backups = int(disk["workspace_backups"])
    needs.append(_Need("workspace", config.resolve(str(config.get("workspace_dir")), ot_dir), one_save * backups))
    needs.append(_Need("cache", config.resolve(str(config.get("cache_dir")), ot_dir), int(disk["cache_bytes"])))
    basis = (
        f"{config.model_type} {config.training_method} saves in {config.get('output_dtype')} "
        f"({human_bytes(one_save)} each)"
    )
    return needs, basis


def _by_filesystem(ctx: Context, needs: list[_Need]) -> tuple[list[_Filesystem], list[str]]:
    """The needs grouped by the filesystem that holds them; and the paths that could not be measured."""
    filesystems: dict[tuple[str | None, str | None, str], _Filesystem] = {}
    unmeasured: list[str] = []
    for need in needs:
        usage = ctx.probe.disk_usage(need.path)
        if usage is None:
            unmeasured.append(f"{need.role}: {need.path} could not be measured")
            continue
        key = (usage.mountpoint, usage.device, usage.path if usage.mountpoint is None else "")
        filesystems.setdefault(key, _Filesystem(usage)).needs.append(need)
    return list(filesystems.values()), unmeasured


def _assess(filesystems: list[_Filesystem], warn_factor: float) -> tuple[Status, list[str], list[dict[str, Any]]]:
    """(the worst state, one detail line per filesystem, their JSON data)."""
    worst = Status.OK
    details: list[str] = []
    data_fs: list[dict[str, Any]] = []
    for fs in filesystems:
        free, needed = fs.usage.free_bytes, fs.needed_bytes
        if free < needed:
            state, worst = "too little", Status.FAIL
        elif free < needed * warn_factor:
            state = "tight"
            worst = Status.WARN if worst is Status.OK else worst
        else:
            state = "enough"
        holds = ", ".join(f"{n.role} {n.path}" for n in fs.needs)
        details.append(
            f"{fs.name} ({fs.usage.fstype or 'unknown'}): {human_bytes(free)} free of "
            f"{human_bytes(fs.usage.total_bytes)}, needs {human_bytes(needed)} ({state}); holds {holds}"
        )
        data_fs.append(
            {
                "mountpoint": fs.usage.mountpoint,
                "device": fs.usage.device,
                "fstype": fs.usage.fstype,
                "free_bytes": free,
                "total_bytes": fs.usage.total_bytes,
                "needed_bytes": needed,
                "state": state,
                "holds": [{"role": n.role, "path": str(n.path), "needed_bytes": n.needed_bytes} for n in fs.needs],
            }
        )
    return worst, details, data_fs
