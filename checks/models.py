"""Checkpoints: the catalog models and the config's base model are present, complete and right."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otdoctor.checkpoints.catalog import CatalogEntry
from otdoctor.checkpoints.hashing import VerifyCache
from otdoctor.checkpoints.inventory import Inventory, take_inventory, verify_inventory
from otdoctor.checkpoints.tokens import token_step
from otdoctor.checkpoints.verify import Verdict
from otdoctor.engine.check import Check, Context
from otdoctor.engine.results import CheckResult, Fix, FixOutcome, Status
from otdoctor.errors import UserError
from otdoctor.install.actions import run_download_line, run_repair
from otdoctor.install.python_pin import Confirm
from otdoctor.install.session import Session
from otdoctor.oneline import one_line, shell_quote
from otdoctor.onetrainer.config import config_facts

WHY = (
    "a truncated, wrong or mislabelled checkpoint makes OneTrainer fail when it loads the model, "
    "often after minutes of caching"
)


def _line(v: Verdict, how: str) -> str:
    name = v.entry.title if v.entry else v.path.name
    where = f"{v.path} ({how})"
    if v.problems:
        return f"✗ {name}: {where}: " + "; ".join(v.problems)
    bits = [b for b in (v.architecture, "sha256 verified" if v.matched else None) if b]
    if v.kind == "diffusers":
        bits.append(f"diffusers folder, {len(v.components)} components")
    text = f"✓ {name}: {where}" + (f", {', '.join(bits)}" if bits else "")
    if v.warnings:
        text += " (" + "; ".join(v.warnings) + ")"
        text = "!" + text[1:]
    return text


def _fix_for(inv: Inventory, v: Verdict) -> list[str]:
    out = []
    config_mismatch = any("the config's model_type" in p for p in v.problems)
    damaged = [p for p in v.problems if "the config's model_type" not in p]
    login = [token_step(v.login_page or None)] if v.login_page is not None else []
    if damaged and v.entry is not None and v.kind != "diffusers":
        out += [
            f"mv {shell_quote(str(v.path))} {shell_quote(str(v.path) + '.bad')}",
            *login,
            f"{v.entry.download_command} --dest {shell_quote(str(v.path.parent))}",
        ]
    elif damaged:
        out += [*login, f"# download {one_line(v.path.name)} again"]
    if config_mismatch:
        out.append(
            f"# in the config: model_type for a {v.architecture} model, or base_model_name of a "
            f"{inv.expected_arch} checkpoint"
        )
    return out


class Checkpoints(Check):
    id = "models.checkpoints"
    title = "Checkpoints"
    area = "models"
    required = True
    timeout_s = 3600.0  # the first verify of a 7 GB file reads it once; later runs use the cache

    def diagnose(self, ctx: Context) -> CheckResult:
        opts = ctx.options
        try:
            # The same config every config check reads: --config, else the UI's last-used state.
            config_path = config_facts(ctx).path
            inv = take_inventory(ctx.probe.env, ctx.probe.home, opts.models_dirs, opts.ot_dir, config_path)
        except UserError as exc:
            return CheckResult.fail(
                f"the model catalog cannot be read: {exc.message}",
                expected="a valid ~/.config/otdoctor/models.toml (see README: Checkpoints)",
                why="otdoctor compares your checkpoints with the catalog",
                fix=Fix("correct or move away the user catalog", ("otdoctor models list",)),
            )
        verdicts = verify_inventory(inv, VerifyCache(env=ctx.probe.env), do_hash=not opts.extra.get("no_hash"))
        found = _Found(inv, list(verdicts.values()))
        searched = one_line("searched " + ", ".join(f"{p.path} ({p.how})" for p in [*inv.places, *inv.caches]))
        result = _base_not_found(inv, found, searched) if found.base_missing else _judge(found, searched)
        return _with_unreadable(result, inv.unreadable)

    def fix(self, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
        """Missing or corrupt checkpoints: run this check's own plan through `otdoctor models download`.

        A damaged file is renamed to `<name>.bad` first (never deleted: it is the user's file), then
        the catalog's copy is downloaded; lines the plan marks as notes (`# ...`) stay manual.
        """
        result = self.diagnose(ctx)
        commands = list(result.fix.commands) if result.fix else []
        runnable = [c for c in commands if c.startswith(("mv ", "otdoctor models download"))]
        notes = [c.lstrip("# ") for c in commands if c.startswith("#")]
        if not runnable:
            return FixOutcome(
                self.id,
                False,
                "nothing otdoctor can download here" + (f": {'; '.join(notes)}" if notes else ""),
                tuple(commands),
            )
        explicit = ctx.options.extra.get("explicit") or ()
        if result.status.value == "warn" and not any(p in ("models", self.id) for p in explicit):
            # Gigabytes for a warning nobody asked about: only on request.
            return FixOutcome(self.id, False, f"downloads are large: run `otdoctor fix {self.id}` to get them")
        damaged = any(c.startswith("mv ") for c in runnable)
        what = (
            "move the damaged files aside (kept as .bad) and download them again"
            if damaged
            else "download the missing checkpoints"
        )
        if dry_run:
            return FixOutcome(self.id, False, what, tuple(commands))

        def action(session: Session) -> str:
            done = [run_download_line(session, line) for line in runnable]
            return "; ".join(d for d in done if d) + (f" (by hand: {'; '.join(notes)})" if notes else "")

        return run_repair(self.id, ctx, action)


@dataclass
class _Found:
    """The inventory's verdicts as detail lines and fix commands, and the catalog entries not found."""

    inv: Inventory
    verdicts: list[Verdict]
    details: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    missing: list[CatalogEntry] = field(default_factory=list)

    def __post_init__(self) -> None:
        inv = self.inv
        how = _how_found(inv)
        for v in self.verdicts:
            self.details.append(_line(v, how.get(v.path, "given")))
            if v.problems:
                self.fixes += _fix_for(inv, v)
        self.missing = [e for e in inv.catalog if not inv.found.get(e.name)]
        for e in self.missing:
            if inv.base_entry is not None and inv.base_entry.name == e.name and not self.base_missing:
                continue
            resume = inv.resume_command(e.name)
            if resume:
                part = inv.partials[e.name][0].path
                self.details.append(f"- {e.title} ({e.architecture}, {e.where}): only an interrupted download, {part}")
                self.fixes.append(resume)
            else:
                self.details.append(f"- {e.title} ({e.architecture}, {e.where}): not found")
                self.fixes.append(e.download_command)
        if inv.config_error:
            self.details.append(f"config not read: {inv.config_error}")
        self.details = [one_line(d) for d in self.details]  # names and paths from files stay on one line

    @property
    def base_missing(self) -> bool:
        return self.inv.base is not None and self.inv.base.path is None

    @property
    def data(self) -> dict[str, Any]:
        inv = self.inv
        return {
            "verdicts": [v.as_dict() for v in self.verdicts],
            "missing": [e.name for e in self.missing],
            "searched": [str(p.path) for p in inv.places] + [str(c.path) for c in inv.caches],
            "base_model": inv.base.value if inv.base else None,
        }


def _how_found(inv: Inventory) -> dict[Path, str]:
    """How each checkpoint was found; the base model's copies say they are the config's base model."""
    how = {f.path: f.how for copies in inv.found.values() for f in copies}
    if inv.base is not None and inv.base.path is not None:
        for path in list(how) + [inv.base.path]:
            if path.resolve() == inv.base.path.resolve():
                how[path] = inv.base.how
    return how


def _base_not_found(inv: Inventory, found: _Found, searched: str) -> CheckResult:
    assert inv.base is not None
    entry = inv.base_entry
    if entry:
        cmd = entry.download_command
    elif inv.base.repo_id:
        cmd = f"hf download {shell_quote(inv.base.repo_id)}"
    else:
        cmd = "correct base_model_name in the config"
    summary = f"the config's base model {one_line(inv.base.value)} was not found"
    if inv.base.repo_id and not entry:
        summary += " in the Hugging Face cache (OneTrainer would download it when training starts)"
        return CheckResult.warn(
            summary,
            expected="the base model on disk",
            why=WHY,
            details=(*found.details, searched),
            data=found.data,
            fix=Fix("download it now", (cmd,)),
        )
    return CheckResult.fail(
        summary,
        expected="base_model_name names an existing file, folder or repo",
        why="OneTrainer cannot load a base model that is not there",
        details=(*found.details, searched),
        data=found.data,
        fix=Fix("get the model", (cmd, *found.fixes)),
    )


def _judge(found: _Found, searched: str) -> CheckResult:
    bad = [v for v in found.verdicts if v.problems]
    if bad:
        names = one_line(", ".join(v.path.name for v in bad))
        return CheckResult.fail(
            f"{len(bad)} checkpoint(s) are damaged or wrong: {names}",
            expected="complete safetensors files whose size, sha256 and architecture match the catalog and the config",
            why=WHY,
            details=tuple(found.details),
            data=found.data,
            fix=Fix("replace them with a verified download", tuple(dict.fromkeys(found.fixes))),
        )
    good = [v for v in found.verdicts if not v.problems]
    if found.missing:
        return CheckResult.warn(
            f"{len(good)} checkpoint(s) verified; not found: {', '.join(e.title for e in found.missing)}",
            expected="the guide's checkpoints on disk (RealVisXL V4.0 for SDXL, Hyper Realism V3 for SD 1.5)",
            why="training starts from one of them; download them before you plan a run",
            details=(*found.details, searched),
            data=found.data,
            fix=Fix("download them (or point otdoctor at them with --models-dir)", tuple(dict.fromkeys(found.fixes))),
        )
    warned = [v for v in good if v.warnings]
    if warned:
        return CheckResult.warn(
            f"{len(good)} checkpoint(s) found; {len(warned)} with warnings",
            why=WHY,
            details=tuple(found.details),
            data=found.data,
            fix=Fix(
                "prefer verified .safetensors files",
                tuple(dict.fromkeys(e.entry.download_command for e in warned if e.entry)),
            ),
        )
    return CheckResult.ok(f"{len(good)} checkpoint(s) verified", details=tuple(found.details), data=found.data)


def _with_unreadable(result: CheckResult, unreadable: list[str]) -> CheckResult:
    """A folder this user may not read could hold the checkpoint a run needs: say so, at least as a warning."""
    if not unreadable:
        return result
    return dataclasses.replace(
        result,
        status=Status.WARN if result.status == Status.OK else result.status,
        summary=f"{result.summary}; {'; '.join(unreadable)}",
        expected=result.expected or "every model folder readable by this user",
        details=(*result.details, *unreadable),
        data={**result.data, "unreadable": unreadable},
    )


CHECKS = [Checkpoints]
