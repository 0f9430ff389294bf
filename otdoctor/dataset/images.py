"""What one image file is, read as cheaply as possible: the header facts Pillow gets without
decoding (size, mode, PNG bit depth, palette transparency, EXIF orientation), a truncation test on
the file's last bytes (decoding fully only when that test is in doubt), and its content hash."""

from __future__ import annotations

import hashlib
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"


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


def digest(path: Path) -> str | None:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()
