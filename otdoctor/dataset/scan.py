"""Scanning a concept's image folder: what OneTrainer will load, read as cheaply as possible.

- `list_concept(folder, include_subdirectories)`: the images OneTrainer collects (its extensions,
  `-masklabel`/`-condlabel` files left out) and which have a mask or a caption beside them. Only
  directory entries are read.
- `scan_images(folder, paths)`: per image, the header facts Pillow gets without decoding (size,
  mode, PNG bit depth, palette transparency, EXIF orientation), a cheap truncation test on the file's
  last bytes (decoding fully only when that test is in doubt), and a content hash only for files
  whose byte size matches another's (exact duplicates must have the same size). Files are read in
  parallel threads; results are cached per folder keyed by (device, inode, size, mtime), so a second
  scan only stats the files.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from otdoctor.onetrainer.config import data_table

CACHE_FORMAT = 2
Progress = Callable[[str, int, int], None]  # (what, done, total)

PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def image_extensions() -> frozenset[str]:
    return frozenset(data_table("training")["image_extensions"])


def _sidecar_postfixes() -> tuple[str, ...]:
    return tuple(data_table("training")["sidecar_postfixes"])


@dataclass(frozen=True)
class ConceptListing:
    folder: Path
    exists: bool
    images: tuple[Path, ...] = ()
    with_mask: frozenset[Path] = frozenset()
    with_caption: frozenset[Path] = frozenset()

    @property
    def count(self) -> int:
        return len(self.images)

    def lacking_masks(self) -> list[Path]:
        return [p for p in self.images if p not in self.with_mask]

    def lacking_captions(self) -> list[Path]:
        return [p for p in self.images if p not in self.with_caption]


def mask_path(image: Path) -> Path:
    return image.with_name(image.stem + data_table("training")["mask_postfix"])


def caption_path(image: Path) -> Path:
    return image.with_suffix(data_table("training")["caption_extension"])


def list_concept(folder: Path, include_subdirectories: bool = False) -> ConceptListing:
    """`CollectPaths` in OneTrainer's data loader, as a listing (no file is opened)."""
    if not folder.is_dir():
        return ConceptListing(folder, False)
    exts = image_extensions()
    postfixes = _sidecar_postfixes()
    table = data_table("training")
    mask_suffix, caption_ext = table["mask_postfix"], table["caption_extension"]
    found: list[tuple[str, str]] = []  # (folder, file name) of images
    names: set[str] = set()
    walker: Iterable[tuple[str, list[str], list[str]]]
    if include_subdirectories:
        walker = os.walk(folder)
    else:
        try:
            entries = [e.name for e in os.scandir(folder) if e.is_file()]
        except OSError:
            entries = []
        walker = [(str(folder), [], entries)]
    for root, _dirs, files in walker:
        for name in files:
            names.add(os.path.join(root, name))
            stem, ext = os.path.splitext(name)
            if ext.lower() in exts and not stem.endswith(postfixes):
                found.append((root, name))
    found.sort()
    images: list[Path] = []
    masks: list[Path] = []
    captions: list[Path] = []
    for root, name in found:
        p = Path(root, name)
        images.append(p)
        stem = os.path.splitext(name)[0]
        if os.path.join(root, stem + mask_suffix) in names:
            masks.append(p)
        if os.path.join(root, stem + caption_ext) in names:
            captions.append(p)
    with_mask, with_caption = frozenset(masks), frozenset(captions)
    return ConceptListing(folder, True, tuple(images), with_mask, with_caption)


@dataclass(frozen=True)
class ImageInfo:
    """What one image file is. `error` set means OneTrainer cannot load it."""

    path: str  # relative to the scanned folder
    size_bytes: int
    width: int | None = None
    height: int | None = None
    format: str | None = None
    mode: str | None = None
    bit_depth: int | None = None  # per channel, when the header says (PNG, 16-bit modes)
    palette_transparency: bool = False
    exif_orientation: int | None = None
    digest: str | None = None  # only for files whose size matches another's
    error: str | None = None

    @property
    def unsupported_mode(self) -> str | None:
        """Why OneTrainer's RGB conversion would change this image, or None."""
        if self.error:
            return None
        if self.mode == "CMYK":
            return "CMYK (colours shift when converted to RGB)"
        if (self.bit_depth or 8) > 8 or self.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            return f"{self.bit_depth or 16}-bit ({self.mode}; converted to 8-bit RGB, clipped)"
        if self.palette_transparency:
            return "palette with transparency (transparent areas turn to a palette colour)"
        return None

    @property
    def rotated(self) -> bool:
        return self.exif_orientation not in (None, 1)


def _tail_ok(fmt: str | None, path: Path, size: int) -> bool | None:
    """A cheap truncation test from the last bytes: True intact, False truncated, None unsure."""
    try:
        with open(path, "rb") as fh:
            if fmt == "PNG":
                fh.seek(max(0, size - 12))
                # Data after IEND is harmless: a tail that is not IEND only means "decode to be sure".
                return True if fh.read(12) == PNG_IEND else None
            if fmt == "JPEG":
                fh.seek(max(0, size - 1024))
                # Some cameras append data after the end-of-image marker: look in the last KiB.
                return True if b"\xff\xd9" in fh.read() else None
            if fmt == "WEBP":
                head = fh.read(12)
                if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                    (riff_size,) = struct.unpack("<I", head[4:8])
                    return riff_size + 8 <= size
                return None
    except OSError:
        return None
    return None


def _png_bit_depth(path: Path) -> int | None:
    try:
        with open(path, "rb") as fh:
            head = fh.read(26)
    except OSError:
        return None
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return head[24]
    return None


def read_image_info(path: Path, rel: str, size: int) -> ImageInfo:
    """Header-only facts about one image; decodes fully only when truncation is in doubt."""
    from PIL import Image, UnidentifiedImageError

    if size == 0:
        return ImageInfo(rel, size, error="empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                fmt = img.format
                width, height = img.size
                mode = img.mode
                transparency = mode in ("P", "PA") and ("transparency" in img.info or mode == "PA")
                orientation = None
                # JPEG/WebP/TIFF parse EXIF with the header; PNG's getexif() would decode the pixels
                # unless an eXIf chunk came before them, so PNG is asked only in that case.
                if fmt != "PNG" or "exif" in img.info:
                    try:
                        orientation = img.getexif().get(0x0112)
                    except Exception:  # a broken EXIF block is not a broken image
                        orientation = None
                intact = _tail_ok(fmt, path, size)
                if intact is not True:
                    img.load()  # raises for truncated or corrupt data
                    if intact is False:
                        raise OSError("the file ends early")
    except UnidentifiedImageError:
        return ImageInfo(rel, size, error="not an image Pillow can read")
    except Image.DecompressionBombError as exc:
        return ImageInfo(rel, size, error=f"too large to load safely: {exc}")
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        return ImageInfo(rel, size, error=f"truncated or corrupt: {exc}")
    bit_depth = _png_bit_depth(path) if fmt == "PNG" else (16 if mode.startswith("I;16") else None)
    return ImageInfo(
        rel,
        size,
        width=width,
        height=height,
        format=fmt,
        mode=mode,
        bit_depth=bit_depth,
        palette_transparency=transparency,
        exif_orientation=int(orientation) if isinstance(orientation, int) else None,
    )


def _digest(path: Path) -> str | None:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


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

    try:
        atomic_write_text(path, json.dumps({"format": CACHE_FORMAT, "folder": str(folder), "entries": entries}))
    except OSError:
        pass  # a cache that cannot be written only costs time next run


def default_workers() -> int:
    # Header reads wait on the disk more than on the GIL; a few threads per core keep it busy.
    return min(32, (os.cpu_count() or 2) * 4)


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
    stats: dict[str, tuple[Path, list[int]]] = {}
    prefix = str(folder).rstrip(os.sep) + os.sep
    for p in paths:
        sp = str(p)
        try:
            st = os.stat(sp)
        except OSError:
            continue
        rel = sp[len(prefix) :] if sp.startswith(prefix) else os.path.relpath(sp, folder)
        stats[rel] = (p, [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns])

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
    from_cache = len(results)

    total = len(stats)
    done = from_cache
    lock = threading.Lock()
    last_report = [0.0]

    def report(force: bool = False) -> None:
        if progress is None:
            return
        now = time.perf_counter()
        if force or now - last_report[0] > 0.1:
            last_report[0] = now
            progress(f"reading images in {folder.name}", done, total)

    def work(rel: str) -> tuple[str, ImageInfo]:
        nonlocal done
        path, key = stats[rel]
        info = read_image_info(path, rel, key[2])
        with lock:
            done += 1
            report()
        return rel, info

    report(force=True)
    if todo:
        with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
            for rel, info in pool.map(work, todo):
                results[rel] = info

    # Exact duplicates have the same byte size: hash only those (cached hashes are reused).
    by_size: dict[int, list[str]] = defaultdict(list)
    for rel, info in results.items():
        if not info.error:
            by_size[info.size_bytes].append(rel)
    to_hash = [rel for group in by_size.values() if len(group) > 1 for rel in group if results[rel].digest is None]
    if to_hash:
        with ThreadPoolExecutor(max_workers=workers or default_workers()) as pool:
            for rel, digest in zip(to_hash, pool.map(lambda r: _digest(stats[r][0]), to_hash)):
                results[rel] = ImageInfo(**{**asdict(results[rel]), "digest": digest})
    report(force=True)

    if cache_path is not None and (todo or to_hash or len(cached) != len(results)):
        _save_cache(
            cache_path, folder, {rel: {"key": stats[rel][1], "info": asdict(info)} for rel, info in results.items()}
        )
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
