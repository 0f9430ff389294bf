"""Running the commands of one install or fix: output streamed to the UI, kept whole in a log."""

from __future__ import annotations

import datetime as _dt
import os
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import IO, Protocol

from otdoctor.errors import UserError
from otdoctor.probe import Probe
from otdoctor.probe.stream import stream_command
from otdoctor.redact import redact

PHASE_TITLES = {
    "preflight": "Pre-flight checks",
    "checkout": "OneTrainer checkout",
    "python": "Python through pyenv",
    "venv": "Virtual environment",
    "pip": "pip and setuptools",
    "requirements": "OneTrainer's requirements",
    "check": "otdoctor check",
}

Argv = Sequence[str | os.PathLike[str]]


# The user interface the installer talks to; the CLI gives a rich one, tests a plain one -------
class InstallUI(Protocol):
    def phase(self, name: str, title: str) -> None: ...
    def done(self, name: str, detail: str) -> None: ...
    def output(self, line: str) -> None: ...
    def message(self, text: str) -> None: ...
    def confirm(self, question: str) -> bool: ...


class PhaseFailed(UserError):
    """A phase's command failed: names the phase, the last log lines and the log's path."""

    def __init__(self, phase: str, what: str, tail: Iterable[str], log_path: Path | None) -> None:
        lines = [f"install failed in phase '{phase}' ({PHASE_TITLES.get(phase, phase)}): {what}"]
        tail = list(tail)
        if tail:
            lines.append("last lines of the log:")
            lines.extend("    " + line for line in tail[-15:])
        hint = (
            f"full log: {log_path}\nfix the cause and run the same command again: finished phases are kept"
            if log_path
            else None
        )
        super().__init__("\n".join(lines), exit_code=1, hint=hint)
        self.phase = phase
        self.tail = tuple(tail)
        self.log_path = log_path


def quote(args: Iterable[str | os.PathLike[str]]) -> str:
    return " ".join(shlex.quote(str(a)) for a in args)


class Session:
    """Runs the commands of one install/fix: streams output to the UI, keeps it whole in a log."""

    def __init__(self, probe: Probe, ui: InstallUI, log_path: Path | None) -> None:
        self.probe = probe
        self.ui = ui
        self.log_path = log_path
        self._log: IO[str] | None = None

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in self.probe.env.items() if k not in ("PYTHONHOME", "PYTHONPATH", "VIRTUAL_ENV")}
        env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONUNBUFFERED="1", GIT_TERMINAL_PROMPT="0", PIP_NO_INPUT="1")
        return env

    def log(self) -> IO[str] | None:
        if self._log is None and self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 - held for the session
            self._log.write(f"\n=== otdoctor {_dt.datetime.now().isoformat(timespec='seconds')} ===\n")
            self._log.flush()
        return self._log

    def note(self, text: str) -> None:
        log = self.log()
        if log is not None:
            log.write(redact(text) + "\n")
            log.flush()

    def run(self, phase: str, argv: Argv, cwd: Path | None = None, what: str | None = None) -> None:
        result = stream_command(argv, self.env, log=self.log(), on_line=self.ui.output, cwd=cwd)
        if not result.ok:
            cmd = what or quote(argv)
            why = result.error or f"`{cmd}` exited with {result.returncode}"
            raise PhaseFailed(phase, why, result.tail, self.log_path)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class QuietUI:
    """Used when a repair runs outside `otdoctor fix` (a test calling it directly)."""

    def phase(self, name: str, title: str) -> None: ...
    def done(self, name: str, detail: str) -> None: ...
    def output(self, line: str) -> None: ...
    def message(self, text: str) -> None: ...
    def confirm(self, question: str) -> bool:
        return False
