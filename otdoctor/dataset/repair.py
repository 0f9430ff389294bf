"""`otdoctor fix dataset.resolution`: the guide's mogrify, with Pillow, without touching originals.

    mogrify -resize 1024x1024 -background white -gravity center -extent 1024x1024 *

Each image is scaled to fit R x R (up or down, aspect kept) and centred on a white R x R canvas.
Its `-masklabel.png` gets the same geometry on black (outside the image nothing is trained), its
`.txt` caption is copied, so pairs stay paired. Output goes to a new folder beside the original
(`photos` -> `photos-1024px`); every file is written under a temporary name and renamed, so an
interrupted run leaves only complete files and the next run resumes where it stopped. With
`--in-place` the originals are replaced, again one atomic rename per file.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from otdoctor.dataset.listing import caption_path, mask_path
from otdoctor.probe.files import atomic_path, atomic_write_text

if TYPE_CHECKING:
    from PIL import Image

Progress = Callable[[str, int, int], None]
BACKGROUND = (255, 255, 255)
MASK_BACKGROUND = 0

_SAVE_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".avif": "AVIF",
}


def fit_box(width: int, height: int, side: int) -> tuple[int, int]:
    """`-resize SIDExSIDE`: the largest size with the same aspect that fits the square."""
    scale = min(side / width, side / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _atomic_save(img: Image.Image, dest: Path, fmt: str) -> None:
    kwargs = {"quality": 95} if fmt in ("JPEG", "WEBP", "AVIF") else {}
    with atomic_path(dest) as tmp:
        img.save(tmp, format=fmt, **kwargs)


def _atomic_copy(src: Path, dest: Path) -> None:
    with atomic_path(dest) as tmp:
        shutil.copy2(src, tmp)


def pad_image(src: Path, dest: Path, side: int) -> tuple[int, int] | None:
    """Write `src` fitted and centred on a white square; returns the pasted size (None: unchanged copy)."""
    from PIL import Image

    with Image.open(src) as img:
        img.load()
        if img.size == (side, side) and src != dest and img.mode in ("RGB", "L"):
            _atomic_copy(src, dest)
            return None
        rgb = img
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            rgb = Image.new("RGB", img.size, BACKGROUND)
            rgb.paste(rgba, mask=rgba.getchannel("A"))
        elif img.mode != "RGB":
            rgb = img.convert("RGB")
        size = fit_box(img.width, img.height, side)
        canvas = Image.new("RGB", (side, side), BACKGROUND)
        canvas.paste(rgb.resize(size, Image.Resampling.LANCZOS), ((side - size[0]) // 2, (side - size[1]) // 2))
    _atomic_save(canvas, dest, _SAVE_FORMATS.get(dest.suffix.lower(), "PNG"))
    return size


def pad_mask(src: Path, dest: Path, side: int) -> None:
    """The mask gets its image's geometry on black. Decided by the mask's own size, so an in-place
    run interrupted between an image and its mask still finishes both correctly."""
    from PIL import Image

    with Image.open(src) as m:
        if m.size == (side, side):
            if src != dest:
                _atomic_copy(src, dest)
            return
        size = fit_box(m.width, m.height, side)
        mask = m.convert("L").resize(size, Image.Resampling.BILINEAR)
    canvas = Image.new("L", (side, side), MASK_BACKGROUND)
    canvas.paste(mask, ((side - size[0]) // 2, (side - size[1]) // 2))
    _atomic_save(canvas, dest, "PNG")


@dataclass(frozen=True)
class PadResult:
    written: int
    skipped: int  # already done (resumed run) or already the right size in place
    failed: tuple[str, ...]


def pad_folder(
    folder: Path,
    images: Iterable[Path],
    side: int,
    out_folder: Path,
    progress: Progress | None = None,
) -> PadResult:
    """Pad every image (and its mask and caption) from `folder` into `out_folder` (may be the same)."""
    from PIL import Image

    items = list(images)
    in_place = out_folder.resolve() == folder.resolve()
    written = skipped = 0
    failed: list[str] = []
    for n, src in enumerate(items, 1):
        rel = src.relative_to(folder)
        dest = out_folder / rel
        try:
            m_src = mask_path(src)
            if in_place:
                with Image.open(src) as probe:
                    done = probe.size == (side, side)
                if m_src.is_file():
                    pad_mask(m_src, m_src, side)  # no-op when already square
            else:
                # A finished file exists only after its rename: it is complete. Resume past it.
                done = dest.is_file() and dest.stat().st_mtime >= src.stat().st_mtime
                if not done and m_src.is_file():
                    # Mask before image: a finished image always has its finished mask.
                    pad_mask(m_src, out_folder / m_src.relative_to(folder), side)
            if done:
                skipped += 1
            else:
                pad_image(src, dest, side)
                written += 1
            c_src = caption_path(src)
            if not in_place and c_src.is_file():
                c_dest = out_folder / c_src.relative_to(folder)
                if not c_dest.is_file():
                    _atomic_copy(c_src, c_dest)
        except (OSError, ValueError, SyntaxError) as exc:
            failed.append(f"{rel}: {exc}")
        if progress:  # each image takes milliseconds to pad: no need to throttle the reports
            progress(f"padding {folder.name}", n, len(items))
    return PadResult(written, skipped, tuple(failed))


def set_concept_path(file: Path, index: int, new_path: str, inline: bool) -> Path:
    """Point concept `index` at `new_path` in its file; the old file is kept as `<file>.bak`."""
    data = json.loads(file.read_text(encoding="utf-8"))
    concepts = data["concepts"] if inline else data
    concepts[index]["path"] = new_path
    backup = file.with_name(file.name + ".bak")
    if backup.exists():
        backup = file.with_name(f"{file.name}.{time.strftime('%Y%m%d-%H%M%S')}.bak")
    shutil.copy2(file, backup)
    atomic_write_text(file, json.dumps(data, indent=4) + "\n")
    return backup


# `otdoctor fix dataset.modes` ------------------------------------------------------------------------
ORIGINALS_SUFFIX = ".otdoctor-originals"


def originals_folder(folder: Path) -> Path:
    """Beside the concept folder, never inside it: OneTrainer's subfolder scan must not find the copies."""
    return folder.with_name(folder.name + ORIGINALS_SUFFIX)


def _as_8bit_rgb(img: Image.Image) -> Image.Image:
    """What `mogrify -colorspace sRGB -depth 8 -background white -flatten` makes of one image."""
    from PIL import Image as PilImage

    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        return img.convert("I").point(lambda v: v * (1 / 256)).convert("L")  # 16-bit scaled, not clipped
    if img.mode in ("P", "PA", "LA", "RGBA"):
        rgba = img.convert("RGBA")
        flat = PilImage.new("RGB", rgba.size, BACKGROUND)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return img.convert("RGB")


def convert_to_8bit_rgb(folder: Path, rels: Iterable[str]) -> tuple[int, tuple[str, ...]]:
    """Convert each image (relative to `folder`) in place to 8-bit RGB, in its own format; the original
    is copied first to `originals_folder(folder)` (an existing copy is never overwritten).
    Returns (converted, failures)."""
    from PIL import Image as PilImage

    keep = originals_folder(folder)
    done = 0
    failed: list[str] = []
    for rel in rels:
        src = folder / rel
        try:
            backup = keep / rel
            if not backup.exists():
                _atomic_copy(src, backup)
            with PilImage.open(src) as img:
                fmt = img.format or _SAVE_FORMATS.get(src.suffix.lower(), "PNG")
                converted = _as_8bit_rgb(img)
            _atomic_save(converted, src, fmt)
            done += 1
        except (OSError, ValueError, SyntaxError) as exc:
            failed.append(f"{rel}: {exc}")
    return done, tuple(failed)
