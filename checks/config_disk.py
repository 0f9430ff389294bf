"""Config checks on what a run writes: disk space for its saves and backups, and whether the workspace
and cache folders already hold an earlier run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from otdoctor.dataset.scan import listing_facts
from otdoctor.engine.check import Check, Context
from otdoctor.engine.results import CheckResult, Fix
from otdoctor.onetrainer.config import TrainConfig
from otdoctor.render.units import human_bytes

from .config_common import CONFIG_FILE, checkpoint_bytes, train_cmd, train_config, training_table


def _occurrences(every: int, unit: str, epochs: int, steps_per_epoch: int) -> int | None:
    """How many times an `every`/`unit` event happens in the run; None when it depends on speed."""
    if unit == "NEVER" or every <= 0:
        return 0
    if unit == "EPOCH":
        return epochs // every
    if unit == "STEP":
        return (epochs * steps_per_epoch) // every
    if unit == "ALWAYS":
        return epochs * steps_per_epoch
    return None


def _save_counts(ctx: Context, cfg: TrainConfig, notes: list[str]) -> tuple[int, int]:
    """(saves, backups) the run keeps on disk; an unknowable count is counted once, with a note."""
    listed = listing_facts(ctx)
    samples = sum(c.concept.samples_per_epoch(c.listing.count) for c in listed.concepts)
    steps_per_epoch = max(1, samples // max(1, cfg.int_value("batch_size")))
    epochs = cfg.int_value("epochs")
    saves = _occurrences(cfg.int_value("save_every"), str(cfg.get("save_every_unit")), epochs, steps_per_epoch)
    if saves is None:
        saves = 1
        notes.append(
            f"saves every {cfg.get('save_every')} {str(cfg.get('save_every_unit')).lower()}(s): "
            "the count depends on speed; counted once"
        )
    backups = _occurrences(cfg.int_value("backup_after"), str(cfg.get("backup_after_unit")), epochs, steps_per_epoch)
    if backups is None:
        backups = 1
        if not cfg.flag("rolling_backup"):
            notes.append(
                f"backups every {cfg.get('backup_after')} {str(cfg.get('backup_after_unit')).lower()}(s) are kept: "
                "the count depends on speed; counted once (turn on Rolling Backup to cap them)"
            )
    if cfg.flag("backup_before_save"):
        backups += saves
    if cfg.flag("rolling_backup"):
        backups = min(backups, cfg.int_value("rolling_backup_count"))
    return saves, backups


def _per_filesystem(ctx: Context, needs: list[tuple[Path, int, str]], notes: list[str]) -> dict[str, dict[str, Any]]:
    """The needs summed per filesystem: mount, free bytes, bytes needed and what for."""
    per_fs: dict[str, dict[str, Any]] = {}
    for path, need, what in needs:
        if need <= 0:
            continue
        usage = ctx.probe.disk_usage(path)
        if usage is None:
            notes.append(f"cannot measure free space at {path}")
            continue
        key = f"{usage.device or ''}:{usage.mountpoint or usage.path}"
        fs = per_fs.setdefault(
            key, {"mount": usage.mountpoint or usage.path, "free": usage.free_bytes, "need": 0, "what": []}
        )
        fs["need"] += need
        fs["what"].append(what)
    return per_fs


class Disk(Check):
    id = "config.disk"
    title = "Disk space for saves and backups"
    area = "config"
    requires = (CONFIG_FILE,)

    def diagnose(self, ctx: Context) -> CheckResult:
        cfg = train_config(ctx)
        out_dtype = str(cfg.get("output_dtype"))
        save_bytes = checkpoint_bytes(ctx, cfg, out_dtype)
        backup_bytes = checkpoint_bytes(ctx, cfg, str(cfg.get("unet.weight_dtype")))
        if save_bytes is None or backup_bytes is None:
            return CheckResult.ok(f"otdoctor has no checkpoint size for {cfg.model_type} / {out_dtype}")
        notes: list[str] = []
        saves, backups = _save_counts(ctx, cfg, notes)
        workspace = cfg.resolve(str(cfg.get("workspace_dir")))
        destination = cfg.resolve(str(cfg.get("output_model_destination")))
        needs = [
            (workspace / "save", saves * save_bytes, f"{saves} save(s) x {human_bytes(save_bytes)} ({out_dtype})"),
            (
                workspace / "backup",
                backups * backup_bytes,
                f"{backups} backup(s) x at least {human_bytes(backup_bytes)}",
            ),
            (destination.parent, save_bytes, f"the final model {destination.name} ({human_bytes(save_bytes)})"),
        ]
        margin = int(training_table()["disk"]["margin_bytes"])
        per_fs = _per_filesystem(ctx, needs, notes)
        short = {k: v for k, v in per_fs.items() if v["need"] + margin > v["free"]}
        details = [
            f"{v['mount']}: needs {human_bytes(v['need'])} ({'; '.join(v['what'])}), {human_bytes(v['free'])} free"
            for v in per_fs.values()
        ] + notes
        data = {k: {"need_bytes": v["need"], "free_bytes": v["free"], "mount": v["mount"]} for k, v in per_fs.items()}
        if short:
            worst = max(short.values(), key=lambda v: v["need"] - v["free"])
            return CheckResult.fail(
                f"not enough disk on {worst['mount']}: the run writes {human_bytes(worst['need'])}, "
                f"{human_bytes(worst['free'])} free",
                details=tuple(details),
                expected=f"free space for every save and backup plus {human_bytes(margin)} to spare",
                why="OneTrainer stops with a write error when the disk fills, "
                "possibly mid-save with a corrupt checkpoint",
                fix=Fix(
                    "save less often (Backup tab: Save after), use bfloat16 output, "
                    "or move the workspace to a bigger disk",
                    (train_cmd(ctx, "save_every_unit=NEVER"), f"df -h {workspace.parent}"),
                ),
                data=data,
            )
        total = sum(v["need"] for v in per_fs.values())
        return CheckResult.ok(
            f"the run writes about {human_bytes(total)}; enough free space", details=tuple(details), data=data
        )


class Workspace(Check):
    id = "config.workspace"
    title = "Workspace and cache folders"
    area = "config"
    required = False
    requires = (CONFIG_FILE,)

    def diagnose(self, ctx: Context) -> CheckResult:
        cfg = train_config(ctx)
        notes: list[str] = []
        workspace = cfg.resolve(str(cfg.get("workspace_dir")))
        cache = cfg.resolve(str(cfg.get("cache_dir")))
        if workspace.is_dir() and any(workspace.iterdir()):
            if cfg.flag("continue_last_backup"):
                notes.append(f"workspace {workspace} holds an earlier run (continued: continue_last_backup is on)")
            else:
                notes.append(f"workspace {workspace} is not empty: a new run wants an empty workspace")
        if cache.is_dir() and any(cache.iterdir()):
            if cfg.flag("clear_cache_before_training"):
                notes.append(f"cache {cache} holds an earlier cache; it is cleared before training")
            else:
                notes.append(
                    f"cache {cache} is reused (clear_cache_before_training off): "
                    "use a new cache folder when data or settings changed"
                )
        if notes:
            # Information, not a problem: the guide recommends it, but reuse can be intended.
            return CheckResult.ok("; ".join(notes), details=tuple(notes))
        return CheckResult.ok(f"workspace {workspace} and cache {cache} are new or empty")
