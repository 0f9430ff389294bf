"""Scanning a concept's image folder: what OneTrainer will load, read as cheaply as possible.

- `list_concept(folder, include_subdirectories)` (`listing`): the images OneTrainer collects and
  which have a mask or a caption beside them. Only directory entries are read.
- `scan_images(folder, paths)`: per image, the header facts of `images.read_image_info`, and a
  content hash only for files whose byte size matches another's (exact duplicates must have the
  same size). Files are read in parallel threads; results are cached per folder keyed by (device,
  inode, size, mtime), so a second scan only stats the files.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from otdoctor.dataset.images import ImageInfo, digest, read_image_info
from otdoctor.dataset.listing import ConceptListing, list_concept

CACHE_FORMAT = 2
Progress = Callable[[str, int, int], None]  # (what, done, total)
Stats = dict[str, tuple[Path, list[int]]]  # relative path -> (path, [dev, ino, size, mtime_ns])


@dataclass(frozen=True)
class ScanResult:
    folder: Path
    images: tuple[ImageInfo, ...]
    from_cache: int = 0  # how many entries needed no reading
    duration_s: float = 0.0

    def errors(self) -> list[ImageInfo]:
        return [i for i in self.images if i.error]

    def readable(self) -> list[ImageInfo]:
        return [i for i in self.images if not i.error]

    def duplicates(self) -> list[list[str]]:
        groups: dict[str, list[str]] = defaultdict(list)
        for info in self.images:
            if info.digest:
                groups[info.digest].append(info.path)
        return [sorted(g) for g in groups.values() if len(g) > 1]

    def sizes(self) -> dict[tuple[int, int], int]:
        counts: dict[tuple[int, int], int] = defaultdict(int)
        for i in self.readable():
            counts[(i.width or 0, i.height or 0)] += 1
        return dict(counts)


def _cache_file(cache_root: Path, folder: Path) -> Path:
    key = hashlib.sha256(str(folder.resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return cache_root / "dataset" / f"{key}.json"


def _load_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
        return {}
    entries = data.get("entries")
    return entries if isinstance(entries, dict) else {}


def _save_cache(path: Path, folder: Path, entries: Mapping[str, Any]) -> None:
    from otdoctor.probe.files import atomic_write_text

    # A cache that cannot be written only costs time next run.
    with suppress(OSError):
        atomic_write_text(path, json.dumps({"format": CACHE_FORMAT, "folder": str(folder), "entries": entries}))


def default_workers() -> int:
    # Header reads wait on the disk more than on the GIL; a few threads per core keep it busy.
    return min(32, (os.cpu_count() or 2) * 4)


def _stat_all(folder: Path, paths: Sequence[Path]) -> tuple[Stats, dict[str, ImageInfo]]:
    """Each regular file's cache key by its path relative to `folder`, and the paths that are not
    regular files (a named pipe called a.png): those are reported and never opened, since reading
    a pipe would wait forever."""
    from otdoctor.probe.files import file_kind

    stats: Stats = {}
    odd: dict[str, ImageInfo] = {}
    prefix = str(folder).rstrip(os.sep) + os.sep
    for p in paths:
        sp = str(p)
        try:
            st = os.stat(sp)
        except OSError:
            continue
        rel = sp[len(prefix) :] if sp.startswith(prefix) else os.path.relpath(sp, folder)
        if not stat.S_ISREG(st.st_mode):
            odd[rel] = ImageInfo(rel, 0, error=f"not a regular file ({file_kind(st.st_mode)}), skipped unread")
            continue
        stats[rel] = (p, [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns])
    return stats, odd


def _reuse(stats: Stats, cached: Mapping[str, Any]) -> tuple[dict[str, ImageInfo], list[str]]:
    """The cached facts still valid (same key), and the paths left to read."""
    results: dict[str, ImageInfo] = {}
    todo: list[str] = []
    for rel, (_p, key) in stats.items():
        entry = cached.get(rel)
        if isinstance(entry, dict) and entry.get("key") == key:
            try:
                results[rel] = ImageInfo(**entry["info"])
                continue
            except TypeError:
                pass
        todo.append(rel)
    return results, todo


class _Reporter:
    """Progress of the reads, at most every 0.1 s unless forced; safe to call from the reading threads."""

    def __init__(self, progress: Progress | None, folder: Path, done: int, total: int) -> None:
        self.progress, self.what = progress, f"reading images in {folder.name}"
        self.done, self.total = done, total
        self.lock = threading.Lock()
        self.last = 0.0

    def report(self, force: bool = False) -> None:
        if self.progress is None:
            return
        now = time.perf_counter()
        if force or now - self.last > 0.1:
            self.last = now
            self.progress(self.what, self.done, self.total)

    def one_done(self) -> None:
        with self.lock:
            self.done += 1
            self.report()


def _read_all(todo: list[str], stats: Stats, reporter: _Reporter, workers: int) -> Iterator[tuple[str, ImageInfo]]:
    def work(rel: str) -> tuple[str, ImageInfo]:
        path, key = stats[rel]
        info = read_image_info(path, rel, key[2])
        reporter.one_done()
        return rel, info

    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(work, todo)


def _hash_same_sizes(results: dict[str, ImageInfo], stats: Stats, workers: int) -> list[str]:
    """Hash the readable files whose byte size matches another's (cached hashes are reused)."""
    by_size: dict[int, list[str]] = defaultdict(list)
    for rel, info in results.items():
        if not info.error:
            by_size[info.size_bytes].append(rel)
    to_hash = [rel for group in by_size.values() if len(group) > 1 for rel in group if results[rel].digest is None]
    if to_hash:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for rel, found in zip(to_hash, pool.map(lambda r: digest(stats[r][0]), to_hash), strict=True):
                results[rel] = ImageInfo(**{**asdict(results[rel]), "digest": found})
    return to_hash


def scan_images(
    folder: Path,
    paths: Sequence[Path],
    cache_root: Path | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
) -> ScanResult:
    """Read every image in `paths` (files under `folder`); cached by (dev, ino, size, mtime)."""
    started = time.perf_counter()
    cache_path = _cache_file(cache_root, folder) if cache_root is not None else None
    cached = _load_cache(cache_path) if cache_path else {}
    stats, odd = _stat_all(folder, paths)
    results, todo = _reuse(stats, cached)
    from_cache = len(results)
    reporter = _Reporter(progress, folder, from_cache, len(stats))
    reporter.report(force=True)
    if todo:
        results.update(_read_all(todo, stats, reporter, workers or default_workers()))
    # Exact duplicates have the same byte size: hash only those.
    to_hash = _hash_same_sizes(results, stats, workers or default_workers())
    reporter.report(force=True)
    if cache_path is not None and (todo or to_hash or len(cached) != len(results)):
        _save_cache(
            cache_path, folder, {rel: {"key": stats[rel][1], "info": asdict(info)} for rel, info in results.items()}
        )
    results.update(odd)
    images = tuple(results[rel] for rel in sorted(results))
    return ScanResult(folder, images, from_cache, time.perf_counter() - started)


# Facts shared by the config and dataset checks ---------------------------------------------------
@dataclass(frozen=True)
class ConceptData:
    index: int
    name: str
    folder: Path
    listing: ConceptListing
    concept: Any  # otdoctor.onetrainer.config.Concept
    scan: ScanResult | None = None


@dataclass(frozen=True)
class DatasetFacts:
    concepts: tuple[ConceptData, ...] = field(default_factory=tuple)


def listing_facts(ctx: Any) -> DatasetFacts:
    """Every enabled concept of the run's config, listed (no image opened). Memoised per run."""
    from otdoctor.onetrainer.config import config_facts

    def compute() -> DatasetFacts:
        facts = config_facts(ctx)
        cfg = facts.config
        if cfg is None:
            return DatasetFacts()
        out = []
        for i, concept in enumerate(cfg.concepts):
            if not concept.enabled or not concept.path:
                continue
            folder = cfg.resolve(concept.path)
            out.append(
                ConceptData(i, concept.name, folder, list_concept(folder, concept.include_subdirectories), concept)
            )
        return DatasetFacts(tuple(out))

    return ctx.memo("dataset.listing", compute)


def scan_facts(ctx: Any) -> DatasetFacts:
    """Every enabled concept's images read (header facts, truncation, duplicates). Memoised per run.

    Reports progress through `ctx.options.extra["progress"]` (what, done, total) when the CLI
    provides it (a spinner or bar on a terminal).
    """
    from otdoctor.probe.files import cache_dir

    def compute() -> DatasetFacts:
        listed = listing_facts(ctx)
        root = cache_dir(ctx.probe.env)
        progress = ctx.options.extra.get("progress")
        out = []
        for cd in listed.concepts:
            if not cd.listing.exists:
                out.append(cd)
                continue
            scan = scan_images(cd.folder, cd.listing.images, cache_root=root, progress=progress)
            out.append(ConceptData(cd.index, cd.name, cd.folder, cd.listing, cd.concept, scan))
        return DatasetFacts(tuple(out))

    return ctx.memo("dataset.scan", compute)
