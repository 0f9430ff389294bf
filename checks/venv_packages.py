"""venv.requirements and venv.torch: the packages in OneTrainer's venv against the requirements the
launcher installs, and whether torch imports."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from otdoctor.engine.check import Check, Context
from otdoctor.engine.results import CheckResult, Fix
from otdoctor.install import repairs
from otdoctor.onetrainer.platforms import GLOBAL_REQUIREMENTS, PlatformChoice
from otdoctor.onetrainer.venv_facts import VenvFacts, torch_facts

from .venv_common import checkout_venv, install_commands, pip_command, platform_choice, q, recreate


class VenvRequirements(Check):
    id = "venv.requirements"
    fix = repairs.sync_requirements  # otdoctor fix: see otdoctor/repairs.py
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
    fix = repairs.reinstall_platform_requirements  # otdoctor fix: see otdoctor/repairs.py
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
