"""Verifying checkpoints: single files and diffusers folders, against the catalog and a config.

A single file is judged in this order: what it is (safetensors, a pickle, or an HTML page / JSON
error / git-lfs pointer saved under a model's name), whether its data is complete, its size and
architecture against what is expected, and finally its sha256. Facts about a file are cached by
(device, inode, size, mtime, ctime), so verifying an unchanged file again reads nothing from it.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otdoctor.checkpoints.catalog import CatalogEntry, entry_for_file
from otdoctor.checkpoints.hashing import ProgressFn, VerifyCache, file_key, sha256_files
from otdoctor.checkpoints.header_rules import shown
from otdoctor.checkpoints.safetensors import SD2, SD15, SDXL, UNKNOWN
from otdoctor.checkpoints.verdict import (
    MODEL_SUFFIXES,
    Verdict,
    arch_problems,
    data_problems,
    file_facts,
    not_a_model,
    pickle_warning,
    sha_problem,
    size_problem,
)

__all__ = ["MODEL_SUFFIXES", "Verdict", "Verifier", "verify_diffusers"]

# diffusers pipeline class -> architecture (SD pipelines need the UNet's width to tell 1.5 from 2.x)
_XL_PIPELINES = ("StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLInpaintPipeline")
_SD_PIPELINES = (
    "StableDiffusionPipeline",
    "StableDiffusionImg2ImgPipeline",
    "StableDiffusionInpaintPipeline",
    "StableDiffusionDepth2ImgPipeline",
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


def _stat(path: Path, entry: CatalogEntry | None) -> os.stat_result | Verdict:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return Verdict(path, "missing", problems=(f"{path} does not exist",), entry=entry)
    except OSError as exc:
        return Verdict(path, "missing", problems=(f"cannot read {path}: {exc.strerror or exc}",), entry=entry)


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
        verdicts = [self._first_pass(Path(path), entry, arch, why) for path, entry, arch, why in list(paths)]
        need = [p for p in verdicts if isinstance(p, _Pending) and p.want_hash and not p.facts.get("sha256")]
        if need:
            self._hash(need, on_hash_start, on_bytes)
        out = [self._finish(v) if isinstance(v, _Pending) else v for v in verdicts]
        if self.cache is not None:
            self.cache.save()
        return out

    # ---------------------------------------------------------------------------------------------
    def _hash(
        self, need: list[_Pending], on_hash_start: Callable[[int], None] | None, on_bytes: ProgressFn | None
    ) -> None:
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
                self._cache_if_unchanged(p)

    def _cache_if_unchanged(self, p: _Pending) -> None:
        # The file may have changed while it was read: cache only an unchanged one.
        try:
            if file_key(os.stat(p.path)) == file_key(p.st) and self.cache is not None:
                self.cache.put(p.st, {k: v for k, v in p.facts.items() if k != "hashed_now"})
        except OSError:
            pass

    def _facts(self, path: Path, st: os.stat_result) -> dict[str, Any]:
        cached = self.cache.get(st) if self.cache is not None else None
        facts = cached if cached is not None else file_facts(path, st.st_size)
        if cached is None and self.cache is not None and not str(facts.get("error", "")).startswith("cannot read"):
            self.cache.put(st, facts)
        return facts

    def _wants_hash(self, path: Path, st: os.stat_result, facts: Mapping[str, Any], entry: CatalogEntry | None) -> bool:
        return (
            self.do_hash
            and entry is not None
            and any(f.sha256 for f in entry.files)
            and facts.get("kind") == "safetensors"
            and facts.get("missing_bytes") == 0
            and size_problem(st.st_size, entry, path.name) is None  # a wrong size cannot have the right hash
        )

    def _first_pass(
        self, path: Path, entry: CatalogEntry | None, expected_arch: str | None, why: str
    ) -> Verdict | _Pending:
        if entry is None:
            entry = entry_for_file(list(self.catalog), path)
        st = _stat(path, entry)
        if isinstance(st, Verdict):
            return st
        if path.is_dir():
            return verify_diffusers(path, self, entry, expected_arch, why)
        if not stat.S_ISREG(st.st_mode):  # a pipe or a device: reading it would block or never end
            return Verdict(path, "not-a-model", problems=(f"not a model: {path} is not a regular file",), entry=entry)
        facts = self._facts(path, st)
        return _Pending(path, st, facts, entry, expected_arch, why, self._wants_hash(path, st, facts, entry))

    def _finish(self, p: _Pending) -> Verdict:
        f, entry, size = p.facts, p.entry, p.st.st_size
        kind = f.get("kind", "not-a-model")
        if kind == "pickle":
            return Verdict(p.path, kind, size, None, (), (pickle_warning(p.path, entry),), entry=entry)
        if kind == "not-a-model":
            return not_a_model(p.path, size, f, entry)
        arch = f.get("architecture")
        problems = data_problems(f, size, entry, p.path.name)
        problems += arch_problems(arch, entry, p.expected_arch, p.expected_why)
        warnings: list[str] = []
        matched = None
        sha = f.get("sha256")
        if f.get("read_error"):
            problems.append(f"could not read the whole file: {f['read_error']}")
        elif sha and entry is not None:
            matched = entry.known_by_sha(sha)
            if matched is None:
                problems.append(sha_problem(sha, entry))
        elif entry is not None and not problems and self.do_hash and not any(k.sha256 for k in entry.files):
            warnings.append(f"the catalog has no sha256 for {entry.title}: only the structure was checked")
        if arch == UNKNOWN:
            warnings.append("architecture not recognised from the tensor names")
        return Verdict(
            p.path, kind, size, arch, tuple(problems), tuple(warnings), sha, bool(f.get("hashed_now")), matched, entry
        )


# Diffusers folders ---------------------------------------------------------------------------------
def _read_json(path: Path) -> Any:
    """The JSON in a diffusers file; ValueError (with the reason) when it cannot be read or parsed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(getattr(exc, "strerror", None) or str(exc)) from None
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _diffusers_arch(folder: Path, index: Mapping[str, Any]) -> str | None:
    cls = str(index.get("_class_name", ""))
    if cls in _XL_PIPELINES:
        return SDXL
    if cls in _SD_PIPELINES:
        try:
            unet = _read_json(folder / "unet" / "config.json")
        except ValueError:
            unet = None
        width = unet.get("cross_attention_dim") if isinstance(unet, dict) else None
        if width is None:
            return SD15
        return {768: SD15, 1024: SD2}.get(width, UNKNOWN) if isinstance(width, int) else UNKNOWN
    return UNKNOWN if cls else None


def _shard_problem(comp: Path, index: Path, shard: str) -> str | None:
    """Why a shard the index names is not there; None when it is a file beside the index."""
    name = shard if shard.isprintable() and len(shard) < 200 else shown(shard)
    if shard in ("", ".", "..") or "\0" in shard or Path(shard).name != shard:
        return f"{comp.name}/{index.name} names the shard {name!r}, not a file name in {comp.name}/"
    if not (comp / shard).is_file():
        return f"{comp.name}/{name} (listed in {index.name}) is missing"
    return None


def _index_problems(comp: Path, index: Path) -> list[str]:
    """A sharded component's `*.safetensors.index.json`: its weight_map, and every shard it names."""
    where = f"{comp.name}/{index.name}"
    try:
        data = _read_json(index)
    except ValueError as exc:
        return [f"{where} is not readable JSON ({exc})"]
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        return [f"{where}: weight_map is {shown(weight_map)}, not an object of tensor name -> shard file"]
    odd = [v for v in weight_map.values() if not isinstance(v, str)]
    if odd:
        return [f"{where}: weight_map names {shown(odd[0])} as a shard, not a file name"]
    return [p for p in (_shard_problem(comp, index, shard) for shard in sorted(set(weight_map.values()))) if p]


def _component_weights(comp: Path) -> tuple[list[Path], list[str], list[Path]]:
    """(safetensors files, problems, pickle files) of one model component folder."""
    problems: list[str] = []
    files = sorted(comp.glob("*.safetensors"))
    for index in sorted(comp.glob("*.safetensors.index.json")):
        problems += _index_problems(comp, index)
    pickles = sorted(p for p in comp.iterdir() if p.suffix in (".bin", ".ckpt", ".pt") and p.is_file())
    return files, problems, pickles


def _model_index(folder: Path, entry: CatalogEntry | None) -> dict[str, Any] | Verdict:
    """The folder's model_index.json, or the verdict on a folder that has none (or a broken one)."""
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
        index = _read_json(index_path)
        if not isinstance(index, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        return Verdict(folder, "diffusers", problems=(f"model_index.json is not readable JSON ({exc})",), entry=entry)
    return index


@dataclass
class _Components:
    """What walking a diffusers folder's components found, and the weight files left to verify."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    weights: list[Path] = field(default_factory=list)

    def add(self, folder: Path, name: str, spec: list[Any]) -> None:
        if name in (".", "..") or "\0" in name or Path(name).name != name:  # never a path out of the folder
            self.problems.append(f"model_index.json names the component {shown(name)}, not a folder name")
            return
        comp = folder / name
        self.checked.append(name)
        if not comp.is_dir():
            self.problems.append(f"component {name}/ ({spec[1]}) is missing")
            return
        if not (comp / "config.json").is_file():
            return  # tokenizers and schedulers carry no weights
        files, comp_problems, pickles = _component_weights(comp)
        self.problems += comp_problems
        if not files:
            if pickles:
                self.warnings.append(
                    f"{name}/ has only pickle weights ({pickles[0].name}); prefer a safetensors release"
                )
            else:
                self.problems.append(
                    f"component {name}/ has no weights (no .safetensors file; an incomplete download?)"
                )
        self.weights += files


def _is_component(name: str, spec: Any) -> bool:
    return not name.startswith("_") and isinstance(spec, list) and len(spec) == 2 and None not in spec


def verify_diffusers(
    folder: Path, verifier: Verifier, entry: CatalogEntry | None, expected_arch: str | None, why: str
) -> Verdict:
    index = _model_index(folder, entry)
    if isinstance(index, Verdict):
        return index
    found = _Components()
    for name, spec in sorted(index.items()):
        if _is_component(name, spec):
            found.add(folder, name, spec)
    problems, total = found.problems, 0
    if found.weights:
        sub = Verifier((), verifier.cache, do_hash=False)
        for v in sub.verify([(f, None, None, why) for f in found.weights]):
            total += v.size_bytes or 0
            problems += [f"{v.path.relative_to(folder)}: {problem}" for problem in v.problems]
    arch = _diffusers_arch(folder, index)
    problems += arch_problems(arch, entry, expected_arch, why, "model_index.json")
    return Verdict(
        folder,
        "diffusers",
        total,
        arch,
        tuple(problems),
        tuple(found.warnings),
        entry=entry,
        components=tuple(found.checked),
    )
