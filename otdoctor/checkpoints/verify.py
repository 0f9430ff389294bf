"""Verifying checkpoints: single files and diffusers folders, against the catalog and a config.

A single file is judged in this order: what it is (safetensors, a pickle, or an HTML page / JSON
error / git-lfs pointer saved under a model's name), whether its data is complete, its size and
architecture against what is expected, and finally its sha256. Facts about a file are cached by
(device, inode, size, mtime), so verifying an unchanged file again reads nothing from it.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otdoctor.checkpoints.catalog import CatalogEntry, KnownFile, entry_for_file
from otdoctor.checkpoints.hashing import ProgressFn, VerifyCache, sha256_files
from otdoctor.checkpoints.safetensors import (
    SD2,
    SD15,
    SDXL,
    UNKNOWN,
    HeaderError,
    detect_architecture,
    read_header,
    sniff,
)

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")
MODEL_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)

# diffusers pipeline class -> architecture (SD pipelines need the UNet's width to tell 1.5 from 2.x)
_XL_PIPELINES = ("StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLInpaintPipeline")
_SD_PIPELINES = (
    "StableDiffusionPipeline",
    "StableDiffusionImg2ImgPipeline",
    "StableDiffusionInpaintPipeline",
    "StableDiffusionDepth2ImgPipeline",
)


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
def _file_facts(path: Path, size_bytes: int) -> dict[str, Any]:
    """Structural facts read from the first bytes: never the whole file, never unpickled."""
    try:
        header = read_header(path)
    except HeaderError as exc:
        try:
            with open(path, "rb") as fh:
                head = fh.read(512)
        except OSError as oexc:
            return {"kind": "not-a-model", "error": f"cannot read: {oexc.strerror or oexc}"}
        what = sniff(head)
        if path.suffix.lower() in PICKLE_SUFFIXES and (what is None or "pickle" in what or "zip" in what):
            return {"kind": "pickle"}
        if what and ("pickle" in what or "zip" in what):
            return {"kind": "pickle"}
        message = str(exc)
        if message.startswith("not a safetensors file: "):
            message = message[len("not a safetensors file: ") :]
        return {"kind": "not-a-model", "error": message}
    except OSError as exc:
        return {"kind": "not-a-model", "error": f"cannot read: {exc.strerror or exc}"}
    return {
        "kind": "safetensors",
        "missing_bytes": header.missing_bytes,
        "tensors": len(header.tensors),
        "architecture": detect_architecture(header.tensors),
    }


def _size_problem(size: int, entry: CatalogEntry, name: str) -> str | None:
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


def _arch_problems(
    arch: str | None,
    entry: CatalogEntry | None,
    expected_arch: str | None,
    expected_why: str,
    source: str = "the tensor names",
) -> list[str]:
    out = []
    if not arch or arch == UNKNOWN:
        return out
    if entry is not None and arch != entry.architecture:
        out.append(f"architecture {arch} (from {source}), but {entry.title} is {entry.architecture}")
    if expected_arch and arch != expected_arch:
        out.append(f"architecture {arch} (from {source}), but {expected_why} expects {expected_arch}")
    return out


def _pickle_warning(path: Path, entry: CatalogEntry | None) -> str:
    alt = f"`{entry.download_command}` gets the .safetensors file" if entry else "use the model's .safetensors release"
    return (
        f"{path.suffix or 'the file'} is a Python pickle: loading it can run arbitrary code and its contents "
        f"cannot be checked without doing so (otdoctor never unpickles); {alt}"
    )


@dataclass
class _Pending:
    path: Path
    st: os.stat_result
    facts: dict[str, Any]
    entry: CatalogEntry | None
    expected_arch: str | None
    expected_why: str
    want_hash: bool


@dataclass
class Verifier:
    """Verifies many paths in one go, so that the hashing of all files runs in parallel."""

    catalog: Sequence[CatalogEntry] = ()
    cache: VerifyCache | None = None
    do_hash: bool = True
    max_workers: int = 4

    def verify(
        self,
        paths: Iterable[tuple[Path, CatalogEntry | None, str | None, str]],
        on_hash_start: Callable[[int], None] | None = None,
        on_bytes: ProgressFn | None = None,
    ) -> list[Verdict]:
        """`paths`: (path, catalog entry or None = look it up by name, expected architecture, why).

        `on_hash_start(total_bytes)` is called once before hashing starts (not at all when every
        hash is cached), `on_bytes(n)` as the bytes go by.
        """
        items = list(paths)
        verdicts: list[Verdict | _Pending] = []
        for path, entry, expected_arch, why in items:
            verdicts.append(self._first_pass(Path(path), entry, expected_arch, why))
        need = [p for p in verdicts if isinstance(p, _Pending) and p.want_hash and not p.facts.get("sha256")]
        if need:
            unique = {p.path.resolve(): p for p in need}
            if on_hash_start is not None:
                on_hash_start(sum(p.st.st_size for p in unique.values()))
            results = sha256_files(unique.keys(), on_bytes, self.max_workers)
            for p in need:
                res = results[p.path.resolve()]
                if isinstance(res, OSError):
                    p.facts["read_error"] = res.strerror or str(res)
                else:
                    p.facts["sha256"] = res
                    p.facts["hashed_now"] = True
                    # The file may have changed while it was read: cache only an unchanged one.
                    try:
                        if os.stat(p.path).st_mtime_ns == p.st.st_mtime_ns and self.cache is not None:
                            self.cache.put(p.st, {k: v for k, v in p.facts.items() if k != "hashed_now"})
                    except OSError:
                        pass
        out = [self._finish(v) if isinstance(v, _Pending) else v for v in verdicts]
        if self.cache is not None:
            self.cache.save()
        return out

    # ---------------------------------------------------------------------------------------------
    def _first_pass(
        self, path: Path, entry: CatalogEntry | None, expected_arch: str | None, why: str
    ) -> Verdict | _Pending:
        if entry is None:
            entry = entry_for_file(list(self.catalog), path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return Verdict(path, "missing", problems=(f"{path} does not exist",), entry=entry)
        except OSError as exc:
            return Verdict(path, "missing", problems=(f"cannot read {path}: {exc.strerror or exc}",), entry=entry)
        if path.is_dir():
            return verify_diffusers(path, self, entry, expected_arch, why)
        if not stat.S_ISREG(st.st_mode):  # a pipe or a device: reading it would block or never end
            return Verdict(path, "not-a-model", problems=(f"not a model: {path} is not a regular file",), entry=entry)
        cached = self.cache.get(st) if self.cache is not None else None
        facts = cached if cached is not None else _file_facts(path, st.st_size)
        if cached is None and self.cache is not None and not str(facts.get("error", "")).startswith("cannot read"):
            self.cache.put(st, facts)
        want_hash = (
            self.do_hash
            and entry is not None
            and any(f.sha256 for f in entry.files)
            and facts.get("kind") == "safetensors"
            and facts.get("missing_bytes") == 0
            and _size_problem(st.st_size, entry, path.name) is None  # a wrong size cannot have the right hash
        )
        return _Pending(path, st, facts, entry, expected_arch, why, want_hash)

    def _finish(self, p: _Pending) -> Verdict:
        f, entry, size = p.facts, p.entry, p.st.st_size
        kind = f.get("kind", "not-a-model")
        problems: list[str] = []
        warnings: list[str] = []
        arch = f.get("architecture")
        if kind == "pickle":
            warnings.append(_pickle_warning(p.path, entry))
            return Verdict(p.path, kind, size, None, (), tuple(warnings), entry=entry)
        if kind == "not-a-model":
            problems.append(f"not a model: {f.get('error', 'unreadable')}")
            return Verdict(p.path, kind, size, None, tuple(problems), entry=entry)
        missing = int(f.get("missing_bytes", 0))
        if missing > 0:
            problems.append(f"truncated: {missing} bytes of {size + missing} are missing (an interrupted download)")
        elif missing < 0:
            problems.append(f"{-missing} bytes of unexpected data after the tensors (a damaged or appended file)")
        if entry is not None and missing == 0:
            sp = _size_problem(size, entry, p.path.name)
            if sp:
                problems.append(sp)
        problems += _arch_problems(arch, entry, p.expected_arch, p.expected_why)
        matched = None
        sha = f.get("sha256")
        if f.get("read_error"):
            problems.append(f"could not read the whole file: {f['read_error']}")
        elif sha and entry is not None:
            matched = entry.known_by_sha(sha)
            if matched is None:
                known = ", ".join(f"{k.sha256[:12]}… ({k.label or k.name})" for k in entry.files if k.sha256)
                problems.append(f"sha256 {sha[:12]}… matches none of the known files of {entry.title}: {known}")
        elif entry is not None and not problems and self.do_hash and not any(k.sha256 for k in entry.files):
            warnings.append(f"the catalog has no sha256 for {entry.title}: only the structure was checked")
        if arch == UNKNOWN:
            warnings.append("architecture not recognised from the tensor names")
        return Verdict(
            p.path, kind, size, arch, tuple(problems), tuple(warnings), sha, bool(f.get("hashed_now")), matched, entry
        )


# Diffusers folders ---------------------------------------------------------------------------------
def _diffusers_arch(folder: Path, index: Mapping[str, Any]) -> str | None:
    cls = str(index.get("_class_name", ""))
    if cls in _XL_PIPELINES:
        return SDXL
    if cls in _SD_PIPELINES:
        try:
            unet = json.loads((folder / "unet" / "config.json").read_text(encoding="utf-8"))
            width = unet.get("cross_attention_dim")
        except (OSError, ValueError):
            width = None
        return {768: SD15, 1024: SD2}.get(width, SD15 if width is None else UNKNOWN)
    return UNKNOWN if cls else None


def _component_weights(comp: Path) -> tuple[list[Path], list[str], list[Path]]:
    """(safetensors files, problems, pickle files) of one model component folder."""
    problems: list[str] = []
    files = sorted(comp.glob("*.safetensors"))
    for index in sorted(comp.glob("*.safetensors.index.json")):
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        except (OSError, ValueError, AttributeError):
            problems.append(f"{comp.name}/{index.name} is not readable JSON")
            continue
        for shard in sorted(set(weight_map.values())):
            if not (comp / shard).is_file():
                problems.append(f"{comp.name}/{shard} (listed in {index.name}) is missing")
    pickles = sorted(p for p in comp.iterdir() if p.suffix in (".bin", ".ckpt", ".pt") and p.is_file())
    return files, problems, pickles


def verify_diffusers(
    folder: Path, verifier: Verifier, entry: CatalogEntry | None, expected_arch: str | None, why: str
) -> Verdict:
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        singles = sorted(p.name for p in folder.iterdir() if p.suffix in MODEL_SUFFIXES) if folder.is_dir() else []
        hint = f"; it holds {', '.join(singles[:3])}: name the file instead" if singles else ""
        return Verdict(
            folder,
            "not-a-model",
            problems=(f"a folder without model_index.json: not a diffusers model{hint}",),
            entry=entry,
        )
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
        if not isinstance(index, dict):
            raise ValueError("not an object")
    except (OSError, ValueError) as exc:
        return Verdict(folder, "diffusers", problems=(f"model_index.json is not readable JSON ({exc})",), entry=entry)
    problems: list[str] = []
    warnings: list[str] = []
    checked: list[str] = []
    to_check: list[tuple[Path, CatalogEntry | None, str | None, str]] = []
    total = 0
    for name, spec in sorted(index.items()):
        if name.startswith("_") or not isinstance(spec, list) or len(spec) != 2 or spec[0] is None or spec[1] is None:
            continue
        comp = folder / name
        checked.append(name)
        if not comp.is_dir():
            problems.append(f"component {name}/ ({spec[1]}) is missing")
            continue
        if not (comp / "config.json").is_file():
            continue  # tokenizers and schedulers carry no weights
        files, comp_problems, pickles = _component_weights(comp)
        problems += comp_problems
        if not files:
            if pickles:
                warnings.append(f"{name}/ has only pickle weights ({pickles[0].name}); prefer a safetensors release")
            else:
                problems.append(f"component {name}/ has no weights (no .safetensors file; an incomplete download?)")
        to_check += [(f, None, None, why) for f in files]
    if to_check:
        sub = Verifier((), verifier.cache, do_hash=False)
        for v in sub.verify(to_check):
            total += v.size_bytes or 0
            for problem in v.problems:
                problems.append(f"{v.path.relative_to(folder)}: {problem}")
    arch = _diffusers_arch(folder, index)
    problems += _arch_problems(arch, entry, expected_arch, why, "model_index.json")
    return Verdict(
        folder, "diffusers", total, arch, tuple(problems), tuple(warnings), entry=entry, components=tuple(checked)
    )
