"""Facts several checks share, computed once per run through `ctx.memo`.

- `venv_facts(ctx)`: OneTrainer's venv: where it is, pyvenv.cfg, and what its interpreter says
  (version, stdlib, installed distributions, torch's version and CUDA build read statically).
- `torch_facts(ctx)`: what `import torch` says inside the venv (CUDA available, arch list, device
  capabilities). Importing torch takes seconds, so the answer is cached on disk keyed by the torch
  installation (path, size and mtime of its files); a changed torch is imported again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from otdoctor.check import Context
from otdoctor.probe.python import InterpreterInfo, read_pyvenv_cfg, venv_python


@dataclass(frozen=True)
class VenvFacts:
    path: Path
    exists: bool  # OneTrainer's own test: venv/bin/activate exists
    python: Path
    cfg: Mapping[str, str] = field(default_factory=dict)
    info: InterpreterInfo | None = None  # None when there is no venv

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
    name = ctx.probe.env.get("OT_PYTHON_VENV") or "venv"
    p = Path(name).expanduser()
    return p if p.is_absolute() else ctx.ot_dir / p


def venv_facts(ctx: Context) -> VenvFacts | None:
    """None when there is no OneTrainer checkout to look in."""

    def compute() -> VenvFacts | None:
        path = venv_dir(ctx)
        if path is None:
            return None
        exists = (path / "bin" / "activate").is_file() or (path / "Scripts" / "activate").is_file()
        python = venv_python(path)
        cfg = read_pyvenv_cfg(path)
        info = ctx.probe.interpreter(python, dists=True) if exists else None
        return VenvFacts(path, exists, python, cfg, info)

    return ctx.memo("venv", compute)
