"""`otdoctor report`: a bundle a user attaches to a bug report.

Two things: a Markdown summary to paste into a GitHub issue (machine, GPUs, Python, venv, torch,
OneTrainer's commit, every check's result) and a zip holding the full evidence (the JSON check
results, `pip freeze` of OneTrainer's venv, the NVML snapshot or `nvidia-smi -q`, the config with
its concepts, the install log). Every text in both passes through the `Anonymizer` before it is
kept: nothing personal or secret is ever held in the bundle, not even in memory before writing.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import sys
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otdoctor import __version__
from otdoctor.engine.check import Context
from otdoctor.engine.results import Report
from otdoctor.errors import UserError
from otdoctor.probe import Probe
from otdoctor.probe.files import atomic_path
from otdoctor.report.anonymize import Anonymizer, for_machine, looks_secret_env

INSTALL_LOG = "otdoctor-install.log"

# Environment variables worth showing in a bug report (values of secret-looking names are masked).
ENV_PREFIXES = (
    "OT_",
    "CUDA_",
    "PYTORCH_",
    "NVIDIA_",
    "HF_",
    "HUGGINGFACE_",
    "TRANSFORMERS_",
    "TORCH_",
    "PYENV_",
    "CONDA_",
    "VIRTUAL_ENV",
    "XDG_",
    "OTDOCTOR_",
    "NCCL_",
)
ENV_NAMES = (
    "PATH",
    "LD_LIBRARY_PATH",
    "LANG",
    "LC_ALL",
    "SHELL",
    "TERM",
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "HOME",
    "PYTHONPATH",
    "PYTHONHOME",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "WSL_DISTRO_NAME",
)


@dataclass
class Bundle:
    """What will be shared: the Markdown summary and the files of the zip, already anonymised."""

    markdown: str
    files: dict[str, str] = field(default_factory=dict)  # name in the zip -> text
    exit_code: int = 0

    def zip_bytes(self) -> bytes:
        buf = io.BytesIO()
        # A fixed timestamp keeps the zip free of the local clock's time zone (and reproducible).
        stamp = (1980, 1, 1, 0, 0, 0)
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, text in self.files.items():
                info = zipfile.ZipInfo(f"otdoctor-report/{name}", date_time=stamp)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, text.encode("utf-8"))
        return buf.getvalue()

    def write(self, path: Path) -> None:
        """Through a temporary file: an interrupted write never leaves half a zip under the user's name."""
        path = path.expanduser()
        if path.is_dir():  # `-o ""` names the current folder; replacing a folder is never meant
            raise UserError(f"cannot write --output {path}: Is a directory", exit_code=2)
        try:
            with atomic_path(path) as tmp:
                tmp.write_bytes(self.zip_bytes())
        except OSError as exc:  # a missing or read-only folder, a full disk
            raise UserError(f"cannot write --output {path}: {exc.strerror or exc}", exit_code=2) from None


@dataclass(frozen=True)
class Sharing:
    """What `otdoctor report` does with a bundle. Nothing is written until the user has seen it:
    with nobody to ask (no terminal) and no --output, it is shown and nothing is written."""

    show_all: bool  # every file on stdout first
    write: bool
    ask: bool = False  # show the summary, then ask before writing the default zip
    echo_summary: bool = False  # after writing off a terminal: the summary on stdout, to paste
    suggest_output: bool = False  # nothing written: say how to save it


def sharing(print_all: bool, output: Path | None, interactive: bool) -> Sharing:
    if output is None and print_all:
        return Sharing(show_all=True, write=False)
    if output is None and not interactive:
        return Sharing(show_all=True, write=False, suggest_output=True)
    if output is None:
        return Sharing(show_all=False, write=True, ask=True)
    return Sharing(show_all=print_all, write=True, echo_summary=not print_all and not interactive)


def default_output(now: _dt.datetime | None = None) -> Path:
    now = now or _dt.datetime.now()
    return Path(f"otdoctor-report-{now:%Y%m%d-%H%M%S}.zip")


# Facts ------------------------------------------------------------------------------------------
def _git_state(probe: Probe, ot_dir: Path | None) -> dict[str, Any]:
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


def _gpu_facts(probe: Probe, offline: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """(summary facts, files): the NVML snapshot when the NVML adapter can take one, else `nvidia-smi -q`."""
    from otdoctor.probe import gpu_report

    return gpu_report.collect(probe)


def _python_facts(ctx: Context) -> dict[str, Any]:
    from otdoctor.onetrainer.venv_facts import venv_facts

    probe = ctx.probe
    pyenv = probe.pyenv()
    out: dict[str, Any] = {
        "otdoctor_python": sys.version.split()[0],
        "otdoctor_executable": sys.executable,
        "pyenv": {
            "root": str(pyenv.root) if pyenv.root else None,
            "versions": list(pyenv.versions),
            "global": pyenv.global_version,
        },
    }
    if ctx.ot_dir is not None and ctx.ot_dir.is_dir():
        req = probe.python_request(ctx.ot_dir)
        out["pyenv"]["request"] = {"version": req.version, "source": req.source, "installed": req.installed}
    venv = venv_facts(ctx)
    if venv is not None:
        info = venv.info
        out["venv"] = {
            "path": str(venv.path),
            "exists": venv.exists,
            "python": info.version_string if info else None,
            "error": info.error if info and not info.ok else None,
            "home": venv.cfg.get("home"),
            "packages": len(venv.dists),
        }
        ts = venv.torch_static
        if ts:
            out["torch"] = {k: ts.get(k) for k in ("version", "cuda", "hip", "git_version", "error")}
    return out


def _pip_freeze(ctx: Context) -> tuple[str, str]:
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


def _config_files(ctx: Context) -> tuple[dict[str, Any] | None, dict[str, str]]:
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


def _environment(env: Mapping[str, str]) -> str:
    lines = []
    for name in sorted(env):
        if not (name.startswith(ENV_PREFIXES) or name in ENV_NAMES):
            continue
        value = "***" if looks_secret_env(name) and env[name] else env[name]
        lines.append(f"{name}={value}")
    return "\n".join(lines) + "\n"


def _machine_facts(ctx: Context, generated_at: str, offline: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """(facts.json, the GPU's files): the machine, its GPUs, the checkout's git state, Python and the venv."""
    from otdoctor.probe.cpu import cpu_info

    probe = ctx.probe
    platform = probe.platform()
    memory = probe.memory()
    cpu = cpu_info()
    gpu, gpu_files = _gpu_facts(probe, offline)
    facts: dict[str, Any] = {
        "otdoctor_version": __version__,
        "generated_at": generated_at,
        "os": {
            "system": platform.system,
            "release": platform.release,
            "machine": platform.machine,
            "distro": platform.distro,
            "wsl": platform.wsl,
            "container": platform.container,
        },
        "cpu": {"model": cpu.model, "physical_cores": cpu.physical_cores, "logical_cores": cpu.logical_cores},
        "memory": {
            "total_bytes": memory.total_bytes,
            "available_bytes": memory.available_bytes,
            "swap_total_bytes": memory.swap_total_bytes,
        },
        "gpu": gpu,
        "onetrainer": {
            "path": str(ctx.ot_dir) if ctx.ot_dir else None,
            "source": ctx.options.ot_dir_source,
            **_git_state(probe, ctx.ot_dir),
        },
        **_python_facts(ctx),
        "offline": offline,
    }
    return facts, gpu_files


def _evidence_files(
    ctx: Context, checks: dict[str, Any], facts: dict[str, Any], gpu_files: dict[str, str], step: Callable[[str], None]
) -> dict[str, str]:
    """The zip's files before anonymising; adds the config's facts to `facts`."""
    from otdoctor.render import jsonout

    probe = ctx.probe
    step("pip freeze")
    freeze, freeze_note = _pip_freeze(ctx)
    config_facts, config_files = _config_files(ctx)
    if config_facts is not None:
        facts["config"] = config_facts
    install_log = ctx.ot_dir / INSTALL_LOG if ctx.ot_dir else None

    files: dict[str, str] = {}
    files["checks.json"] = json.dumps(checks, indent=2, ensure_ascii=False) + "\n"
    files["facts.json"] = json.dumps(jsonout._plain(facts), indent=2, ensure_ascii=False) + "\n"
    files["pip-freeze.txt"] = (f"# {freeze_note}" if freeze_note else "") + freeze
    files.update(gpu_files)
    files.update(config_files)
    if install_log is not None and install_log.is_file():
        files["install.log"] = install_log.read_text(encoding="utf-8", errors="replace")
    files["environment.txt"] = _environment(probe.env)
    if facts["onetrainer"].get("git"):
        files["git.txt"] = _git_text(probe, ctx.ot_dir)
    return files


def collect(
    probe: Probe,
    ot_dir: Path | None = None,
    config_path: Path | None = None,
    offline: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Bundle:
    """Run every check, gather the facts and files, anonymise them, render the Markdown."""
    from otdoctor.engine.doctor import make_context, run_doctor
    from otdoctor.render import jsonout, report_md

    step = progress or (lambda _msg: None)
    if config_path is not None and not config_path.is_file():
        raise UserError(f"config file not found: {config_path}", exit_code=2)
    ctx = make_context(probe, ot_dir, config_path, offline=offline)
    # Learn the secrets first, so nothing gathered below can carry one out.
    anon = for_machine(probe.env, probe.home, ctx.ot_dir)

    step("running the checks")
    report: Report = run_doctor(ctx)
    checks = jsonout.report_dict(report)

    step("collecting facts")
    facts, gpu_files = _machine_facts(ctx, checks["generated_at"], offline)
    files = _evidence_files(ctx, checks, facts, gpu_files, step)

    safe_files = {name: anon(text) for name, text in files.items()}
    safe_facts = anon.value(jsonout._plain(facts))
    safe_checks = anon.value(checks)
    markdown = anon(report_md.render(safe_facts, safe_checks, {n: len(t.encode()) for n, t in safe_files.items()}))
    safe_files = {"summary.md": markdown, **safe_files}
    return Bundle(markdown, safe_files, report.exit_code())


def _git_text(probe: Probe, ot_dir: Path | None) -> str:
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


def anonymizer_for(probe: Probe, ot_dir: Path | None) -> Anonymizer:
    return for_machine(probe.env, probe.home, ot_dir)
