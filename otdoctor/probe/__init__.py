"""The probe: the only part of otdoctor that touches the machine.

Checks ask the probe; the probe returns values (never raises for an ordinary machine state such as
a missing executable or an unreadable file). Tests build a Probe with their own environment and
home folder, and with a GPU backend made from recorded real output.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from otdoctor.probe import host, launcher, python
from otdoctor.probe.commands import CommandResult, run, which


class Probe:
    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        home: Path | None = None,
        sysroot: Path | None = None,
    ) -> None:
        self.env: dict[str, str] = dict(os.environ if env is None else env)
        self.cwd = Path(cwd) if cwd else Path.cwd()
        self.home = Path(home) if home else Path(self.env.get("HOME") or Path.home())
        # Fixed system paths (/dev/nvidia0, /dev/kfd, /usr/lib/wsl/lib/nvidia-smi) are looked up
        # under this root, so a test can stand a folder in for / (env OTDOCTOR_SYSROOT).
        self.sysroot = Path(sysroot or self.env.get("OTDOCTOR_SYSROOT") or "/")

    # Commands ---------------------------------------------------------------------------------
    def run(
        self,
        argv: Sequence[str | os.PathLike[str]],
        timeout_s: float = 10.0,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        stdin_text: str | None = None,
    ) -> CommandResult:
        return run(argv, self.env if env is None else env, timeout_s=timeout_s, cwd=cwd, stdin_text=stdin_text)

    def which(self, name: str) -> str | None:
        return which(name, self.env)

    def git(self, repo: Path, *args: str, timeout_s: float = 10.0) -> CommandResult:
        """`git -C REPO ARGS`, never prompting for credentials."""
        # GIT_OPTIONAL_LOCKS=0: `git status` must not rewrite the index; looking changes nothing.
        env = {**self.env, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_OPTIONAL_LOCKS": "0"}
        return run(["git", "-C", str(repo), *args], env, timeout_s=timeout_s)

    # Fixed system paths ---------------------------------------------------------------------
    def system_path(self, path: str) -> Path:
        """An absolute system path (`/dev/kfd`) as seen under `sysroot`."""
        return self.sysroot / path.lstrip("/")

    def system_exists(self, path: str) -> bool:
        """`[[ -e PATH ]]` for a fixed system path, under `sysroot`."""
        return os.path.lexists(self.system_path(path))

    def nvidia_smi_cuda_version(self) -> launcher.SmiHeader:
        """`nvidia-smi | grep 'CUDA Version'`: the newest CUDA the driver supports."""
        return launcher.nvidia_smi_header(self)

    # Host -------------------------------------------------------------------------------------
    def disk_usage(self, path: Path) -> host.DiskUsage | None:
        return host.disk_usage(path)

    def memory(self) -> host.MemoryInfo:
        return host.memory()

    def platform(self) -> host.PlatformInfo:
        return host.platform_info()

    # Python and pyenv --------------------------------------------------------------------------
    def pyenv(self) -> python.PyenvInfo:
        return python.pyenv_info(self.env, self.home)

    def python_request(self, folder: Path) -> python.VersionRequest:
        return python.resolve_version(self.pyenv(), folder, self.env)

    def interpreter(self, exe: Path | str, dists: bool = False, torch: bool = False, timeout_s: float = 20.0):
        return python.interpreter_info(exe, self.env, dists=dists, torch=torch, timeout_s=timeout_s)

    # NVIDIA GPUs and the processes holding them (otdoctor.probe.nvml, .processes) -----------
    def gpu(self):
        """Driver, GPUs, VRAM and the processes holding it (NVML; $OTDOCTOR_NVML_SNAPSHOT replays one)."""
        from otdoctor.probe import nvml

        return nvml.read_gpu(self.env, self.run, self.which)

    def process(self, pid: int):
        from otdoctor.probe import processes

        return processes.describe(pid)

    def stop_process(self, listed, timeout_s: float = 10.0, force: bool = False):
        """Stop the process LISTED (a `process(pid)` answer) if its PID still names that process."""
        from otdoctor.probe import processes

        return processes.stop(listed, timeout_s=timeout_s, force=force)

    def current_user(self) -> str:
        from otdoctor.probe import processes

        return processes.current_user()


__all__ = ["Probe", "CommandResult"]
