"""Running external commands: a timeout, lenient decoding, a missing executable as a value."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int | None  # None when the command did not run or did not finish
    stdout: str = ""
    stderr: str = ""
    missing: bool = False  # the executable does not exist
    timed_out: bool = False
    error: str | None = None  # OSError text when it could not start for another reason
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def describe_failure(self) -> str:
        """One line saying why the command did not succeed, for a finding."""
        cmd = " ".join(self.argv)
        if self.missing:
            return f"{self.argv[0]} not found"
        if self.timed_out:
            return f"`{cmd}` did not finish within {self.duration_s:.0f} s"
        if self.error:
            return f"`{cmd}` could not start: {self.error}"
        last = (self.stderr.strip() or self.stdout.strip()).splitlines()
        tail = f": {last[-1]}" if last else ""
        return f"`{cmd}` exited with {self.returncode}{tail}"


def which(name: str, env: Mapping[str, str]) -> str | None:
    """`command -v NAME` on the probe's PATH."""
    return shutil.which(name, path=env.get("PATH", os.defpath))


def run(
    argv: Sequence[str | os.PathLike[str]],
    env: Mapping[str, str],
    timeout_s: float = 10.0,
    cwd: str | os.PathLike[str] | None = None,
    stdin_text: str | None = None,
) -> CommandResult:
    args = tuple(str(a) for a in argv)
    exe = args[0]
    if os.sep not in exe and which(exe, env) is None:
        return CommandResult(args, None, missing=True)
    if os.sep in exe and not Path(exe).exists():
        return CommandResult(args, None, missing=True)
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            args,
            env=dict(env),
            cwd=cwd,
            input=stdin_text.encode() if stdin_text is not None else None,
            stdin=None if stdin_text is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired as exc:
        return CommandResult(args, None, _decode(exc.stdout), _decode(exc.stderr), timed_out=True, duration_s=timeout_s)
    except FileNotFoundError:
        return CommandResult(args, None, missing=True)
    except OSError as exc:
        return CommandResult(args, None, error=exc.strerror or str(exc), duration_s=time.perf_counter() - start)
    return CommandResult(
        args, proc.returncode, _decode(proc.stdout), _decode(proc.stderr), duration_s=time.perf_counter() - start
    )


def _decode(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", errors="replace")
