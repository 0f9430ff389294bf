"""OneTrainer's venv: it exists, its interpreter still exists and is in range, pip runs, the
installed packages match the checkout's requirements, and torch imports.

Facts come from running the venv's own interpreter (`otdoctor.onetrainer.venv_facts.venv_facts`): otdoctor never
imports anything from the venv into its own process.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from otdoctor.engine.check import Check, Context
from otdoctor.engine.results import CheckResult, Fix
from otdoctor.install import repairs
from otdoctor.onetrainer.platforms import GLOBAL_REQUIREMENTS, choose_requirements
from otdoctor.onetrainer.python_range import judge, parse_version, python_choice, python_data, version_matches
from otdoctor.onetrainer.venv_facts import VenvFacts, pip_facts, torch_facts, venv_facts


def _facts(ctx: Context) -> VenvFacts:
    facts = venv_facts(ctx)
    assert facts is not None  # onetrainer.checkout passed, so there is a checkout
    return facts


def _rel(ctx: Context, path: Path) -> str:
    """The venv as the user would type it from the checkout (`venv`, or an absolute path)."""
    try:
        return str(path.relative_to(ctx.ot_dir)) if ctx.ot_dir else str(path)
    except ValueError:
        return str(path)


def _q(text: str) -> str:
    return shlex.quote(text)


def _recreate(ctx: Context, facts: VenvFacts) -> tuple[str, ...]:
    guide = python_data()["guide_version"]
    return (f"cd {_q(str(ctx.ot_dir))}", f"rm -rf {_q(_rel(ctx, facts.path))}", f"pyenv local {guide}", "./install.sh")


def _pip(ctx: Context, facts: VenvFacts) -> str:
    return f"{_q(_rel(ctx, facts.path))}/bin/python -m pip"


def platform_choice(ctx: Context):
    return ctx.memo("platform", lambda: choose_requirements(ctx.probe, ctx.ot_dir))


def _install_command(ctx: Context, facts: VenvFacts) -> tuple[str, ...]:
    """What the launcher runs to install requirements (`install_requirements_in_active_env`)."""
    choice = platform_choice(ctx)
    return (
        f"cd {_q(str(ctx.ot_dir))}",
        f"{_pip(ctx, facts)} install --upgrade --upgrade-strategy eager -r {GLOBAL_REQUIREMENTS} -r {_q(choice.file)}",
    )


class VenvExists(Check):
    id = "venv.exists"
    fix = repairs.rebuild_venv  # otdoctor fix: see otdoctor/repairs.py
    title = "OneTrainer venv"
    area = "venv"
    requires = ("onetrainer.checkout",)

    def diagnose(self, ctx: Context) -> CheckResult:
        facts = _facts(ctx)
        rel = _rel(ctx, facts.path)
        data = {"path": str(facts.path), "python": str(facts.python)}
        if facts.exists:
            return CheckResult.ok(f"{facts.path} ({rel}/bin/activate present)", data=data)
        conda_env = ctx.ot_dir / (ctx.probe.env.get("OT_CONDA_ENV") or "conda_env") if ctx.ot_dir else None
        prefer_venv = ctx.probe.env.get("OT_PREFER_VENV", "false") == "true"
        if conda_env is not None and (conda_env / "conda-meta").is_dir() and not prefer_venv:
            return CheckResult.warn(
                f"no venv, but a conda environment at {conda_env}: OneTrainer's launcher uses that",
                expected=f"{rel}/bin/activate (otdoctor checks venvs, not conda environments)",
                why="the venv checks below cannot look inside a conda environment",
                blocks_dependents=True,
                fix=Fix(
                    "to use a venv instead, as the guide does",
                    (f"cd {_q(str(ctx.ot_dir))}", "OT_PREFER_VENV=true ./install.sh"),
                ),
                data=data,
            )
        half = facts.path.is_dir()
        summary = (
            f"{facts.path} exists but has no bin/activate (a venv creation that did not finish)"
            if half
            else f"no venv at {facts.path}"
        )
        commands = (f"cd {_q(str(ctx.ot_dir))}", *((f"rm -rf {_q(rel)}",) if half else ()), "./install.sh")
        return CheckResult.fail(
            summary,
            expected=f"{rel}/bin/activate, made by ./install.sh",
            why="OneTrainer runs only inside its venv; the launcher creates it on the first ./install.sh",
            fix=Fix("create the venv and install OneTrainer's requirements (or run `otdoctor install`)", commands),
            data=data,
        )


class VenvInterpreter(Check):
    id = "venv.interpreter"
    fix = repairs.rebuild_venv  # otdoctor fix: see otdoctor/repairs.py
    title = "venv interpreter"
    area = "venv"
    requires = ("venv.exists",)

    def diagnose(self, ctx: Context) -> CheckResult:
        facts = _facts(ctx)
        cfg = facts.cfg
        home = cfg.get("home")
        base_version = cfg.get("version_info") or cfg.get("version")
        data = {"pyvenv_cfg": dict(cfg), "python": str(facts.python)}
        if not cfg:
            return CheckResult.fail(
                f"{facts.path}/pyvenv.cfg is missing or empty",
                expected="a venv made by `python -m venv` (pyvenv.cfg names its base interpreter)",
                why="without pyvenv.cfg the venv's python does not know its standard library",
                fix=Fix("recreate the venv", _recreate(ctx, facts)),
                data=data,
            )
        base_exe = cfg.get("executable")
        candidates = [Path(base_exe)] if base_exe else []
        if home:
            major_minor = ".".join((base_version or "").split(".")[:2])
            candidates += [Path(home) / n for n in ("python3", "python", f"python{major_minor}") if n]
        base_found = next((p for p in candidates if p.exists()), None)
        if base_found is None:
            # A pyenv prefix in `home` names the version that was uninstalled.
            pyenv_name = Path(home).parent.name if home and Path(home).parent.parent.name == "versions" else None
            revive = f"pyenv install {pyenv_name}" if pyenv_name else None
            return CheckResult.fail(
                f"the venv's base Python {base_version or ''} is gone: pyvenv.cfg points to {home}, which "
                f"{'no longer exists' if home and not Path(home).exists() else 'has no python in it'}",
                expected="the interpreter the venv was made from still installed",
                why="a venv borrows its base interpreter; after `pyenv uninstall` (or moving that Python) "
                f"{_rel(ctx, facts.path)}/bin/python cannot start, so OneTrainer cannot either",
                details=((f"or reinstall it to revive the venv as it is: {revive}",) if revive else ()),
                fix=Fix("recreate the venv with a supported Python", _recreate(ctx, facts)),
                data=data,
            )
        info = facts.info
        if info is None or not info.ok:
            return CheckResult.fail(
                f"{facts.python} does not run: {info.error if info else 'no answer'}",
                expected="the venv's python starts",
                why="OneTrainer's launcher runs everything through this interpreter",
                fix=Fix("recreate the venv", _recreate(ctx, facts)),
                data=data,
            )
        data.update(version=info.version_string, base=str(base_found))
        return CheckResult.ok(
            f"{_rel(ctx, facts.path)}/bin/python is Python {info.version_string} (base {base_found})", data=data
        )


class VenvPythonVersion(Check):
    id = "venv.python-version"
    fix = repairs.rebuild_venv  # otdoctor fix: see otdoctor/repairs.py
    title = "venv Python version"
    area = "venv"
    requires = ("venv.interpreter",)

    def diagnose(self, ctx: Context) -> CheckResult:
        facts = _facts(ctx)
        info = facts.info
        assert info is not None and info.version is not None
        verdict = judge(info.version, ctx.ot_dir)
        data = {
            "version": info.version_string,
            "accepted": verdict.accepted,
            "deprecated": verdict.deprecated,
            "range": {"minimum": verdict.minimum, "too_high": verdict.too_high, "source": verdict.range_source},
        }
        if not verdict.accepted:
            return CheckResult.fail(
                f"the venv runs {verdict.problem}",
                expected=f"{verdict.expected} (from {verdict.range_source})",
                why="every start runs `scripts/util/version_check.py` in the venv and stops on a version outside the range",
                fix=Fix("recreate the venv with a supported Python", _recreate(ctx, facts)),
                data=data,
            )
        details = [f"OneTrainer accepts Python >={verdict.minimum},<{verdict.too_high} ({verdict.range_source})"]
        if verdict.deprecated:
            details.append(verdict.deprecation_note)
        choice = python_choice(ctx)
        wanted = choice.requested if choice.via == "pyenv" else None
        data["requested"] = wanted
        mismatch = False
        if wanted and wanted != "system" and parse_version(wanted):
            mismatch = not version_matches(wanted, info.version)
        elif choice.version is not None:
            mismatch = tuple(choice.version[:2]) != tuple(info.version[:2])
            wanted = ".".join(map(str, choice.version))
        if mismatch:
            return CheckResult.warn(
                f"the venv runs Python {info.version_string}, but {choice.source} asks for {wanted}",
                expected=f"the venv made from Python {wanted}",
                why="./install.sh reuses an existing venv, so a changed .python-version only takes effect after "
                "the venv is recreated; until then OneTrainer runs on the old version",
                details=tuple(details),
                fix=Fix(
                    f"recreate the venv with Python {wanted} (or pin the venv's version back)",
                    (f"cd {_q(str(ctx.ot_dir))}", f"rm -rf {_q(_rel(ctx, facts.path))}", "./install.sh"),
                ),
                data=data,
            )
        return CheckResult.ok(f"Python {info.version_string}", details=tuple(details), data=data)


class VenvPip(Check):
    id = "venv.pip"
    fix = repairs.fix_pip  # otdoctor fix: see otdoctor/repairs.py
    title = "pip in the venv"
    area = "venv"
    requires = ("venv.interpreter",)
    timeout_s = 90.0

    def diagnose(self, ctx: Context) -> CheckResult:
        facts = _facts(ctx)
        pip = pip_facts(ctx)
        assert pip is not None
        rel_python = f"{_q(_rel(ctx, facts.path))}/bin/python"
        cd = f"cd {_q(str(ctx.ot_dir))}"
        data = {"runs": pip.runs, "output": pip.output, "cached": pip.cached}
        if not pip.runs:
            has_pip = "pip" in facts.dists
            return CheckResult.fail(
                f"`{rel_python} -m pip` does not run: {pip.output}" if has_pip else "pip is not installed in the venv",
                expected="pip working inside the venv",
                why="./install.sh and ./update.sh install every OneTrainer dependency with the venv's pip",
                fix=Fix("reinstall pip into the venv", (cd, f"{rel_python} -m ensurepip --upgrade")),
                data=data,
            )
        setuptools = facts.dists.get("setuptools")
        pin = python_data()["setuptools"]
        if setuptools and (parse_version(setuptools) or (0,)) >= (parse_version(pin["breaks_from"]) or (82,)):
            return CheckResult.warn(
                f"{pip.output}; but setuptools {setuptools} is installed",
                expected=f"setuptools=={pin['launcher_pin']}, as OneTrainer's launcher installs",
                why=f"setuptools {pin['breaks_from']} removed pkg_resources: `No module named 'pkg_resources'`",
                fix=Fix(
                    "install the launcher's setuptools",
                    (cd, f"{rel_python} -m pip install setuptools=={pin['launcher_pin']}"),
                ),
                data={**data, "setuptools": setuptools},
            )
        return CheckResult.ok(pip.output, data={**data, "setuptools": setuptools})


class VenvRequirements(Check):
    id = "venv.requirements"
    fix = repairs.sync_requirements  # otdoctor fix: see otdoctor/repairs.py
    title = "installed requirements"
    area = "venv"
    requires = ("venv.interpreter",)

    def diagnose(self, ctx: Context) -> CheckResult:
        from otdoctor.onetrainer import requirements as reqs  # packaging's parsers: only when this check runs

        facts = _facts(ctx)
        assert ctx.ot_dir is not None and facts.info is not None
        choice = platform_choice(ctx)
        files = [ctx.ot_dir / GLOBAL_REQUIREMENTS, ctx.ot_dir / choice.file]
        req_set = reqs.read(files)
        dists = facts.info.data.get("dists")
        data: dict = {
            "platform": choice.platform,
            "platform_file": choice.file,
            "platform_reason": choice.reason,
            "files": [str(f) for f in req_set.files],
            "index_urls": req_set.index_urls + req_set.extra_index_urls,
        }
        install = Fix(
            "install what the checkout asks for, as ./install.sh and ./update.sh do", _install_command(ctx, facts)
        )
        if dists is None:
            return CheckResult.fail(
                f"cannot list the venv's packages (Python {facts.info.version_string} has no importlib.metadata)",
                expected="Python >= 3.8 in the venv",
                why="OneTrainer needs a Python that can install its requirements",
                fix=Fix("recreate the venv", _recreate(ctx, facts)),
                data=data,
            )
        if req_set.problems:
            return CheckResult.fail(
                f"cannot read the requirements the launcher installs: {req_set.problems[0]}",
                expected=f"{GLOBAL_REQUIREMENTS} and {choice.file} ({choice.reason}) readable by pip",
                why="./install.sh stops when a requirements file is missing or unreadable",
                details=tuple(req_set.problems),
                fix=Fix(
                    "restore the checkout's files (or set OT_PLATFORM_REQUIREMENTS to a file that exists)",
                    (
                        f"git -C {_q(str(ctx.ot_dir))} status",
                        f"git -C {_q(str(ctx.ot_dir))} checkout -- {GLOBAL_REQUIREMENTS} {choice.file}",
                    ),
                ),
                data=data,
            )
        installed = reqs.installed_from(dists)
        markers = facts.info.data.get("markers") or _fallback_markers(facts)
        mismatches, checked, not_here = reqs.judge(
            req_set, installed, markers, commit_of=lambda s, r, h: _commit_of(ctx, s, r, h)
        )
        data.update(
            checked=checked,
            not_for_this_platform=not_here,
            mismatches=[
                {
                    "name": m.line.name,
                    "kind": m.kind,
                    "installed": m.installed,
                    "line": m.line.where,
                    "wants": m.line.text,
                }
                for m in mismatches
            ],
            skipped=req_set.skipped,
        )
        files_text = " + ".join(f.name for f in req_set.files)
        if not mismatches:
            details = tuple(f"not judged: {s}" for s in req_set.skipped)
            return CheckResult.ok(
                f"all {checked} requirements satisfied ({files_text}; {choice.reason})", details=details, data=data
            )
        kinds: dict[str, int] = {}
        for m in mismatches:
            kinds[m.kind] = kinds.get(m.kind, 0) + 1
        words = {
            "missing": "missing",
            "version": "at the wrong version",
            "not-editable": "not an editable checkout",
            "commit": "at the wrong commit",
        }
        counted = ", ".join(f"{n} {words[k]}" for k, n in kinds.items())
        return CheckResult.fail(
            f"{len(mismatches)} of {checked} requirements not satisfied: {counted}",
            expected=f"everything in {files_text} installed in the venv",
            why="after a `git pull` without ./update.sh the venv keeps old packages, and OneTrainer fails with errors "
            "like `cannot import name ... from 'diffusers'` or `No module named 'mgds'`",
            details=tuple(m.message for m in mismatches[:25])
            + ((f"... and {len(mismatches) - 25} more",) if len(mismatches) > 25 else ())
            + (f"the launcher installs {choice.file} here: {choice.reason}",),
            fix=install,
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
        facts = _facts(ctx)
        static = facts.torch_static
        install = Fix(
            "install OneTrainer's requirements (torch comes from the platform file)", _install_command(ctx, facts)
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
                fix=Fix(
                    "reinstall torch and the other requirements",
                    (
                        *_install_command(ctx, facts)[:1],
                        f"{_pip(ctx, facts)} install --force-reinstall --no-deps -r {_q(platform_choice(ctx).file)}",
                        *_install_command(ctx, facts)[1:],
                    ),
                ),
                data=data,
            )
        for key in ("arch_list", "cuda_available", "device_count", "capabilities", "cuda_error"):
            if key in tf.data:
                data[key] = tf.data[key]
        return CheckResult.ok(f"torch {version} ({described}) imports", data=data)


CHECKS = [VenvExists, VenvInterpreter, VenvPythonVersion, VenvPip, VenvRequirements, VenvTorch]
