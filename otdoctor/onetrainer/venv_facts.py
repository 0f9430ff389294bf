"""Facts several checks share, computed once per run through `ctx.memo`.

- `venv_facts(ctx)`: OneTrainer's venv: where it is, pyvenv.cfg, and what its interpreter says
  (version, stdlib, installed distributions, torch's version and CUDA build read statically).
- `torch_facts(ctx)`: what `import torch` says inside the venv (CUDA available, arch list, device
  capabilities). Importing torch takes seconds, so the answer is cached on disk keyed by the torch
  installation (path, size and mtime of its files); a changed torch is imported again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from otdoctor.onetrainer.commands import venv_folder
from otdoctor.probe.files import refusing_folder
from otdoctor.probe.python import SCRIPT as INTERPRETER_SCRIPT
from otdoctor.probe.python import InterpreterInfo, read_pyvenv_cfg, venv_python

if TYPE_CHECKING:
    from otdoctor.engine.check import Context


@dataclass(frozen=True)
class VenvFacts:
    path: Path
    exists: bool  # OneTrainer's own test: venv/bin/activate exists
    python: Path
    cfg: Mapping[str, str] = field(default_factory=dict)
    info: InterpreterInfo | None = None  # None when there is no venv
    unreadable: str | None = None  # the folder that refused this user (another user's venv)

    @property
    def dists(self) -> dict[str, str]:
        """Installed distributions, canonical name -> version."""
        from packaging.utils import canonicalize_name

        items = (self.info.data.get("dists") if self.info else None) or []
        return {canonicalize_name(d["name"]): d["version"] for d in items}

    @property
    def torch_static(self) -> Mapping[str, Any] | None:
        return self.info.data.get("torch_static") if self.info else None


def venv_dir(ctx: Context) -> Path | None:
    if ctx.ot_dir is None:
        return None
    return venv_folder(ctx.ot_dir, ctx.probe.env)


def venv_facts(ctx: Context) -> VenvFacts | None:
    """None when there is no OneTrainer checkout to look in."""

    def compute() -> VenvFacts | None:
        path = venv_dir(ctx)
        if path is None:
            return None
        refused = refusing_folder(path)
        if refused is not None:
            return VenvFacts(path, False, path / "bin" / "python", unreadable=refused)
        exists = (path / "bin" / "activate").is_file() or (path / "Scripts" / "activate").is_file()
        python = venv_python(path)
        cfg = read_pyvenv_cfg(path)
        info = interpreter_cached(ctx, python, dists=True, watch=_venv_watch(path)) if exists else None
        return VenvFacts(path, exists, python, cfg, info)

    return ctx.memo("venv", compute)


# Answers that are slow to get (importing torch, running pip) are kept on disk between runs, keyed
# by a fingerprint of what they depend on; a changed fingerprint means ask again.
def _disk_cached(
    ctx: Context,
    name: str,
    key: Mapping[str, Any],
    compute: Callable[[], tuple[Any, bool]],
    valid: Callable[[Any], bool],
) -> tuple[Any, bool]:
    """(value, from_cache). `compute` returns (value, keep): failures are not kept, so a fixed
    machine (a library installed with apt, a driver loaded) is seen on the next run. A stored value
    `valid` refuses (a damaged or hand-edited cache file) is discarded and computed again."""
    import hashlib
    import json

    from otdoctor.probe.files import cache_dir, read_json, write_json

    key_text = json.dumps(key, sort_keys=True, default=str)
    venv_id = hashlib.sha256(str(key.get("venv")).encode()).hexdigest()[:16]
    path = cache_dir(ctx.probe.env) / "venv-facts" / f"{name}-{venv_id}.json"
    stored = read_json(path)
    if isinstance(stored, dict) and stored.get("key") == json.loads(key_text) and valid(stored.get("value")):
        return stored.get("value"), True
    value, keep = compute()
    if keep:
        with contextlib.suppress(OSError):  # a read-only cache folder costs speed, not correctness
            write_json(path, {"key": json.loads(key_text), "value": value})
    return value, False


def _machine_key(ctx: Context) -> dict[str, Any]:
    """What can change torch's CUDA answers without touching torch: a reboot, the driver, device
    nodes, and the variables that hide GPUs."""
    from otdoctor.probe.fingerprint import glob_names, read_small_text

    probe = ctx.probe
    env = probe.env
    return {
        "boot_id": read_small_text(probe.system_path("/proc/sys/kernel/random/boot_id")),
        "nvidia_driver": read_small_text(probe.system_path("/proc/driver/nvidia/version")),
        "devices": [p.name for p in glob_names(probe.system_path("/dev"), "nvidia*")]
        + [p.name for p in glob_names(probe.system_path("/dev"), "kfd")],
        "visible": {k: env.get(k) for k in ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES")},
    }


def _python_key(facts: VenvFacts) -> dict[str, Any]:
    """The interpreter (its real file: a venv's python links to the base one), pyvenv.cfg, and every
    installed distribution: an import also fails when a dependency is removed or replaced (pip
    uninstall typing_extensions breaks `import torch` without touching torch's files)."""
    from otdoctor.probe.fingerprint import read_small_text, realpath, stat_signature

    real = realpath(facts.python)
    return {
        "venv": str(facts.path),
        "python": real,
        "python_stat": stat_signature([Path(real)]),
        "pyvenv_cfg": read_small_text(facts.path / "pyvenv.cfg"),
        "installed": stat_signature(_venv_watch(facts.path)),
    }


def _torch_value_ok(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    answer = value.get("torch")
    return isinstance(value.get("error"), str) or (
        isinstance(answer, dict) and (isinstance(answer.get("import_error"), str) or "import_error" not in answer)
    )


def _interpreter_value_ok(value: Any) -> bool:
    if not isinstance(value, dict) or not isinstance(value.get("data") or {}, dict):
        return False
    version = value.get("version")
    return (
        isinstance(value.get("executable"), (str, type(None)))
        and isinstance(value.get("ok"), bool)
        and (version is None or (isinstance(version, list) and all(isinstance(v, int) for v in version)))
        and _dists_ok((value.get("data") or {}).get("dists") or [])
    )


def _dists_ok(dists: Any) -> bool:
    return isinstance(dists, list) and all(
        isinstance(d, dict) and isinstance(d.get("name"), str) and isinstance(d.get("version"), str) for d in dists
    )


@dataclass(frozen=True)
class TorchFacts:
    """What `import torch` said inside the venv.

    importable: the import succeeded. error: why not (import error, crash, timeout).
    data: version, cuda, hip, arch_list, cuda_available, device_count, capabilities (as
          interpreter_script.py's `_torch_import` reports them). cached: read from disk.
    """

    importable: bool
    error: str | None
    data: Mapping[str, Any]
    cached: bool = False


def torch_facts(ctx: Context, timeout_s: float = 180.0) -> TorchFacts | None:
    """`venv/bin/python -c 'import torch; ...'`, cached on disk per torch installation.

    None when there is no venv or no torch in it (see `VenvFacts.torch_static`). The key holds the
    venv, its interpreter, torch's version.py and _C*.so, torch's dist-info (size and mtime), and
    the machine state that changes CUDA answers (boot, driver, device nodes, *_VISIBLE_DEVICES).
    """

    def compute() -> TorchFacts | None:
        from otdoctor.probe.fingerprint import glob_names, stat_signature

        facts = venv_facts(ctx)
        if facts is None or not facts.exists or facts.info is None or not facts.info.ok:
            return None
        static = facts.torch_static
        if not static or not static.get("path"):
            return None
        torch_dir = Path(static["path"])
        files = [torch_dir / "version.py", *glob_names(torch_dir, "_C*.so"), *glob_names(torch_dir, "_C*.pyd")]
        for dist_info in glob_names(torch_dir.parent, "torch-*.dist-info"):
            files += [dist_info / "RECORD", dist_info / "METADATA"]
        key = {**_python_key(facts), "torch": stat_signature(files), "machine": _machine_key(ctx)}

        def ask() -> tuple[Any, bool]:
            info = ctx.probe.interpreter(facts.python, torch=True, timeout_s=timeout_s)
            if not info.ok:
                return {"error": info.error}, False
            answer = info.data.get("torch") or {}
            return {"torch": answer}, "import_error" not in answer

        value, cached = _disk_cached(ctx, "torch", key, ask, _torch_value_ok)
        if "error" in value:
            return TorchFacts(False, value["error"], {}, cached)
        answer = value["torch"]
        if "import_error" in answer:
            return TorchFacts(False, answer["import_error"], answer, cached)
        return TorchFacts(True, None, answer, cached)

    return ctx.memo("torch", compute)


@dataclass(frozen=True)
class PipFacts:
    """What `venv/bin/python -m pip --version` said. runs: exit 0; output: its first line."""

    runs: bool
    output: str
    cached: bool = False


def pip_facts(ctx: Context) -> PipFacts | None:
    """`venv/bin/python -m pip --version`, cached on disk while pip and the interpreter are unchanged.

    None when there is no working venv interpreter. pip takes ~0.25 s to start, a third of the
    whole `otdoctor check` budget, so a known-good answer is reused.
    """

    def compute() -> PipFacts | None:
        from otdoctor.probe.fingerprint import glob_names, stat_signature

        facts = venv_facts(ctx)
        if facts is None or not facts.exists or facts.info is None or not facts.info.ok:
            return None
        files: list[Path] = []
        for d in facts.info.data.get("dists") or []:
            if (d.get("name") or "").lower() == "pip" and d.get("location"):
                loc = Path(d["location"])
                files += [loc / "pip" / "__init__.py", *[p / "RECORD" for p in glob_names(loc, "pip-*.dist-info")]]
        key = {**_python_key(facts), "pip": stat_signature(files)}

        def ask() -> tuple[Any, bool]:
            env = {k: v for k, v in ctx.probe.env.items() if not k.startswith(("PYTHON", "PIP_"))}
            res = ctx.probe.run([facts.python, "-I", "-m", "pip", "--version"], timeout_s=60, env=env)
            text = (res.stdout.strip() or res.stderr.strip()).splitlines()
            line = text[0] if res.ok and text else res.describe_failure()
            return {"runs": res.ok, "output": line}, res.ok

        value, cached = _disk_cached(
            ctx, "pip", key, ask, lambda v: isinstance(v, dict) and isinstance(v.get("output"), str)
        )
        return PipFacts(bool(value.get("runs")), str(value.get("output")), cached)

    return ctx.memo("pip", compute)


def _venv_watch(venv: Path) -> list[Path]:
    """What changes when packages are installed or removed, found by `stat` alone: pip adds and
    removes entries in site-packages (so its mtime moves), writes one `<name>-<version>.dist-info`
    folder per distribution (names and mtimes say what is installed, at which version), and rewrites
    torch/version.py on a torch reinstall."""
    from otdoctor.probe.fingerprint import glob_names

    site = glob_names(venv, "lib/python*/site-packages") + glob_names(venv, "Lib/site-packages")
    installed = [p for s in site for pattern in ("*.dist-info", "*.egg-info", "*.pth") for p in glob_names(s, pattern)]
    return [venv / "pyvenv.cfg", *site, *installed, *[s / "torch" / "version.py" for s in site]]


def interpreter_cached(
    ctx: Context, exe: Path, dists: bool = False, watch: list[Path] | None = None
) -> InterpreterInfo:
    """`probe.interpreter(exe)`, with a good answer kept on disk until the interpreter, the files
    in `watch` (site-packages, lib-dynload) or the boot change. Starting an interpreter and
    importing its stdlib costs 60-100 ms of the 0.5 s `otdoctor check` budget; a broken
    interpreter is asked every time."""
    from otdoctor.probe.fingerprint import read_small_text, realpath, stat_signature

    real = realpath(exe)
    key = {
        "venv": f"{exe}|dists={dists}",
        "python": real,
        "python_stat": stat_signature([Path(real)]),
        "watch": stat_signature(watch or []),
        "boot_id": read_small_text(ctx.probe.system_path("/proc/sys/kernel/random/boot_id")),
        "script": stat_signature([INTERPRETER_SCRIPT]),
    }

    def ask() -> tuple[Any, bool]:
        info = ctx.probe.interpreter(exe, dists=dists)
        value = {
            "executable": info.executable,
            "ok": info.ok,
            "error": info.error,
            "version": list(info.version) if info.version else None,
            "data": dict(info.data),
        }
        return value, info.ok

    value, _cached = _disk_cached(ctx, "python", key, ask, _interpreter_value_ok)
    version = tuple(value["version"]) if value.get("version") else None
    return InterpreterInfo(value["executable"], value["ok"], value.get("error"), version, value.get("data") or {})
