"""The facts and files of a bug-report bundle, each read on its own.

Every function here reads one section (the checkout's git state, Python and the venv, `pip freeze`,
the training config, the git log); `report.bundle` calls each one separately, so a section that
cannot be read (a folder another user owns, a broken venv) is named in the bundle instead of
stopping it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from otdoctor.engine.check import Context
from otdoctor.probe import Probe

INSTALL_LOG = "otdoctor-install.log"


def git_state(probe: Probe, ot_dir: Path | None) -> dict[str, Any]:
    if ot_dir is None or not ot_dir.is_dir():
        return {"found": False}
    head = probe.git(ot_dir, "rev-parse", "HEAD")
    if not head.ok:
        return {"found": True, "git": False, "error": head.describe_failure()}
    status = probe.git(ot_dir, "status", "--porcelain", "--untracked-files=no")
    untracked = probe.git(ot_dir, "status", "--porcelain", "--untracked-files=normal")
    return {
        "found": True,
        "git": True,
        "commit": head.stdout.strip(),
        "branch": probe.git(ot_dir, "rev-parse", "--abbrev-ref", "HEAD").stdout.strip() or None,
        "last_commit": probe.git(ot_dir, "log", "-1", "--format=%cs %s").stdout.strip() or None,
        "remote": probe.git(ot_dir, "remote", "get-url", "origin").stdout.strip() or None,
        "changed_files": [line[3:] for line in status.stdout.splitlines() if line.strip()],
        "untracked_files": [line[3:] for line in untracked.stdout.splitlines() if line.startswith("??")],
        "diff_stat": probe.git(ot_dir, "diff", "--stat", "HEAD").stdout.rstrip() or None,
    }


def pyenv_facts(ctx: Context) -> dict[str, Any]:
    """pyenv's root, versions and global version, and which version the checkout asks for."""
    pyenv = ctx.probe.pyenv()
    out: dict[str, Any] = {
        "root": str(pyenv.root) if pyenv.root else None,
        "versions": list(pyenv.versions),
        "global": pyenv.global_version,
    }
    if ctx.ot_dir is not None and ctx.ot_dir.is_dir():
        req = ctx.probe.python_request(ctx.ot_dir)
        out["request"] = {"version": req.version, "source": req.source, "installed": req.installed}
    return out


def venv_and_torch_facts(ctx: Context) -> dict[str, Any]:
    """OneTrainer's venv (`venv`) and the torch build in it (`torch`), when there is a checkout."""
    from otdoctor.onetrainer.venv_facts import venv_facts

    venv = venv_facts(ctx)
    if venv is None:
        return {}
    info = venv.info
    out: dict[str, Any] = {
        "venv": {
            "path": str(venv.path),
            "exists": venv.exists,
            "python": info.version_string if info else None,
            "error": info.error if info and not info.ok else None,
            "home": venv.cfg.get("home"),
            "packages": len(venv.dists),
        }
    }
    ts = venv.torch_static
    if ts:
        out["torch"] = {k: ts.get(k) for k in ("version", "cuda", "hip", "git_version", "error")}
    return out


def pip_freeze(ctx: Context) -> tuple[str, str]:
    """`venv/bin/python -m pip freeze --all`, through the probe; the venv's own answer when pip is gone."""
    from otdoctor.onetrainer.venv_facts import venv_facts

    venv = venv_facts(ctx)
    if venv is None:
        return "", "no OneTrainer checkout, so no venv\n"
    if not venv.exists:
        return "", f"no venv at {venv.path}\n"
    env = {k: v for k, v in ctx.probe.env.items() if not k.startswith("PYTHON")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"  # pip asks PyPI for its newest version otherwise
    env["PIP_NO_INPUT"] = "1"
    res = ctx.probe.run([str(venv.python), "-m", "pip", "freeze", "--all"], timeout_s=60, env=env)
    if res.ok:
        return res.stdout, ""
    lines = [f"{name}=={version}" for name, version in sorted(venv.dists.items())]
    note = f"pip freeze failed ({res.describe_failure()}); the list below is what the venv's Python reports\n"
    return "\n".join(lines) + ("\n" if lines else ""), note


def config_files(ctx: Context) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The config the checks looked at (--config, else the UI's last-used state) with its concepts.
    A config that does not load is still shared as text, with the reason: that is often the bug."""
    from otdoctor.onetrainer.config import config_facts

    cf = config_facts(ctx)
    if cf.path is None:
        return None, {}
    if cf.config is None:
        try:
            text = cf.path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            text = f"(unreadable: {exc})\n"
        return {"path": str(cf.path), "source": cf.source, "error": cf.error}, {"config.json": text}
    cfg = cf.config
    concepts = []
    for c in cfg.concepts:
        resolved = cfg.resolve(c.path, ctx.ot_dir) if c.path else None
        concepts.append(
            {
                **dict(c.raw),
                "_resolved_path": str(resolved) if resolved else None,
                "_path_exists": bool(resolved and resolved.exists()),
            }
        )
    facts = {
        "path": str(cf.path),
        "source": cf.source,
        "model_type": cfg.model_type,
        "training_method": cfg.training_method,
        "base_model_name": cfg.base_model_name,
        "version": cfg.version,
        "is_preset": cfg.is_preset,
        "concepts": len(cfg.concepts),
        "concepts_source": cfg.concepts_source,
        "warnings": list(cfg.warnings),
    }
    files = {
        "config.json": json.dumps(dict(cfg.raw), indent=2, ensure_ascii=False) + "\n",
        "concepts.json": json.dumps(concepts, indent=2, ensure_ascii=False) + "\n",
    }
    return facts, files


def git_text(probe: Probe, ot_dir: Path | None) -> str:
    assert ot_dir is not None
    parts = []
    for args in (
        ("remote", "-v"),
        ("status", "--branch", "--porcelain"),
        ("log", "-5", "--format=%h %cs %s"),
        ("diff", "--stat", "HEAD"),
    ):
        res = probe.git(ot_dir, *args)
        parts.append(f"$ git {' '.join(args)}\n{res.stdout if res.ok else res.describe_failure() + chr(10)}")
    return "\n".join(parts)
