"""What verifying a checkpoint found (`Verdict`), and the judgements made from one file's facts.

The facts come from the file's first bytes only (`file_facts`: never the whole file, never
unpickled); `verify.Verifier` gathers them, hashes what needs hashing, and turns them into a
`Verdict` with the helpers here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otdoctor.checkpoints.catalog import CatalogEntry, KnownFile
from otdoctor.checkpoints.safetensors import (
    UNKNOWN,
    HeaderError,
    InvalidHeader,
    detect_architecture,
    read_header,
    sniff,
)
from otdoctor.checkpoints.tokens import page_cause, page_origin

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")
MODEL_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)
PAGE_BYTES = 64 * 1024  # a saved page names its site (title, scripts) within its first kilobytes


@dataclass(frozen=True)
class Verdict:
    """What verifying one path found. `problems` make it bad; `warnings` are worth knowing."""

    path: Path
    kind: str  # safetensors | diffusers | pickle | not-a-model | missing
    size_bytes: int | None = None
    architecture: str | None = None
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    sha256: str | None = None
    hashed_now: bool = False  # False: the hash came from the cache (or was not needed)
    matched: KnownFile | None = None  # the catalog file whose sha256 matched
    entry: CatalogEntry | None = None
    components: tuple[str, ...] = ()  # diffusers: the components checked
    login_page: str | None = None  # a saved sign-in page: from "civitai", "huggingface" or "" (unknown)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def state(self) -> str:
        if self.problems:
            return "bad"
        if self.warnings:
            return "warning"
        return "verified" if self.matched else "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "kind": self.kind,
            "size_bytes": self.size_bytes,
            "architecture": self.architecture,
            "state": self.state,
            "problems": list(self.problems),
            "warnings": list(self.warnings),
            "sha256": self.sha256,
            "catalog": self.entry.name if self.entry else None,
            "matched_file": self.matched.label or self.matched.name if self.matched else None,
        }


# Facts about one file ----------------------------------------------------------------------------
def _head(path: Path, limit: int) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(limit)


def _not_safetensors(path: Path, exc: HeaderError) -> dict[str, Any]:
    """Facts about a file whose header is not safetensors: a pickle, or what it is instead."""
    try:
        head = _head(path, PAGE_BYTES)
    except OSError as oexc:
        return {"kind": "not-a-model", "error": f"cannot read: {oexc.strerror or oexc}"}
    what = sniff(head[:512])
    pickled = what is not None and ("pickle" in what or "zip" in what)
    if path.suffix.lower() == ".safetensors" and pickled:  # loaders pick the format by the name
        return {
            "kind": "not-a-model",
            "error": f"{what}, named .safetensors: rename it to .ckpt or get the safetensors file",
        }
    if pickled or (path.suffix.lower() in PICKLE_SUFFIXES and what is None):
        return {"kind": "pickle"}
    message = str(exc).removeprefix("not a safetensors file: ")
    facts: dict[str, Any] = {"kind": "not-a-model", "error": message}
    if what and "HTML" in what:
        facts["page"] = page_origin(head, None, path) or ""
    return facts


def file_facts(path: Path, size_bytes: int) -> dict[str, Any]:
    """Structural facts read from the first bytes: never the whole file, never unpickled."""
    try:
        header = read_header(path)
    except InvalidHeader as exc:
        return {"kind": "safetensors", "invalid": str(exc)}
    except HeaderError as exc:
        return _not_safetensors(path, exc)
    except OSError as exc:
        return {"kind": "not-a-model", "error": f"cannot read: {exc.strerror or exc}"}
    return {
        "kind": "safetensors",
        "missing_bytes": header.missing_bytes,
        "tensors": len(header.tensors),
        "architecture": detect_architecture(header.tensors),
    }


def not_a_model(path: Path, size: int, f: Mapping[str, Any], entry: CatalogEntry | None) -> Verdict:
    """The verdict on a file that is no model; a saved login page says its likely cause and the fix."""
    problem = f"not a model: {f.get('error', 'unreadable')}"
    page = None
    if "page" in f:
        origin = f["page"] or page_origin(b"", entry, path)  # the page did not say: where the model lives
        problem += f"; {page_cause(origin, entry)}"
        page = origin or ""
    return Verdict(path, "not-a-model", size, None, (problem,), entry=entry, login_page=page)


def size_problem(size: int, entry: CatalogEntry, name: str) -> str | None:
    candidates = [f for f in entry.files if f.name == name] or list(entry.files)
    if not candidates or any(f.size_bytes is None for f in candidates):
        return None  # a variant of unknown exact size: the sha256 decides
    sizes = sorted({f.size_bytes for f in candidates if f.size_bytes is not None})
    if size in sizes:
        return None
    want = sizes[0] if len(sizes) == 1 else min(sizes, key=lambda s: abs(s - size))
    diff = want - size
    how = f"{diff} bytes short" if diff > 0 else f"{-diff} bytes too long"
    return f"size {size} bytes, the catalog's {entry.title} is {want} bytes ({how})"


def arch_problems(
    arch: str | None,
    entry: CatalogEntry | None,
    expected_arch: str | None,
    expected_why: str,
    source: str = "the tensor names",
) -> list[str]:
    out: list[str] = []
    if not arch or arch == UNKNOWN:
        return out
    if entry is not None and arch != entry.architecture:
        out.append(f"architecture {arch} (from {source}), but {entry.title} is {entry.architecture}")
    if expected_arch and arch != expected_arch:
        out.append(f"architecture {arch} (from {source}), but {expected_why} expects {expected_arch}")
    return out


def pickle_warning(path: Path, entry: CatalogEntry | None) -> str:
    alt = f"`{entry.download_command}` gets the .safetensors file" if entry else "use the model's .safetensors release"
    return (
        f"{path.suffix or 'the file'} is a Python pickle: loading it can run arbitrary code and its contents "
        f"cannot be checked without doing so (otdoctor never unpickles); {alt}"
    )


def data_problems(f: Mapping[str, Any], size: int, entry: CatalogEntry | None, name: str) -> list[str]:
    """A header that breaks the format, truncation, trailing data, and a size the catalog does not know."""
    if f.get("invalid"):
        return [f"invalid safetensors header: {f['invalid']}"]
    problems = []
    missing = int(f.get("missing_bytes", 0))
    if missing > 0:
        problems.append(f"truncated: {missing} bytes of {size + missing} are missing (an interrupted download)")
    elif missing < 0:
        problems.append(f"{-missing} bytes of unexpected data after the tensors (a damaged or appended file)")
    if entry is not None and missing == 0:
        sp = size_problem(size, entry, name)
        if sp:
            problems.append(sp)
    return problems


def sha_problem(sha: str, entry: CatalogEntry) -> str:
    known = ", ".join(f"{k.sha256[:12]}… ({k.label or k.name})" for k in entry.files if k.sha256)
    return f"sha256 {sha[:12]}… matches none of the known files of {entry.title}: {known}"
