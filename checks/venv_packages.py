"""venv.requirements and venv.torch: the packages in OneTrainer's venv against the requirements the
launcher installs, and whether torch imports."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from otdoctor.engine.check import Check, Context
from otdoctor.engine.results import CheckResult, Fix, FixOutcome
from otdoctor.errors import UserError
from otdoctor.install.actions import (
    broken_editables,
    in_checkout,
    no_checkout,
    platform_file,
    reinstall_torch,
    remove_editables,
    run_repair,
    torch_reinstall_commands,
    venv_of,
)
from otdoctor.install.pip import (
    install_requirements,
    record_requirements,
    requirement_files,
    requirements_argv,
    unmet_requirements,
    upgrade_pip,
    upgrade_pip_argv,
    venv_dists,
)
from otdoctor.install.python_pin import Confirm
from otdoctor.install.session import Session, quote
from otdoctor.install.state import installed_platform_file
from otdoctor.onetrainer.platforms import GLOBAL_REQUIREMENTS, PlatformChoice
from otdoctor.onetrainer.venv_facts import VenvFacts, torch_facts

from .venv_common import checkout_venv, install_commands, pip_command, platform_choice, q, recreate


class VenvRequirements(Check):
    id = "venv.requirements"
    title = "installed requirements"
    area = "venv"
    requires = ("venv.interpreter",)

    def diagnose(self, ctx: Context) -> CheckResult:
        from otdoctor.onetrainer import requirements as reqs  # packaging's parsers: only when this check runs

        facts = checkout_venv(ctx)
        assert ctx.ot_dir is not None and facts.info is not None
        choice = platform_choice(ctx)
        files = [ctx.ot_dir / GLOBAL_REQUIREMENTS, ctx.ot_dir / choice.file]
        req_set = reqs.read(files)
        dists = facts.info.data.get("dists")
        data: dict[str, Any] = {
            "platform": choice.platform,
            "platform_file": choice.file,
            "platform_reason": choice.reason,
            "files": [str(f) for f in req_set.files],
            "index_urls": req_set.index_urls + req_set.extra_index_urls,
        }
        install = Fix(
            "install what the checkout asks for, as ./install.sh and ./update.sh do", install_commands(ctx, facts)
        )
        if dists is None:
            return CheckResult.fail(
                f"cannot list the venv's packages (Python {facts.info.version_string} has no importlib.metadata)",
                expected="Python >= 3.8 in the venv",
                why="OneTrainer needs a Python that can install its requirements",
                fix=Fix("recreate the venv", recreate(ctx, facts)),
                data=data,
            )
        if req_set.problems:
            return _unreadable(ctx, choice, req_set.problems, data)
        installed = reqs.installed_from(dists)
        markers = facts.info.data.get("markers") or _fallback_markers(facts)
        mismatches, checked, not_here = reqs.judge(
            req_set, installed, markers, commit_of=lambda s, r, h: _commit_of(ctx, s, r, h)
        )
        data.update(
            checked=checked,
            not_for_this_platform=not_here,
            mismatches=[_mismatch_data(m) for m in mismatches],
            skipped=req_set.skipped,
        )
        files_text = " + ".join(f.name for f in req_set.files)
        if not mismatches:
            details = tuple(f"not judged: {s}" for s in req_set.skipped)
            return CheckResult.ok(
                f"all {checked} requirements satisfied ({files_text}; {choice.reason})", details=details, data=data
            )
        return CheckResult.fail(
            f"{len(mismatches)} of {checked} requirements not satisfied: {_counted(mismatches)}",
            expected=f"everything in {files_text} installed in the venv",
            why="after a `git pull` without ./update.sh the venv keeps old packages, and OneTrainer fails with errors "
            "like `cannot import name ... from 'diffusers'` or `No module named 'mgds'`",
            details=tuple(m.message for m in mismatches[:_SHOWN])
            + ((f"... and {len(mismatches) - _SHOWN} more",) if len(mismatches) > _SHOWN else ())
            + (f"the launcher installs {choice.file} here: {choice.reason}",),
            fix=install,
            data=data,
        )

    def fix(self, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
        """Damaged editable checkouts in venv/src first, then the update path."""
        if ctx.ot_dir is not None and broken_editables(ctx, venv_of(ctx)):
            return _repair_editables(self.id, ctx, dry_run)
        return _update_requirements(self.id, ctx, dry_run)


def _update_requirements(check_id: str, ctx: Context, dry_run: bool) -> FixOutcome:
    """Requirements out of date after `git pull` (without update.sh): what update.sh installs."""
    ot_dir = ctx.ot_dir
    if ot_dir is None:
        return no_checkout(check_id)
    venv = venv_of(ctx)
    file = installed_platform_file(ot_dir)
    why = "the file the last install used"
    if file is None or not (ot_dir / file).is_file():
        file, why, blocker = platform_file(ctx)
        if blocker:
            return FixOutcome(check_id, False, f"cannot fix automatically: {blocker}")
    cmds = [quote(upgrade_pip_argv(venv, ot_dir)), in_checkout(ot_dir, requirements_argv(venv, file))]
    if dry_run:
        return FixOutcome(
            check_id,
            False,
            f"install what the checkout's requirements name now, as ./update.sh does ({file}: {why})",
            tuple(cmds),
        )
    chosen = file

    def action(session: Session) -> str:
        upgrade_pip(session, "pip", venv, ot_dir)
        install_requirements(session, "requirements", venv, ot_dir, chosen)
        unmet = unmet_requirements(requirement_files(ot_dir, chosen), venv_dists(ctx.probe, venv) or {})
        if unmet:
            raise UserError("pip finished but these are still not satisfied: " + "; ".join(unmet[:3]))
        record_requirements(ot_dir, chosen)
        return f"installed {GLOBAL_REQUIREMENTS} + {chosen} as the checkout names them now"

    return run_repair(check_id, ctx, action)


def _repair_editables(check_id: str, ctx: Context, dry_run: bool) -> FixOutcome:
    """A broken editable checkout in venv/src (pip's IndexError in vcs/git.py): remove it, reinstall."""
    ot_dir = ctx.ot_dir
    assert ot_dir is not None
    if ctx.probe.which("git") is None:
        return FixOutcome(
            check_id,
            False,
            "git is not installed; pip needs it for the editable dependencies: sudo apt install git",
            ("sudo apt install git",),
        )
    venv = venv_of(ctx)
    broken = broken_editables(ctx, venv)
    file = installed_platform_file(ot_dir) or platform_file(ctx)[0]
    cmds = [f"rm -rf {quote([d])}" for d in broken] + [in_checkout(ot_dir, requirements_argv(venv, file))]
    names = ", ".join(d.name for d in broken) or "none found broken"
    if dry_run:
        return FixOutcome(
            check_id,
            False,
            f"remove the damaged editable checkouts in {venv / 'src'} ({names}) and reinstall",
            tuple(cmds),
        )

    def action(session: Session) -> str:
        remove_editables(session, broken)
        install_requirements(session, "requirements", venv, ot_dir, file)
        record_requirements(ot_dir, file)
        return f"removed {names} from {venv / 'src'} and reinstalled the requirements"

    return run_repair(check_id, ctx, action)


_SHOWN = 25  # mismatches listed one by one; the rest are counted
_KIND_WORDS = {
    "missing": "missing",
    "version": "at the wrong version",
    "not-editable": "not an editable checkout",
    "commit": "at the wrong commit",
}


def _mismatch_data(m: Any) -> dict[str, Any]:
    return {"name": m.line.name, "kind": m.kind, "installed": m.installed, "line": m.line.where, "wants": m.line.text}


def _counted(mismatches: list[Any]) -> str:
    """'3 missing, 1 at the wrong version', in the order the kinds first appear."""
    kinds: dict[str, int] = {}
    for m in mismatches:
        kinds[m.kind] = kinds.get(m.kind, 0) + 1
    return ", ".join(f"{n} {_KIND_WORDS[k]}" for k, n in kinds.items())


def _unreadable(ctx: Context, choice: PlatformChoice, problems: list[str], data: dict[str, Any]) -> CheckResult:
    return CheckResult.fail(
        f"cannot read the requirements the launcher installs: {problems[0]}",
        expected=f"{GLOBAL_REQUIREMENTS} and {choice.file} ({choice.reason}) readable by pip",
        why="./install.sh stops when a requirements file is missing or unreadable",
        details=tuple(problems),
        fix=Fix(
            "restore the checkout's files (or set OT_PLATFORM_REQUIREMENTS to a file that exists)",
            (
                f"git -C {q(str(ctx.ot_dir))} status",
                f"git -C {q(str(ctx.ot_dir))} checkout -- {GLOBAL_REQUIREMENTS} {choice.file}",
            ),
        ),
        data=data,
    )


def _fallback_markers(facts: VenvFacts) -> dict[str, str]:
    """Marker values from the version alone (an interpreter_script without markers)."""
    assert facts.info is not None
    v = facts.info.version or (0, 0, 0)
    return {
        "python_version": f"{v[0]}.{v[1]}",
        "python_full_version": ".".join(map(str, v)),
        "sys_platform": str(facts.info.data.get("platform") or "linux"),
    }


def _commit_of(ctx: Context, source: Path | None, ref: str, recorded: str | None) -> tuple[str, str] | None:
    """(installed commit, wanted commit) for a git requirement, or None when it cannot be told."""
    from otdoctor.onetrainer import requirements as reqs

    have = recorded
    if have is None and source is not None and source.is_dir():
        res = ctx.probe.git(source, "rev-parse", "HEAD")
        have = res.stdout.strip() if res.ok else None
    if not have:
        return None
    if reqs.is_commit(ref):
        return have, have if have.lower().startswith(ref.lower()) else ref.lower()
    if source is not None and source.is_dir():  # a tag or branch: ask the checkout what it names
        res = ctx.probe.git(source, "rev-parse", "--verify", "-q", f"{ref}^{{commit}}")
        if res.ok and res.stdout.strip():
            return have, res.stdout.strip()
    return None


class VenvTorch(Check):
    id = "venv.torch"
    title = "torch in the venv"
    area = "venv"
    requires = ("venv.interpreter",)
    timeout_s = 240.0  # the first `import torch` of a fresh install can take a while; later runs are cached

    def diagnose(self, ctx: Context) -> CheckResult:
        facts = checkout_venv(ctx)
        static = facts.torch_static
        install = Fix(
            "install OneTrainer's requirements (torch comes from the platform file)", install_commands(ctx, facts)
        )
        if not static:
            return CheckResult.fail(
                "torch is not installed in the venv",
                expected=f"torch from {platform_choice(ctx).file}",
                why="OneTrainer trains with torch; nothing runs without it",
                fix=install,
                data={"installed": False},
            )
        if static.get("error"):
            return CheckResult.fail(
                f"torch's version.py in {static.get('path')} is unreadable: {static['error']}",
                expected="an intact torch installation",
                why="a half-written torch install fails on import",
                fix=install,
                data={"installed": True, "path": static.get("path")},
            )
        version = str(static.get("version"))
        data, described = _build_facts(static)
        tf = torch_facts(ctx)
        if tf is None:  # the venv interpreter stopped answering between two checks
            return CheckResult.fail(
                f"torch {version} ({described}) could not be examined",
                why="the venv's python did not answer",
                fix=install,
                data=data,
            )
        data.update(importable=tf.importable, facts_cached=tf.cached)
        if not tf.importable:
            return CheckResult.fail(
                f"torch {version} ({described}) is installed but `import torch` fails: {tf.error}",
                expected="`import torch` works in the venv",
                why="OneTrainer cannot start; a broken or partial torch install, or a missing system library",
                fix=_reinstall_torch(ctx, facts),
                data=data,
            )
        for key in ("arch_list", "cuda_available", "device_count", "capabilities", "cuda_error"):
            if key in tf.data:
                data[key] = tf.data[key]
        return CheckResult.ok(f"torch {version} ({described}) imports", data=data)

    def fix(self, ctx: Context, confirm: Confirm, dry_run: bool = False) -> FixOutcome:
        return reinstall_platform_requirements(self.id, ctx, dry_run)


def reinstall_platform_requirements(check_id: str, ctx: Context, dry_run: bool) -> FixOutcome:
    """The fix of venv.torch and of gpu.cuda-build's wrong builds: a CPU torch on an NVIDIA machine (or a
    torch for the wrong platform) gets the platform file this machine needs."""
    if ctx.ot_dir is None:
        return no_checkout(check_id)
    file, why, blocker = platform_file(ctx)
    if blocker:
        return FixOutcome(check_id, False, f"cannot fix automatically: {blocker}")
    return reinstall_torch_fix(
        check_id, ctx, dry_run, file, why, "torch is missing, broken or built for another platform"
    )


def reinstall_torch_fix(check_id: str, ctx: Context, dry_run: bool, file: str, why: str, headline: str) -> FixOutcome:
    """Uninstall torch and install the requirements with FILE as the platform file."""
    ot_dir = ctx.ot_dir
    assert ot_dir is not None
    venv = venv_of(ctx)
    if dry_run:
        cmds = torch_reinstall_commands(venv, ot_dir, file)
        return FixOutcome(check_id, False, f"{headline}: reinstall torch from {file} ({why})", tuple(cmds))

    def action(session: Session) -> str:
        reinstall_torch(session, venv, ot_dir, file)
        return f"reinstalled torch from {file} ({why})"

    return run_repair(check_id, ctx, action)


def _build_facts(static: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """The installed torch's JSON data, and its build in words ("CUDA 12.6 build")."""
    version = str(static.get("version"))
    local = version.split("+", 1)[1] if "+" in version else None
    build = "rocm" if static.get("hip") else "cuda" if static.get("cuda") else "cpu"
    data = {
        "installed": True,
        "path": static.get("path"),
        "version": version,
        "local_version": local,
        "cuda": static.get("cuda"),
        "hip": static.get("hip"),
        "build": build,
        "cpu_only": build == "cpu",
    }
    described = {
        "cpu": "CPU-only build",
        "cuda": f"CUDA {static.get('cuda')} build",
        "rocm": f"ROCm {static.get('hip')} build",
    }[build]
    return data, described


def _reinstall_torch(ctx: Context, facts: VenvFacts) -> Fix:
    install = install_commands(ctx, facts)
    reinstall = f"{pip_command(ctx, facts)} install --force-reinstall --no-deps -r {q(platform_choice(ctx).file)}"
    return Fix("reinstall torch and the other requirements", (*install[:1], reinstall, *install[1:]))
