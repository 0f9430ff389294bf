"""The ImageMagick lines printed beside `otdoctor fix dataset.*`: what `otdoctor.dataset.repair` does
with Pillow, as `mogrify` would do it in place."""

from __future__ import annotations

import shlex
from pathlib import Path

# Flatten onto white, then 8-bit sRGB: what training's conversion to RGB should have started from.
MODE_FIX_OPTIONS = "-colorspace sRGB -depth 8 -background white -flatten"


def pad_options(side: int) -> str:
    """The guide's mogrify options: fit inside SIDE x SIDE, then pad to it on white."""
    return f"-resize {side}x{side} -background white -gravity center -extent {side}x{side}"


def in_folder(folder: Path, command: str, names: list[str] | None = None) -> str:
    """COMMAND run in FOLDER (absolute, quoted) on the files NAMES, so pasted anywhere it touches only them."""
    files = "".join(" " + shlex.quote(n) for n in names or ())
    return f"cd {shlex.quote(str(folder))} && {command}{files}"
