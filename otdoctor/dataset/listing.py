"""What OneTrainer will load from a concept's folder, from directory entries alone: its images (its
extensions, `-masklabel`/`-condlabel` files left out) and which have a mask or a caption beside them."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otdoctor.data import load_table


def _training() -> dict[str, Any]:
    return load_table("training.toml")


def image_extensions() -> frozenset[str]:
    return frozenset(_training()["image_extensions"])


def _sidecar_postfixes() -> tuple[str, ...]:
    return tuple(_training()["sidecar_postfixes"])


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
    return image.with_name(image.stem + _training()["mask_postfix"])


def caption_path(image: Path) -> Path:
    return image.with_suffix(_training()["caption_extension"])


def list_concept(folder: Path, include_subdirectories: bool = False) -> ConceptListing:
    """`CollectPaths` in OneTrainer's data loader, as a listing (no file is opened)."""
    if not folder.is_dir():
        return ConceptListing(folder, False)
    exts = image_extensions()
    postfixes = _sidecar_postfixes()
    table = _training()
    mask_suffix, caption_ext = table["mask_postfix"], table["caption_extension"]
    found: list[tuple[str, str]] = []  # (folder, file name) of images
    names: set[str] = set()
    walker: Iterable[tuple[str, list[str], list[str]]]
    if include_subdirectories:
        walker = os.walk(folder)
    else:
        try:
            # Everything but folders: a pipe named a.png is listed, so the scan can report it.
            entries = [e.name for e in os.scandir(folder) if not e.is_dir()]
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
