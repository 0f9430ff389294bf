"""Where the user keeps checkpoints, and which catalog models are there.

Places, in order: folders given with `--models-dir`, the OneTrainer checkout's `models/`, the
Hugging Face cache (`HF_HUB_CACHE`, `HF_HOME/hub`, `~/.cache/huggingface/hub`, and a config's
`huggingface_cache_dir`), and the path or repo id a config names as `base_model_name`. The cache is
read by its documented layout (`models--ORG--NAME/snapshots/COMMIT/FILE`) rather than through
huggingface_hub, whose import alone would cost `otdoctor check` a fifth of a second;
`otdoctor models list --all` uses `huggingface_hub.scan_cache_dir` for the full picture.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from otdoctor.checkpoints.catalog import CatalogEntry
from otdoctor.checkpoints.verdict import MODEL_SUFFIXES
from otdoctor.probe.files import refusing_folder

MAX_SCAN_DEPTH = 4
PARTIAL_SUFFIX = ".safetensors.part"  # an interrupted `otdoctor models download`
MAX_SCAN_ENTRIES = 20000


@dataclass(frozen=True)
class Place:
    path: Path
    how: str  # "--models-dir", "OneTrainer models/", "Hugging Face cache", ...


@dataclass(frozen=True)
class Found:
    path: Path
    how: str
    entry: CatalogEntry | None = None


@dataclass(frozen=True)
class BaseModel:
    """What a config's base_model_name points at."""

    value: str
    path: Path | None  # the file or folder on disk, when found
    how: str
    repo_id: str | None = None  # when the value is a Hugging Face repo id


def hf_hub_cache(env: Mapping[str, str], home: Path) -> Path:
    """huggingface_hub's cache folder, resolved the way the library does."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(var):
            return Path(env[var]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    base = Path(env["XDG_CACHE_HOME"]).expanduser() if env.get("XDG_CACHE_HOME") else home / ".cache"
    return base / "huggingface" / "hub"


def hf_caches(env: Mapping[str, str], home: Path, extra: Iterable[Path] = ()) -> list[Place]:
    places = [Place(hf_hub_cache(env, home), "Hugging Face cache")]
    places += [Place(Path(p).expanduser(), "config huggingface_cache_dir") for p in extra]
    seen: set[Path] = set()
    out = []
    for p in places:
        if p.path not in seen:
            seen.add(p.path)
            out.append(p)
    return out


def _repo_dir(cache: Path, repo_id: str) -> Path:
    return cache / ("models--" + repo_id.replace("/", "--"))


def _snapshots(cache: Path, repo_id: str, revision: str = "main") -> list[Path]:
    """The repo's snapshot folders, the one `revision` points at first."""
    repo = _repo_dir(cache, repo_id)
    snaps = repo / "snapshots"
    try:
        if not snaps.is_dir():
            return []
    except OSError:  # a cache folder this user may not enter (another user's ~/.cache)
        return []
    out: list[Path] = []
    try:
        commit = (repo / "refs" / revision).read_text(encoding="utf-8").strip()
        if (snaps / commit).is_dir():
            out.append(snaps / commit)
    except OSError:
        pass
    try:
        others = sorted(
            (p for p in snaps.iterdir() if p.is_dir() and p not in out), key=lambda p: p.stat().st_mtime, reverse=True
        )
    except OSError:
        others = []
    return out + others


def hf_cached_file(caches: Sequence[Place], repo_id: str, filename: str, revision: str = "main") -> Found | None:
    for place in caches:
        for snap in _snapshots(place.path, repo_id, revision):
            if (snap / filename).exists():  # a dangling link (blob deleted) does not count
                return Found(snap / filename, place.how)
    return None


def hf_cached_snapshot(caches: Sequence[Place], repo_id: str) -> Found | None:
    for place in caches:
        for snap in _snapshots(place.path, repo_id):
            if (snap / "model_index.json").exists():
                return Found(snap, place.how)
    return None


def scan(
    root: Path, max_depth: int = MAX_SCAN_DEPTH, max_entries: int = MAX_SCAN_ENTRIES, closed: list[str] | None = None
) -> list[Path]:
    """Model files and diffusers folders under `root`, a few levels deep, hidden folders skipped.

    Folders this user may not list go into `closed` (the highest closed folder on the way)."""
    found: list[Path] = []
    seen = 0
    stack = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        entries = _listing(folder, closed)
        if entries is None:
            continue
        if any(e.name == "model_index.json" for e in entries):
            found.append(Path(folder))
            continue  # its components are verified as part of the folder
        for e in sorted(entries, key=lambda e: e.name):
            seen += 1
            if seen > max_entries:
                return found
            if e.name.startswith("."):
                continue
            try:
                if e.is_dir():
                    if depth < max_depth:
                        stack.append((Path(e.path), depth + 1))
                elif e.name.lower().endswith(MODEL_SUFFIXES) or e.name.lower().endswith(PARTIAL_SUFFIX):
                    found.append(Path(e.path))
            except OSError:
                continue
    return sorted(found)


def _listing(folder: Path, closed: list[str] | None) -> list[os.DirEntry[str]] | None:
    """The entries of FOLDER, or None when it cannot be listed (a closed one noted in `closed`)."""
    try:
        return list(os.scandir(folder))
    except PermissionError:
        if closed is not None:
            closed.append(refusing_folder(folder) or str(folder))
    except OSError:
        pass
    return None


def search_places(models_dirs: Iterable[Path], ot_dir: Path | None) -> list[Place]:
    places = [Place(Path(d).expanduser(), "--models-dir") for d in models_dirs]
    if ot_dir is not None and os.path.isdir(ot_dir / "models"):  # False, not an error, in a closed checkout
        places.append(Place(ot_dir / "models", "OneTrainer models/"))
    return places


@dataclass
class _Sorter:
    """Files found in the places, sorted into catalog copies, interrupted downloads and the rest."""

    catalog: Sequence[CatalogEntry]
    partials: dict[str, list[Found]] | None
    by_name: dict[str, list[Found]] = field(default_factory=dict)
    others: list[Found] = field(default_factory=list)
    seen: set[Path] = field(default_factory=set)

    def add(self, path: Path, how: str) -> None:
        key = path.resolve()
        if key in self.seen:
            return
        self.seen.add(key)
        if path.name.lower().endswith(PARTIAL_SUFFIX):
            owner = next((e for e in self.catalog if path.name[: -len(".part")] in e.file_names), None)
            if owner is not None and self.partials is not None:
                self.partials.setdefault(owner.name, []).append(Found(path, how, owner))
            return
        entry = next((e for e in self.catalog if path.name in e.file_names), None)
        if entry is not None:
            self.by_name[entry.name].append(Found(path, how, entry))
        else:
            self.others.append(Found(path, how))

    def add_cached(self, caches: Sequence[Place]) -> None:
        for e in self.catalog:
            if e.source != "huggingface" or not e.repo:
                continue
            hit = hf_cached_file(caches, e.repo, e.filename, e.revision)
            if hit is not None and hit.path.resolve() not in self.seen:
                self.seen.add(hit.path.resolve())
                self.by_name[e.name].append(Found(hit.path, hit.how, e))


def find_catalog_models(
    catalog: Sequence[CatalogEntry],
    places: Sequence[Place],
    caches: Sequence[Place],
    partials: dict[str, list[Found]] | None = None,
    closed: list[str] | None = None,
) -> tuple[dict[str, list[Found]], list[Found]]:
    """(catalog name -> copies found, other model files found in the places).

    Interrupted downloads (`NAME.safetensors.part`) of catalog models go into `partials`, the
    folders this user may not read (where a checkpoint would stay unseen) into `closed`.
    """
    sorter = _Sorter(catalog, partials, {e.name: [] for e in catalog})
    for place in places:
        for path in scan(place.path, closed=closed):
            sorter.add(path, place.how)
    if closed is not None:
        closed += [c for c in (refusing_folder(p.path) for p in caches) if c]
    sorter.add_cached(caches)
    return sorter.by_name, sorter.others


def _looks_like_repo_id(value: str) -> bool:
    parts = value.split("/")
    return (
        len(parts) == 2
        and all(parts)
        and not value.startswith((".", "~"))
        and not value.lower().endswith(MODEL_SUFFIXES)
    )


def resolve_base_model(value: str, ot_dir: Path | None, caches: Sequence[Place]) -> BaseModel | None:
    """Find what a config's base_model_name names: a file, a folder, or a repo in the HF cache."""
    value = value.strip()
    if not value:
        return None
    p = Path(value).expanduser()
    if not p.is_absolute() and ot_dir is not None:
        p = ot_dir / p
    if p.exists():
        return BaseModel(value, p, "config base_model_name")
    if _looks_like_repo_id(value):
        hit = hf_cached_snapshot(caches, value)
        if hit is not None:
            return BaseModel(value, hit.path, f"config base_model_name, {hit.how}", repo_id=value)
        return BaseModel(value, None, "config base_model_name", repo_id=value)
    return BaseModel(value, None, "config base_model_name")
