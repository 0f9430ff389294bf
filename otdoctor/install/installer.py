"""`otdoctor install`: a correct OneTrainer install, re-runnable after any interruption.

Phases, in order: preflight (read-only), checkout, python, venv, pip, requirements, then
`otdoctor check` on the result. Each phase verifies the machine first and does nothing when its
result is already there, so running the command again after Ctrl-C, a kill or a lost network
continues where it stopped. A state file records what finished (and the requirements' hash),
but every phase is verified on disk, never trusted from the state alone.

The same building blocks (`Session`, `create_venv`, `install_requirements`, `rebuild_venv`...)
serve the repairs of `otdoctor fix`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shlex
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from otdoctor.data import load_table
from otdoctor.errors import UserError
from otdoctor.onetrainer import checkout as ot_probe
from otdoctor.probe import Probe
from otdoctor.probe.files import atomic_write_text, read_json
from otdoctor.probe.python import InterpreterInfo, match_installed, read_pyvenv_cfg, venv_python
from otdoctor.probe.stream import stream_command
from otdoctor.redact import redact

LOG_NAME = "otdoctor-install.log"
STATE_NAME = ".otdoctor-install.json"
PHASES = ("checkout", "python", "venv", "pip", "requirements")
PHASE_TITLES = {
    "preflight": "Pre-flight checks",
    "checkout": "OneTrainer checkout",
    "python": "Python through pyenv",
    "venv": "Virtual environment",
    "pip": "pip and setuptools",
    "requirements": "OneTrainer's requirements",
    "check": "otdoctor check",
}
USER_DATA = ("workspace", "workspace-cache", "models", "training_concepts", "training_samples", "secrets.json")


def _load_data() -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        pass  # type: ignore[no-redef]
    return load_table("install.toml")


DATA = _load_data()


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


# Running commands with a log ---------------------------------------------------------------------
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
            self._log = open(self.log_path, "a", encoding="utf-8")
            self._log.write(f"\n=== otdoctor {_dt.datetime.now().isoformat(timespec='seconds')} ===\n")
            self._log.flush()
        return self._log

    def note(self, text: str) -> None:
        log = self.log()
        if log is not None:
            log.write(redact(text) + "\n")
            log.flush()

    def run(
        self, phase: str, argv: list[str | os.PathLike[str]], cwd: Path | None = None, what: str | None = None
    ) -> None:
        result = stream_command(argv, self.env, log=self.log(), on_line=self.ui.output, cwd=cwd)
        if not result.ok:
            cmd = what or quote(argv)
            why = result.error or f"`{cmd}` exited with {result.returncode}"
            raise PhaseFailed(phase, why, result.tail, self.log_path)

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


# Which requirements file: the launcher's rule, plus what the launcher does not look at ----------
@dataclass(frozen=True)
class GpuFacts:
    nvidia: bool
    rocm: bool
    smi: str | None = None
    driver_version: str | None = None
    driver_cuda: tuple[int, int] | None = None  # the nvidia-smi header's "CUDA Version"
    compute_caps: tuple[tuple[int, int], ...] = ()
    names: tuple[str, ...] = ()


def _system_exists(probe: Probe, path: str) -> bool:
    # The probe looks fixed paths up under its sysroot (OTDOCTOR_SYSROOT in tests).
    exists = getattr(probe, "system_exists", None)
    return bool(exists(path)) if exists else os.path.lexists(path)


def detect_gpu(probe: Probe) -> GpuFacts:
    """The GPUs that decide the platform file: NVML through the probe (the same facts the gpu.*
    checks see), else `nvidia-smi` (header and `--query-gpu=name,driver_version,compute_cap`),
    `/dev/nvidia0` and `/dev/kfd` as the launcher looks."""
    read_nvml = getattr(probe, "gpu", None)
    if read_nvml is not None:
        try:
            info = read_nvml()
        except Exception:  # a GPU the driver cannot describe: fall back to what the launcher sees
            info = None
        if info is not None and getattr(info, "devices", ()):
            v = info.cuda_driver_version
            return GpuFacts(
                True,
                _system_exists(probe, "/dev/kfd"),
                smi=None,
                driver_version=info.driver_version,
                driver_cuda=(v // 1000, (v % 1000) // 10) if v else None,
                compute_caps=tuple(d.compute_capability for d in info.devices if d.compute_capability),
                names=tuple(d.name for d in info.devices),
            )
    smi = probe.which("nvidia-smi")
    wsl_smi = "/usr/lib/wsl/lib/nvidia-smi"
    if smi is None and _system_exists(probe, wsl_smi):
        smi = str(probe.system_path(wsl_smi)) if hasattr(probe, "system_path") else wsl_smi
    nvidia = smi is not None or _system_exists(probe, "/dev/nvidia0")
    rocm = _system_exists(probe, "/dev/kfd")
    if smi is None:
        return GpuFacts(nvidia, rocm)
    driver_cuda = None
    header = probe.run([smi], timeout_s=15)
    m = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", header.stdout)
    if m:
        driver_cuda = (int(m.group(1)), int(m.group(2)))
    caps: list[tuple[int, int]] = []
    names: list[str] = []
    driver = None
    query = probe.run([smi, "--query-gpu=name,driver_version,compute_cap", "--format=csv,noheader"], timeout_s=15)
    for line in query.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3:
            names.append(parts[0])
            driver = parts[1] or driver
            cm = re.match(r"(\d+)\.(\d+)", parts[2])
            if cm:
                caps.append((int(cm.group(1)), int(cm.group(2))))
    return GpuFacts(nvidia, rocm, smi, driver, driver_cuda, tuple(caps), tuple(names))


@dataclass(frozen=True)
class PlatformChoice:
    key: str  # cuda, cuda-legacy, rocm, cpu, custom
    file: str  # a file name inside the checkout
    reason: str
    warnings: tuple[str, ...] = ()
    blocker: str | None = None  # no file in the checkout suits this machine: why, and what to do


PLATFORMS = ("auto", "cuda", "cuda-legacy", "rocm", "cpu")


def choose_platform(probe: Probe, requested: str = "auto", gpu: GpuFacts | None = None) -> PlatformChoice:
    files: dict[str, str] = DATA["platform_files"]
    if requested not in PLATFORMS:
        raise UserError(f"unknown --platform {requested!r}; choose one of {', '.join(PLATFORMS)}", exit_code=2)
    if requested != "auto":
        return PlatformChoice(requested, files[requested], f"--platform {requested}")
    env_choice = probe.env.get("OT_PLATFORM_REQUIREMENTS", "").strip()
    if env_choice and env_choice != "detect":
        key = next((k for k, f in files.items() if f == env_choice), "custom")
        return PlatformChoice(key, env_choice, "OT_PLATFORM_REQUIREMENTS")
    gpu = gpu or detect_gpu(probe)
    if gpu.nvidia:
        label = ", ".join(gpu.names) or "an NVIDIA GPU"
        sm120 = any(c >= (12, 0) for c in gpu.compute_caps)
        old_cc = [c for c in gpu.compute_caps if c < (7, 5)]
        if gpu.driver_cuda is not None and gpu.driver_cuda[0] < 13:
            drv = f"{gpu.driver_version or 'the driver'} supports CUDA {gpu.driver_cuda[0]}.{gpu.driver_cuda[1]}"
            if sm120:
                return PlatformChoice(
                    "cuda-legacy",
                    files["cuda-legacy"],
                    f"{label}: {drv}",
                    blocker=(
                        f"{label} (compute capability 12.0) needs a torch build for CUDA 12.8 or newer, "
                        f"but {drv} and the legacy requirements are CUDA 12.6: update the NVIDIA driver to "
                        "580.65.06 or newer (sudo ubuntu-drivers install, or NVIDIA's installer), then run again"
                    ),
                )
            return PlatformChoice(
                "cuda-legacy",
                files["cuda-legacy"],
                f"{label}: {drv}; the cu130 build needs a driver >= 580 (CUDA 13)",
                warnings=("updating the NVIDIA driver to 580 or newer allows the faster CUDA 13 build",),
            )
        if old_cc:
            cc = ", ".join(f"{a}.{b}" for a, b in old_cc)
            return PlatformChoice(
                "cuda-legacy",
                files["cuda-legacy"],
                f"{label}: compute capability {cc}; CUDA 13 builds dropped GPUs below 7.5",
            )
        why = f"{label}" + (f", driver CUDA {gpu.driver_cuda[0]}.{gpu.driver_cuda[1]}" if gpu.driver_cuda else "")
        return PlatformChoice("cuda", files["cuda"], why)
    if gpu.rocm:
        return PlatformChoice("rocm", files["rocm"], "/dev/kfd exists (AMD ROCm)")
    return PlatformChoice("cpu", files["cpu"], "no NVIDIA or AMD GPU found")


# Requirements: parse, hash, verify against a venv -----------------------------------------------
def requirement_files(ot_dir: Path, platform_file: str) -> list[Path]:
    return [ot_dir / "requirements-global.txt", ot_dir / platform_file]


def requirements_hash(ot_dir: Path, platform_file: str) -> str:
    h = hashlib.sha256(platform_file.encode())
    for path in _expand_requirement_files(requirement_files(ot_dir, platform_file)):
        try:
            h.update(path.read_bytes())
        except OSError:
            h.update(b"<missing>")
    return h.hexdigest()


def _expand_requirement_files(files: list[Path], seen: set[Path] | None = None) -> list[Path]:
    seen = seen if seen is not None else set()
    out: list[Path] = []
    for path in files:
        if path in seen:
            continue
        seen.add(path)
        out.append(path)
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            m = re.match(r"^\s*(?:-r|--requirement)\s*=?\s*(\S+)", line)
            if m:
                out.extend(_expand_requirement_files([path.parent / m.group(1)], seen))
    return out


def parse_requirements(files: list[Path]) -> list[tuple[str, str, str]]:
    """(canonical name, specifier, original line) of every requirement in the files and their -r includes.

    Editable VCS lines give their `#egg=` name with no specifier; index options are skipped.
    """
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    found: list[tuple[str, str, str]] = []
    for path in _expand_requirement_files(files):
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for raw in lines:
            line = re.sub(r"(^|\s)#.*$", "", raw).strip() if not raw.strip().startswith("-e") else raw.strip()
            if not line:
                continue
            if line.startswith(("-e", "--editable")):
                m = re.search(r"#egg=([A-Za-z0-9_.\-]+)", line)
                if m:
                    found.append((canonicalize_name(m.group(1)), "", raw.strip()))
                continue
            if line.startswith("-"):
                continue
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if req.marker is not None and not req.marker.evaluate():
                continue
            found.append((canonicalize_name(req.name), str(req.specifier), raw.strip()))
    return found


def unmet_requirements(files: list[Path], dists: dict[str, str]) -> list[str]:
    """Requirement lines the venv's installed distributions do not satisfy (name -> version map)."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    unmet: list[str] = []
    for name, spec, line in parse_requirements(files):
        version = dists.get(name)
        if version is None:
            unmet.append(f"{line} (not installed)")
            continue
        if spec:
            try:
                if not SpecifierSet(spec).contains(Version(version), prereleases=True):
                    unmet.append(f"{line} (installed {version})")
            except InvalidVersion:
                continue
    return unmet


def venv_dists(probe: Probe, venv: Path) -> dict[str, str] | None:
    from packaging.utils import canonicalize_name

    info = probe.interpreter(venv_python(venv), dists=True)
    if not info.ok:
        return None
    return {canonicalize_name(d["name"]): d["version"] for d in (info.data.get("dists") or [])}


def setuptools_pin(ot_dir: Path) -> str:
    """The launcher's `setuptools==X` pin, read from lib.include.sh, else otdoctor's default."""
    try:
        text = (ot_dir / "lib.include.sh").read_text(errors="replace")
    except OSError:
        text = ""
    m = re.search(r"install[^\n]*\bpip\s+(setuptools==[0-9][^\s\"']*)", text)
    return m.group(1) if m else DATA["setuptools_pin"]


# The venv: create, verify, rebuild ---------------------------------------------------------------
def venv_problem(probe: Probe, venv: Path, python_prefix: Path | None) -> str | None:
    """Why this venv is not usable as built from `python_prefix` (None: it is fine)."""
    if not (venv / "bin" / "activate").is_file():
        return f"{venv} has no bin/activate"
    info: InterpreterInfo = probe.interpreter(venv_python(venv))
    if not info.ok:
        return f"its interpreter does not run ({info.error})"
    if python_prefix is not None:
        home = read_pyvenv_cfg(venv).get("home", "")
        if Path(home).resolve() != (python_prefix / "bin").resolve():
            return f"it was made from {home or 'an unknown Python'}, not {python_prefix / 'bin'}"
    pip = probe.run([venv_python(venv), "-m", "pip", "--version"], timeout_s=30)
    if not pip.ok:
        return "pip does not run inside it"
    return None


def create_venv(session: Session, phase: str, python_exe: Path, venv: Path, cwd: Path) -> None:
    session.run(phase, [python_exe, "-m", "venv", venv], cwd=cwd)


def move_aside(venv: Path) -> Path:
    """Rename a venv out of the way; it is removed only after its replacement works."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = venv.with_name(f"{venv.name}.otdoctor-old-{stamp}")
    n = 1
    while aside.exists():
        aside = venv.with_name(f"{venv.name}.otdoctor-old-{stamp}-{n}")
        n += 1
    os.replace(venv, aside)
    return aside


def upgrade_pip(session: Session, phase: str, venv: Path, ot_dir: Path) -> None:
    session.run(
        phase,
        [
            venv_python(venv),
            "-m",
            "pip",
            "install",
            "--upgrade",
            "--upgrade-strategy",
            "eager",
            "pip",
            setuptools_pin(ot_dir),
        ],
        cwd=ot_dir,
    )


def install_requirements(session: Session, phase: str, venv: Path, ot_dir: Path, platform_file: str) -> None:
    """What update.sh runs: both files, eager upgrades, so a `git pull` gets the pinned versions."""
    files = requirement_files(ot_dir, platform_file)
    for f in files:
        if not f.is_file():
            raise UserError(
                f"{f} does not exist in the checkout", hint="choose another --platform, or update OneTrainer"
            )
    session.run(
        phase,
        [
            venv_python(venv),
            "-m",
            "pip",
            "install",
            "--upgrade",
            "--upgrade-strategy",
            "eager",
            "-r",
            files[0].name,
            "-r",
            files[1].name,
        ],
        cwd=ot_dir,
    )


def rebuild_commands(python_exe: Path, venv: Path, ot_dir: Path, platform_file: str) -> list[str]:
    vpy = venv_python(venv)
    return [
        f"mv {quote([venv])} {quote([str(venv) + '.otdoctor-old-<time>'])}",
        quote([python_exe, "-m", "venv", venv]),
        quote([vpy, "-m", "pip", "install", "--upgrade", "--upgrade-strategy", "eager", "pip", setuptools_pin(ot_dir)]),
        quote(
            [
                vpy,
                "-m",
                "pip",
                "install",
                "--upgrade",
                "--upgrade-strategy",
                "eager",
                "-r",
                "requirements-global.txt",
                "-r",
                platform_file,
            ]
        ),
        f"rm -rf {quote([str(venv) + '.otdoctor-old-<time>'])}   # only after the new venv works",
    ]


def remember_aside(ot_dir: Path, aside: Path) -> None:
    """Record a venv moved aside, so a run killed before the new venv works still cleans it later."""
    path = ot_dir / STATE_NAME
    state = read_json(path)
    state = state if isinstance(state, dict) else {"phases": {}}
    state.setdefault("venv_aside", []).append(str(aside))
    atomic_write_text(path, json.dumps(state, indent=1, sort_keys=True))


def forget_aside(ot_dir: Path, aside: Path | None = None) -> list[str]:
    """Drop one recorded venv (it was put back), or all of them (returned: a working venv replaced them)."""
    path = ot_dir / STATE_NAME
    state = read_json(path)
    if not isinstance(state, dict) or not state.get("venv_aside"):
        return []
    recorded = list(state["venv_aside"])
    state["venv_aside"] = [a for a in recorded if aside is not None and a != str(aside)]
    if not state["venv_aside"]:
        state.pop("venv_aside")
    atomic_write_text(path, json.dumps(state, indent=1, sort_keys=True))
    return recorded if aside is None else []


def remove_superseded_venvs(ot_dir: Path) -> None:
    """A new venv works: the ones moved aside before (this run or a killed one) can go now."""
    for aside in forget_aside(ot_dir):
        p = Path(aside)
        if ".otdoctor-old-" in p.name:  # only folders otdoctor itself named and recorded
            shutil.rmtree(p, ignore_errors=True)


def rebuild_venv(
    session: Session, python_exe: Path, python_prefix: Path, venv: Path, ot_dir: Path, platform_file: str
) -> str:
    """Move the venv aside, make a new one from exactly `python_exe`, install, verify; then delete the old.

    If anything fails, the new venv is removed and the old one is put back, so the user is never
    left with less than they had. A kill mid-way leaves the old one aside and recorded in the state
    file; the next successful rebuild (or install) removes it.
    """
    aside = move_aside(venv) if os.path.lexists(venv) else None
    if aside is not None:
        remember_aside(ot_dir, aside)
    try:
        create_venv(session, "venv", python_exe, venv, ot_dir)
        upgrade_pip(session, "pip", venv, ot_dir)
        install_requirements(session, "requirements", venv, ot_dir, platform_file)
        problem = venv_problem(session.probe, venv, python_prefix)
        if problem:
            raise UserError(f"the rebuilt venv does not work: {problem}")
    except BaseException:
        if aside is not None:
            shutil.rmtree(venv, ignore_errors=True)
            os.replace(aside, venv)
            forget_aside(ot_dir, aside)
            session.note(f"restored the previous venv from {aside}")
        raise
    remove_superseded_venvs(ot_dir)
    return f"rebuilt {venv} from {python_exe}"


# The install itself --------------------------------------------------------------------------------
@dataclass
class InstallOptions:
    dir: Path | None = None
    repo_url: str | None = None
    ref: str | None = None
    python: str | None = None
    platform: str = "auto"
    dry_run: bool = False
    yes: bool = False


@dataclass
class PlanStep:
    phase: str
    done: bool
    summary: str
    commands: list[str] = field(default_factory=list)


def _normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if url.endswith(".git"):
        url = url[:-4]
    if "://" not in url and not re.match(r"^[\w.-]+@[\w.-]+:", url):
        return str(Path(url).expanduser().resolve())
    return url.lower()


class Installer:
    def __init__(self, probe: Probe, opts: InstallOptions, ui: InstallUI) -> None:
        self.probe = probe
        self.opts = opts
        self.ui = ui
        raw_dir = opts.dir or Path(DATA["default_dir"].replace("~", str(probe.home), 1))
        self.dir = Path(raw_dir).expanduser()
        if not self.dir.is_absolute():
            self.dir = probe.cwd / self.dir
        self.dir = Path(os.path.normpath(self.dir))
        self.repo_url = opts.repo_url or DATA["repo_url"]
        if "://" not in self.repo_url and not re.match(r"^[\w.-]+@", self.repo_url):
            local = Path(self.repo_url).expanduser()
            self.repo_url = str(local if local.is_absolute() else (probe.cwd / local).resolve())
        self.python_request = opts.python or DATA["default_python"]
        self.log_path = self.dir / LOG_NAME
        self.state_path = self.dir / STATE_NAME
        self.venv = self.dir / (probe.env.get("OT_PYTHON_VENV") or "venv")
        self.session = Session(probe, ui, None if opts.dry_run else self.log_path)
        self.platform: PlatformChoice | None = None
        self.pyenv = probe.pyenv()

    # State --------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        data = read_json(self.state_path)
        return data if isinstance(data, dict) else {"phases": {}}

    def save_phase(self, phase: str, **facts: Any) -> None:
        state = self.state()
        state.setdefault("phases", {})[phase] = {"finished": _dt.datetime.now().isoformat(timespec="seconds"), **facts}
        state["repo_url"] = redact(self.repo_url)
        atomic_write_text(self.state_path, json.dumps(state, indent=1, sort_keys=True))

    def _forget_phases_from(self, phase: str) -> None:
        state = self.state()
        phases = state.get("phases", {})
        later = PHASES[PHASES.index(phase) :]
        if any(p in phases for p in later):
            for p in later:
                phases.pop(p, None)
            atomic_write_text(self.state_path, json.dumps(state, indent=1, sort_keys=True))

    # Pre-flight (read-only) ----------------------------------------------------------------------
    def preflight(self) -> list[str]:
        """Refuse early, before anything is touched. Returns warnings worth showing."""
        warnings: list[str] = []
        if " " in str(self.dir):
            raise UserError(
                f"the install folder {self.dir} contains a space; OneTrainer's launchers break on it",
                hint="choose a folder without spaces, e.g. --dir ~/Projects/OneTrainer",
            )
        if self.probe.which("git") is None:
            raise UserError(
                "git is not installed; OneTrainer is cloned with git and its editable dependencies too",
                hint="sudo apt install git",
            )
        if self.pyenv.root is None or self.pyenv.executable is None:
            raise UserError(
                "pyenv is not installed; the guide installs OneTrainer's Python through pyenv",
                hint="curl -fsSL https://pyenv.run | bash   (then add pyenv to your shell as it prints, and open a new terminal)",
            )
        disk = self.probe.disk_usage(self.dir)
        if disk is not None and (disk.fstype or "").lower() in DATA["bad_filesystems"]:
            raise UserError(
                f"{self.dir} is on a {disk.fstype} filesystem ({disk.mountpoint}); a venv needs symlinks and permissions FAT/exFAT lack",
                hint="install onto an ext4/btrfs/xfs drive, e.g. --dir ~/Projects/OneTrainer",
            )
        self.platform = choose_platform(self.probe, self.opts.platform)
        if self.platform.blocker:
            raise UserError(self.platform.blocker)
        warnings.extend(self.platform.warnings)
        if disk is not None:
            need = DATA["min_free_bytes"].get(self.platform.key, DATA["min_free_bytes"]["cuda"])
            have_venv = (self.venv / "bin" / "activate").is_file()
            if disk.free_bytes < need and not have_venv:
                from otdoctor.render import human_bytes

                raise UserError(
                    f"only {human_bytes(disk.free_bytes)} free on {disk.mountpoint or disk.path}; "
                    f"installing OneTrainer ({self.platform.key}) needs about {human_bytes(need)}",
                    hint="free some space, or choose another --dir",
                )
        self._check_existing_dir()
        self._validate_python_request(self._python_range())
        warnings.extend(self._engine_checks())
        if self.probe.env.get("PYENV_VERSION"):
            warnings.append(
                f"PYENV_VERSION={self.probe.env['PYENV_VERSION']} is set in this shell: it overrides the "
                ".python-version the install writes; unset it before starting OneTrainer"
            )
        return warnings

    def _engine_checks(self) -> list[str]:
        """The doctor's own machine checks (git, pyenv, disk, driver), shown when not OK."""
        from otdoctor.engine.doctor import make_context, run_doctor
        from otdoctor.engine.registry import load_checks
        from otdoctor.engine.results import Status

        checks, _ = load_checks(include_plugins=False)
        wanted = [c.id for c in checks if c.area in ("system", "gpu") or c.id.startswith("python.pyenv")]
        if not wanted:
            return []
        # Not offline=True: that sets PIP_NO_INDEX for this process, and the install needs the index.
        ctx = make_context(self.probe, self.dir if self.dir.is_dir() else None)
        report = run_doctor(ctx, only=wanted)
        blocking = ("system.git", "system.disk", "gpu.driver", "python.pyenv")
        out = []
        for o in report.outcomes:
            if o.status in (Status.FAIL, Status.ERROR) and o.check_id.startswith(blocking) and o.required:
                raise UserError(
                    f"pre-flight: {o.title} ({o.check_id}): {o.result.summary}",
                    hint=" ; ".join(o.result.fix.commands) if o.result.fix and o.result.fix.commands else None,
                )
            if o.status in (Status.WARN, Status.FAIL, Status.ERROR):
                out.append(f"{o.title} ({o.check_id}): {o.result.summary}")
        return out

    def _check_existing_dir(self) -> None:
        if not self.dir.exists():
            blocker = next((a for a in self.dir.parents if a.exists()), None)
            if blocker is not None and not blocker.is_dir():
                raise UserError(
                    f"cannot create {self.dir}: {blocker} is a file, not a folder",
                    exit_code=2,
                    hint="choose another --dir",
                )
            return
        if not self.dir.is_dir():
            raise UserError(f"{self.dir} exists and is not a folder")
        if (self.dir / ".git").exists():
            origin = self.probe.git(self.dir, "remote", "get-url", "origin")
            if (
                origin.ok
                and _normalise_url(origin.stdout.strip()) != _normalise_url(self.repo_url)
                and not self._nothing_fetched()
            ):
                raise UserError(
                    f"{self.dir} is a checkout of {origin.stdout.strip()}, not {self.repo_url}",
                    hint="choose another --dir, or pass --repo-url with that repository",
                )
            return
        ours = {LOG_NAME, STATE_NAME}
        others = [p.name for p in self.dir.iterdir() if p.name not in ours]
        if others:
            raise UserError(
                f"{self.dir} exists, is not a git checkout and is not empty ({', '.join(sorted(others)[:5])})",
                hint="choose an empty or new --dir; otdoctor never overwrites files it did not make",
            )

    def _nothing_fetched(self) -> bool:
        """A clone that never got a commit (say a mistyped --repo-url): its origin may be replaced."""
        if self.probe.git(self.dir, "rev-parse", "--verify", "-q", "HEAD").ok:
            return False
        refs = self.probe.git(self.dir, "for-each-ref")
        return refs.ok and not refs.stdout.strip()

    def _python_range(self) -> tuple[str, str, str]:
        has_checkout = (self.dir / "lib.include.sh").is_file()
        return ot_probe.python_range(self.dir if has_checkout else None)

    def _validate_python_request(self, rng: tuple[str, str, str]) -> None:
        from packaging.version import InvalidVersion, Version

        lo, hi, source = rng
        prefix = match_installed(self.pyenv, self.python_request)
        candidate = prefix.name if prefix else self.python_request
        try:
            v = Version(candidate)
        except InvalidVersion:
            raise UserError(
                f"--python {self.python_request!r} is not a version like 3.10 or 3.12.4", exit_code=2
            ) from None
        base = Version(".".join(str(x) for x in (v.release + (0, 0))[:2]))
        if base < Version(lo) or base >= Version(hi):
            raise UserError(
                f"Python {candidate} is outside what OneTrainer accepts (>={lo}, <{hi}, from {source})",
                exit_code=2,
                hint=f"use --python {DATA['default_python']}",
            )
        if v.release[:3] == (3, 11, 0):
            raise UserError(
                "Python 3.11.0 exactly is rejected by OneTrainer (a dependency excludes it)",
                exit_code=2,
                hint="use a later 3.11.x, e.g. pyenv install 3.11.9, or --python 3.10",
            )

    # Phase checks (read-only) -------------------------------------------------------------------
    def checkout_problem(self) -> str | None:
        if not (self.dir / ".git").exists():
            return "not cloned yet"
        head = self.probe.git(self.dir, "rev-parse", "--verify", "-q", "HEAD")
        if not head.ok:
            return "the clone did not finish (no commit checked out)"
        if not ot_probe.looks_like_onetrainer(self.dir):
            return "the checkout has no OneTrainer launchers"
        if self.opts.ref:
            want = self.probe.git(self.dir, "rev-parse", "--verify", "-q", f"{self.opts.ref}^{{commit}}")
            if not want.ok:
                want = self.probe.git(self.dir, "rev-parse", "--verify", "-q", f"origin/{self.opts.ref}^{{commit}}")
            if not want.ok or want.stdout.strip() != head.stdout.strip():
                return f"HEAD is not {self.opts.ref}"
        return None

    def python_prefix(self) -> Path | None:
        return match_installed(self.pyenv, self.python_request)

    def python_problem(self) -> str | None:
        prefix = self.python_prefix()
        if prefix is None:
            return f"Python {self.python_request} is not installed in pyenv"
        req = self.probe.python_request(self.dir)
        if req.prefix is None or req.prefix.resolve() != prefix.resolve() or not req.source.endswith(".python-version"):
            return f".python-version does not select {prefix.name}"
        if Path(req.source).parent.resolve() != self.dir.resolve():
            return f".python-version comes from {req.source}, not the checkout"
        return None

    def pip_problem(self) -> str | None:
        dists = venv_dists(self.probe, self.venv)
        if dists is None:
            return "the venv's interpreter does not run"
        pin = setuptools_pin(self.dir)
        want = pin.split("==", 1)[1]
        if dists.get("setuptools") != want:
            return f"setuptools {dists.get('setuptools', 'missing')}, not {want}"
        return None

    def requirements_problem(self) -> str | None:
        assert self.platform is not None
        files = requirement_files(self.dir, self.platform.file)
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            return f"{', '.join(missing)} missing from the checkout"
        recorded = self.state().get("phases", {}).get("requirements", {})
        if recorded.get("hash") != requirements_hash(self.dir, self.platform.file):
            return "not installed from these requirement files yet"
        dists = venv_dists(self.probe, self.venv)
        if dists is None:
            return "the venv's interpreter does not run"
        unmet = unmet_requirements(files, dists)
        if unmet:
            return f"{len(unmet)} requirement(s) not satisfied: {unmet[0]}"
        return None

    # The plan -------------------------------------------------------------------------------------
    def plan(self) -> list[PlanStep]:
        assert self.platform is not None
        steps: list[PlanStep] = []
        vpy = venv_python(self.venv)
        problem = self.checkout_problem()
        if problem is None:
            steps.append(PlanStep("checkout", True, f"{self.dir} is a checkout of {self.repo_url}"))
        else:
            cmds = []
            if not (self.dir / ".git").exists():
                cmds.append(f"git clone {quote([self.repo_url, self.dir])}")
            else:
                cmds.append(f"git -C {quote([self.dir])} fetch origin")
            if self.opts.ref:
                cmds.append(f"git -C {quote([self.dir])} checkout {quote([self.opts.ref])}")
            steps.append(PlanStep("checkout", False, problem, cmds))
        later_todo = problem is not None
        prefix = self.python_prefix()
        version = prefix.name if prefix else self.python_request
        py_problem = self.python_problem() if not later_todo else "after the checkout"
        cmds = []
        if prefix is None:
            cmds.append(
                f"pyenv install {quote([self.python_request])}   # needs: sudo apt install {' '.join(DATA['apt_build_packages'])}"
            )
        cmds.append(f"cd {quote([self.dir])} && pyenv local {version}")
        steps.append(
            PlanStep(
                "python",
                py_problem is None,
                py_problem or f".python-version selects {version}",
                [] if py_problem is None else cmds,
            )
        )
        later_todo = later_todo or py_problem is not None
        python_exe = (prefix or (self.pyenv.root or Path("~/.pyenv")) / "versions" / version) / "bin" / "python"
        v_problem = "after the Python" if later_todo else venv_problem(self.probe, self.venv, prefix)
        cmds = []
        if v_problem and os.path.lexists(self.venv):
            cmds.append(
                f"mv {quote([self.venv])} {quote([str(self.venv) + '.otdoctor-old-<time>'])}   # removed once the new venv works"
            )
        cmds.append(quote([python_exe, "-m", "venv", self.venv]))
        steps.append(
            PlanStep(
                "venv",
                v_problem is None,
                v_problem or f"{self.venv} from {python_exe}",
                [] if v_problem is None else cmds,
            )
        )
        later_todo = later_todo or v_problem is not None
        p_problem = "after the venv" if later_todo else self.pip_problem()
        pin = setuptools_pin(self.dir) if (self.dir / "lib.include.sh").is_file() else DATA["setuptools_pin"]
        cmd = quote([vpy, "-m", "pip", "install", "--upgrade", "--upgrade-strategy", "eager", "pip", pin])
        steps.append(
            PlanStep("pip", p_problem is None, p_problem or f"pip upgraded, {pin}", [] if p_problem is None else [cmd])
        )
        later_todo = later_todo or p_problem is not None
        r_problem = "after pip" if later_todo else self.requirements_problem()
        cmd = f"cd {quote([self.dir])} && " + quote(
            [
                vpy,
                "-m",
                "pip",
                "install",
                "--upgrade",
                "--upgrade-strategy",
                "eager",
                "-r",
                "requirements-global.txt",
                "-r",
                self.platform.file,
            ]
        )
        steps.append(
            PlanStep(
                "requirements",
                r_problem is None,
                r_problem or f"requirements-global.txt + {self.platform.file} installed",
                [] if r_problem is None else [cmd],
            )
        )
        return steps

    # Running ----------------------------------------------------------------------------------------
    def run(self) -> list[PlanStep]:
        """Every phase that is not already done, in order. Returns the plan as it stood."""
        steps = self.plan()
        if self.opts.dry_run:
            return steps
        try:
            self._do_checkout()
            self._validate_python_request(self._python_range())  # the checkout's own range now
            self._do_python()
            self._do_venv()
            self._do_pip()
            self._do_requirements()
        finally:
            self.session.close()
        return steps

    def _phase(self, name: str) -> None:
        self.ui.phase(name, PHASE_TITLES[name])
        self.session.note(f"--- phase {name}")

    def _do_checkout(self) -> None:
        self._phase("checkout")
        problem = self.checkout_problem()
        if problem is None:
            head = self.probe.git(self.dir, "rev-parse", "--short", "HEAD").stdout.strip()
            self.save_phase("checkout", commit=head)
            self.ui.done("checkout", f"reusing {self.dir} at {head}")
            return
        git = ["git", "-C", str(self.dir)]
        fresh = not (self.dir / ".git").exists()
        if fresh:
            # init + fetch instead of `git clone`: works in a folder that already holds our log, and
            # an interrupted fetch is simply repeated.
            self.dir.mkdir(parents=True, exist_ok=True)
            self.session.log()  # the log lives in the checkout from the first moment
            self.session.run("checkout", git + ["init", "-q"])
        exclude = self.dir / ".git" / "info" / "exclude"
        exclude.parent.mkdir(parents=True, exist_ok=True)
        text = exclude.read_text() if exclude.is_file() else ""
        if LOG_NAME not in text:
            exclude.write_text(text + f"\n{LOG_NAME}\n{STATE_NAME}\n*.otdoctor-old-*\n")
        head = self.probe.git(self.dir, "rev-parse", "--verify", "-q", "HEAD")
        if head.ok and self.opts.ref:
            changed = self.probe.git(self.dir, "status", "--porcelain", "--untracked-files=no").stdout.split("\n")
            changed = [c[3:] for c in changed if c.strip()]
            if changed:
                raise UserError(
                    f"{self.dir} has local changes ({', '.join(changed[:5])}); switching to {self.opts.ref} could lose them",
                    hint=f"commit or stash them (git -C {self.dir} stash), or run without --ref",
                )
        remotes = self.probe.git(self.dir, "remote").stdout.split()
        if "origin" not in remotes:
            self.session.run("checkout", git + ["remote", "add", "origin", self.repo_url])
        elif self._nothing_fetched():  # the earlier try's --repo-url was wrong: use this one
            self.session.run("checkout", git + ["remote", "set-url", "origin", self.repo_url])
        self.session.run("checkout", git + ["fetch", "--tags", "--progress", "origin"], what="git fetch origin")
        if not head.ok or self.opts.ref:
            target = self.opts.ref or self._remote_default_branch()
            if self.probe.git(self.dir, "rev-parse", "--verify", "-q", f"refs/remotes/origin/{target}").ok:
                self.session.run("checkout", git + ["checkout", "-q", "-B", target, "--track", f"origin/{target}"])
            else:
                if not self.probe.git(self.dir, "rev-parse", "--verify", "-q", f"{target}^{{commit}}").ok:
                    raise UserError(f"--ref {target} is neither a branch, a tag nor a commit of {self.repo_url}")
                self.session.run("checkout", git + ["checkout", "-q", "--detach", target])
        problem = self.checkout_problem()
        if problem:
            raise PhaseFailed("checkout", problem, (), self.log_path)
        head_s = self.probe.git(self.dir, "rev-parse", "--short", "HEAD").stdout.strip()
        self.save_phase("checkout", commit=head_s)
        self.ui.done("checkout", f"{self.dir} at {head_s}")

    def _remote_default_branch(self) -> str:
        res = self.probe.git(self.dir, "ls-remote", "--symref", "origin", "HEAD", timeout_s=60)
        m = re.search(r"ref:\s+refs/heads/(\S+)\s+HEAD", res.stdout)
        return m.group(1) if m else "master"

    def _do_python(self) -> None:
        self._phase("python")
        if self.python_prefix() is None:
            packages = " ".join(DATA["apt_build_packages"])
            question = (
                f"Python {self.python_request} is not installed in pyenv. Build it now with `pyenv install "
                f"{self.python_request}` (several minutes; needs the build packages: sudo apt install {packages})?"
            )
            if not (self.opts.yes or self.ui.confirm(question)):
                raise UserError(
                    f"Python {self.python_request} is not installed in pyenv",
                    hint=f"sudo apt install {packages} && pyenv install {self.python_request}, then run this again",
                )
            self.session.run(
                "python", [self.pyenv.executable or "pyenv", "install", "--skip-existing", self.python_request]
            )
            self.pyenv = self.probe.pyenv()
        prefix = self.python_prefix()
        if prefix is None:
            raise PhaseFailed("python", f"pyenv has no {self.python_request} after installing it", (), self.log_path)
        if self.python_problem() is not None:
            self.session.run("python", [self.pyenv.executable or "pyenv", "local", prefix.name], cwd=self.dir)
        problem = self.python_problem()
        if problem:
            raise PhaseFailed("python", problem, (), self.log_path)
        self.save_phase("python", version=prefix.name)
        self.ui.done("python", f".python-version selects {prefix.name}")

    def _do_venv(self) -> None:
        self._phase("venv")
        prefix = self.python_prefix()
        assert prefix is not None
        problem = venv_problem(self.probe, self.venv, prefix)
        if problem is None:
            self.save_phase("venv", python=str(prefix / "bin" / "python"))
            self.ui.done("venv", f"reusing {self.venv}")
            return
        if os.path.lexists(self.venv):
            aside = move_aside(self.venv)
            remember_aside(self.dir, aside)
            self.ui.message(f"moved the unusable venv ({problem}) to {aside}; it is removed once the new one works")
        self._forget_phases_from("venv")
        create_venv(self.session, "venv", prefix / "bin" / "python", self.venv, self.dir)
        problem = venv_problem(self.probe, self.venv, prefix)
        if problem:
            raise PhaseFailed("venv", problem, (), self.log_path)
        self.save_phase("venv", python=str(prefix / "bin" / "python"))
        self.ui.done("venv", f"{self.venv} from {prefix / 'bin' / 'python'}")

    def _do_pip(self) -> None:
        self._phase("pip")
        if self.pip_problem() is not None:
            upgrade_pip(self.session, "pip", self.venv, self.dir)
        problem = self.pip_problem()
        if problem:
            raise PhaseFailed("pip", problem, (), self.log_path)
        self.save_phase("pip", setuptools=setuptools_pin(self.dir))
        self.ui.done("pip", f"pip upgraded, {setuptools_pin(self.dir)}")

    def _do_requirements(self) -> None:
        assert self.platform is not None
        self._phase("requirements")
        self.ui.message(f"platform: {self.platform.file} ({self.platform.reason})")
        if self.requirements_problem() is not None:
            install_requirements(self.session, "requirements", self.venv, self.dir, self.platform.file)
            dists = venv_dists(self.probe, self.venv) or {}
            unmet = unmet_requirements(requirement_files(self.dir, self.platform.file), dists)
            if unmet:
                raise PhaseFailed(
                    "requirements",
                    "pip finished but requirements are not satisfied: " + "; ".join(unmet[:3]),
                    (),
                    self.log_path,
                )
            self.save_phase(
                "requirements",
                hash=requirements_hash(self.dir, self.platform.file),
                file=self.platform.file,
                platform=self.platform.key,
            )
        else:
            self.save_phase(
                "requirements",
                hash=requirements_hash(self.dir, self.platform.file),
                file=self.platform.file,
                platform=self.platform.key,
            )
        # The new venv works: only now may the ones moved aside go.
        remove_superseded_venvs(self.dir)
        self.ui.done("requirements", f"requirements-global.txt + {self.platform.file}")


def installed_platform_file(ot_dir: Path) -> str | None:
    """The platform requirements file the last `otdoctor install` used in this checkout."""
    data = read_json(ot_dir / STATE_NAME)
    if isinstance(data, dict):
        return (data.get("phases", {}).get("requirements") or {}).get("file")
    return None


def record_requirements(ot_dir: Path, platform_file: str, platform_key: str | None = None) -> None:
    """After a repair reinstalled the requirements, keep the install state truthful."""
    path = ot_dir / STATE_NAME
    state = read_json(path)
    if not isinstance(state, dict):
        state = {"phases": {}}
    state.setdefault("phases", {})["requirements"] = {
        "finished": _dt.datetime.now().isoformat(timespec="seconds"),
        "hash": requirements_hash(ot_dir, platform_file),
        "file": platform_file,
        "platform": platform_key,
    }
    atomic_write_text(path, json.dumps(state, indent=1, sort_keys=True))


CallableUI = Callable[[str], bool]


# What the install's last step looks at: the machine and the install, not a training config.
FINAL_CHECK_AREAS = ("onetrainer", "python", "venv", "gpu", "system")


def final_check(probe: Probe, ot_dir: Path):
    """`otdoctor check --ot-dir DIR` limited to the install's areas (torch imports, CUDA where a GPU
    is, tkinter): config, dataset and checkpoints belong to planning a run, not to the install."""
    from otdoctor.engine.doctor import make_context, run_doctor
    from otdoctor.engine.registry import load_checks

    present = {c.area for c in load_checks()[0]}
    ctx = make_context(probe, ot_dir)
    return run_doctor(ctx, only=[a for a in FINAL_CHECK_AREAS if a in present])
