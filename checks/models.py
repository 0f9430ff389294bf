"""Checkpoints: the catalog models and the config's base model are present, complete and right."""

from __future__ import annotations

from shlex import quote

from otdoctor.checkpoints.hashing import VerifyCache
from otdoctor.checkpoints.inventory import Inventory, take_inventory, verify_inventory
from otdoctor.checkpoints.verify import Verdict
from otdoctor.engine.check import Check, Context
from otdoctor.engine.results import CheckResult, Fix
from otdoctor.errors import UserError
from otdoctor.install import repairs

WHY = "a truncated, wrong or mislabelled checkpoint makes OneTrainer fail when it loads the model, often after minutes of caching"


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
    if damaged and v.entry is not None and v.kind != "diffusers":
        out += [
            f"mv {quote(str(v.path))} {quote(str(v.path) + '.bad')}",
            f"{v.entry.download_command} --dest {quote(str(v.path.parent))}",
        ]
    elif damaged:
        out.append(f"# download {v.path.name} again")
    if config_mismatch:
        out.append(
            f"# in the config: model_type for a {v.architecture} model, or base_model_name of a "
            f"{inv.expected_arch} checkpoint"
        )
    return out


class Checkpoints(Check):
    id = "models.checkpoints"
    fix = repairs.download_checkpoints  # otdoctor fix: see otdoctor/repairs.py
    title = "Checkpoints"
    area = "models"
    required = True
    timeout_s = 3600.0  # the first verify of a 7 GB file reads it once; later runs use the cache

    def diagnose(self, ctx: Context) -> CheckResult:
        opts = ctx.options
        try:
            inv = take_inventory(ctx.probe.env, ctx.probe.home, opts.models_dirs, opts.ot_dir, opts.config_path)
        except UserError as exc:
            return CheckResult.fail(
                f"the model catalog cannot be read: {exc.message}",
                expected="a valid ~/.config/otdoctor/models.toml (see README: Checkpoints)",
                why="otdoctor compares your checkpoints with the catalog",
                fix=Fix("correct or move away the user catalog", ("otdoctor models list",)),
            )
        verdicts = verify_inventory(inv, VerifyCache(env=ctx.probe.env), do_hash=not opts.extra.get("no_hash"))
        how = {f.path: f.how for copies in inv.found.values() for f in copies}
        if inv.base is not None and inv.base.path is not None:
            for path in list(how) + [inv.base.path]:
                if path.resolve() == inv.base.path.resolve():
                    how[path] = inv.base.how
        details: list[str] = []
        fixes: list[str] = []
        bad = [v for v in verdicts.values() if v.problems]
        for v in verdicts.values():
            details.append(_line(v, how.get(v.path, "given")))
            if v.problems:
                fixes += _fix_for(inv, v)
        missing = [e for e in inv.catalog if not inv.found.get(e.name)]
        base_missing = inv.base is not None and inv.base.path is None
        base_is_catalog = inv.base_entry
        for e in missing:
            if base_is_catalog is not None and base_is_catalog.name == e.name and not base_missing:
                continue
            resume = inv.resume_command(e.name)
            if resume:
                part = inv.partials[e.name][0].path
                details.append(f"- {e.title} ({e.architecture}, {e.where}): only an interrupted download, {part}")
                fixes.append(resume)
            else:
                details.append(f"- {e.title} ({e.architecture}, {e.where}): not found")
                fixes.append(e.download_command)
        if inv.config_error:
            details.append(f"config not read: {inv.config_error}")
        data = {
            "verdicts": [v.as_dict() for v in verdicts.values()],
            "missing": [e.name for e in missing],
            "searched": [str(p.path) for p in inv.places] + [str(c.path) for c in inv.caches],
            "base_model": inv.base.value if inv.base else None,
        }
        searched = "searched " + ", ".join(f"{p.path} ({p.how})" for p in [*inv.places, *inv.caches])
        if base_missing:
            assert inv.base is not None
            entry = base_is_catalog
            cmd = (
                entry.download_command
                if entry
                else f"hf download {inv.base.repo_id}"
                if inv.base.repo_id
                else "correct base_model_name in the config"
            )
            summary = f"the config's base model {inv.base.value} was not found"
            if inv.base.repo_id and not entry:
                summary += " in the Hugging Face cache (OneTrainer would download it when training starts)"
                return CheckResult.warn(
                    summary,
                    expected="the base model on disk",
                    why=WHY,
                    details=(*details, searched),
                    data=data,
                    fix=Fix("download it now", (cmd,)),
                )
            return CheckResult.fail(
                summary,
                expected="base_model_name names an existing file, folder or repo",
                why="OneTrainer cannot load a base model that is not there",
                details=(*details, searched),
                data=data,
                fix=Fix("get the model", (cmd, *fixes)),
            )
        if bad:
            names = ", ".join(v.path.name for v in bad)
            return CheckResult.fail(
                f"{len(bad)} checkpoint(s) are damaged or wrong: {names}",
                expected="complete safetensors files whose size, sha256 and architecture match the catalog and the config",
                why=WHY,
                details=tuple(details),
                data=data,
                fix=Fix("replace them with a verified download", tuple(dict.fromkeys(fixes))),
            )
        good = [v for v in verdicts.values() if not v.problems]
        if missing:
            return CheckResult.warn(
                f"{len(good)} checkpoint(s) verified; not found: {', '.join(e.title for e in missing)}",
                expected="the guide's checkpoints on disk (RealVisXL V4.0 for SDXL, Hyper Realism V3 for SD 1.5)",
                why="training starts from one of them; download them before you plan a run",
                details=(*details, searched),
                data=data,
                fix=Fix("download them (or point otdoctor at them with --models-dir)", tuple(dict.fromkeys(fixes))),
            )
        warned = [v for v in good if v.warnings]
        if warned:
            return CheckResult.warn(
                f"{len(good)} checkpoint(s) found; {len(warned)} with warnings",
                why=WHY,
                details=tuple(details),
                data=data,
                fix=Fix(
                    "prefer verified .safetensors files",
                    tuple(dict.fromkeys(e.entry.download_command for e in warned if e.entry)),
                ),
            )
        return CheckResult.ok(f"{len(good)} checkpoint(s) verified", details=tuple(details), data=data)


CHECKS = [Checkpoints]
