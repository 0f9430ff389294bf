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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from otdoctor import __version__
from otdoctor.engine.check import Context
from otdoctor.errors import UserError
from otdoctor.probe import Probe
from otdoctor.probe.files import atomic_path
from otdoctor.report import facts
from otdoctor.report.anonymize import Anonymizer, for_machine
from otdoctor.report.environment import environment_text

T = TypeVar("T")


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


# Sections ---------------------------------------------------------------------------------------
def cannot_read(section: str, exc: BaseException) -> str:
    """What the bundle says about a section it could not read (a one-line reason, never a traceback)."""
    if isinstance(exc, OSError):
        where = exc.filename if exc.filename is not None else section
        why = "permission denied" if isinstance(exc, PermissionError) else (exc.strerror or str(exc))
        return f"cannot read {where} ({why})"
    return f"{section}: could not be collected ({type(exc).__name__}: {exc})"


@dataclass
class Gaps:
    """The sections that could not be read; the rest of the bundle is still collected and written."""

    notes: dict[str, str] = field(default_factory=dict)

    def read(self, section: str, read: Callable[[], T], fallback: Callable[[], T]) -> T:
        """READ(), or FALLBACK() with the reason noted when READ fails in any way."""
        try:
            return read()
        except Exception as exc:  # noqa: BLE001 - a bug report is wanted most when something is broken
            self.notes[section] = cannot_read(section, exc)
            return fallback()


def _host_facts(probe: Probe, gaps: Gaps) -> dict[str, Any]:
    from otdoctor.probe.cpu import cpu_info

    def os_facts() -> dict[str, Any]:
        p = probe.platform()
        return {k: getattr(p, k) for k in ("system", "release", "machine", "distro", "wsl", "container")}

    def memory() -> dict[str, Any]:
        m = probe.memory()
        return {k: getattr(m, k) for k in ("total_bytes", "available_bytes", "swap_total_bytes")}

    def cpu() -> dict[str, Any]:
        c = cpu_info()
        return {"model": c.model, "physical_cores": c.physical_cores, "logical_cores": c.logical_cores}

    return {
        "os": gaps.read("os", os_facts, dict),
        "cpu": gaps.read("cpu", cpu, dict),
        "memory": gaps.read("memory", memory, dict),
    }


def _machine_facts(ctx: Context, generated_at: str, gaps: Gaps) -> tuple[dict[str, Any], dict[str, str]]:
    """(facts.json, the GPU's files): the machine, its GPUs, the checkout's git state, Python and the venv."""
    from otdoctor.probe import gpu_report

    gpu, gpu_files = gaps.read("gpu", lambda: gpu_report.collect(ctx.probe), lambda: ({"devices": []}, {}))
    git = gaps.read("git", lambda: facts.git_state(ctx.probe, ctx.ot_dir), lambda: {"found": True, "git": False})
    return {
        "otdoctor_version": __version__,
        "generated_at": generated_at,
        **_host_facts(ctx.probe, gaps),
        "gpu": gpu,
        "onetrainer": {"path": str(ctx.ot_dir) if ctx.ot_dir else None, "source": ctx.options.ot_dir_source, **git},
        "otdoctor_python": sys.version.split()[0],
        "otdoctor_executable": sys.executable,
        "pyenv": gaps.read("pyenv", lambda: facts.pyenv_facts(ctx), dict),
        **gaps.read("venv", lambda: facts.venv_and_torch_facts(ctx), dict),
        "offline": ctx.options.offline,
    }, gpu_files


def _install_log(ot_dir: Path | None) -> dict[str, str]:
    log = ot_dir / facts.INSTALL_LOG if ot_dir else None
    if log is None or not log.is_file():
        return {}
    return {"install.log": log.read_text(encoding="utf-8", errors="replace")}


def _evidence_files(
    ctx: Context, checks: dict[str, Any], found: dict[str, Any], gpu_files: dict[str, str], gaps: Gaps
) -> dict[str, str]:
    """The zip's files before anonymising; adds the config's facts to FOUND."""
    from otdoctor.render import jsonout

    freeze, freeze_note = gaps.read("pip freeze", lambda: facts.pip_freeze(ctx), lambda: ("", ""))
    config_facts, config_files = gaps.read("config", lambda: facts.config_files(ctx), lambda: (None, {}))
    if config_facts is not None:
        found["config"] = config_facts
    files: dict[str, str] = {}
    files["checks.json"] = json.dumps(checks, indent=2, ensure_ascii=False) + "\n"
    files["pip-freeze.txt"] = (f"# {freeze_note}" if freeze_note else "") + freeze
    files.update(gpu_files)
    files.update(config_files)
    files.update(gaps.read("install log", lambda: _install_log(ctx.ot_dir), dict))
    files["environment.txt"] = environment_text(ctx.probe.env)
    if found["onetrainer"].get("git"):
        files["git.txt"] = gaps.read("git", lambda: facts.git_text(ctx.probe, ctx.ot_dir), str)
    found["not_collected"] = dict(gaps.notes)
    files["facts.json"] = json.dumps(jsonout._plain(found), indent=2, ensure_ascii=False) + "\n"
    return files


def _run_checks(ctx: Context, gaps: Gaps) -> tuple[dict[str, Any], int]:
    from otdoctor.engine.doctor import run_doctor
    from otdoctor.render import jsonout

    report = gaps.read("checks", lambda: run_doctor(ctx), lambda: None)
    if report is None:
        return {"generated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(), "checks": []}, 1
    return jsonout.report_dict(report), report.exit_code()


def collect(
    probe: Probe,
    ot_dir: Path | None = None,
    config_path: Path | None = None,
    offline: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Bundle:
    """Run every check, gather the facts and files, anonymise them, render the Markdown.

    Each section is read on its own: one that cannot be read says so in the bundle (`not_collected`
    in facts.json, a row of the summary) and every other section is still collected."""
    from otdoctor.engine.doctor import make_context
    from otdoctor.render import jsonout, report_md

    step = progress or (lambda _msg: None)
    if config_path is not None:
        try:
            found_config = config_path.is_file()
        except OSError as exc:  # a folder on the way that this user may not enter
            raise UserError(cannot_read(str(config_path), exc), exit_code=2) from None
        if not found_config:
            raise UserError(f"config file not found: {config_path}", exit_code=2)
    ctx = make_context(probe, ot_dir, config_path, offline=offline)
    gaps = Gaps()
    # Learn the secrets first, so nothing gathered below can carry one out. Not a section that may
    # fail: without it nothing could be shared safely.
    anon = for_machine(probe.env, probe.home, ctx.ot_dir)

    step("running the checks")
    checks, exit_code = _run_checks(ctx, gaps)
    step("collecting facts")
    found, gpu_files = _machine_facts(ctx, checks["generated_at"], gaps)
    step("pip freeze")
    files = _evidence_files(ctx, checks, found, gpu_files, gaps)

    safe_files = {name: anon(text) for name, text in files.items()}
    safe_facts = anon.value(jsonout._plain(found))
    safe_checks = anon.value(checks)
    markdown = anon(report_md.render(safe_facts, safe_checks, {n: len(t.encode()) for n, t in safe_files.items()}))
    safe_files = {"summary.md": markdown, **safe_files}
    return Bundle(markdown, safe_files, exit_code)


def anonymizer_for(probe: Probe, ot_dir: Path | None) -> Anonymizer:
    return for_machine(probe.env, probe.home, ot_dir)
