"""The images of every enabled concept: readable, in modes training handles, the right size, unique.

All checks share one scan per run (`otdoctor.dataset.scan.scan_facts`): header-only reads in parallel
threads, cached by (device, inode, size, mtime) so a second `otdoctor check` only stats the files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from otdoctor.dataset.mogrify import MODE_FIX_OPTIONS, in_folder, pad_options
from otdoctor.dataset.scan import ConceptData, ImageInfo, ScanResult, scan_facts
from otdoctor.engine.check import Check, Context
from otdoctor.engine.results import CheckResult, Fix, FixOutcome
from otdoctor.onetrainer.config import TrainConfig, config_facts, parse_resolution

from .config_common import CONFIG_FILE, train_config

EXAMPLES = 3


def with_imagemagick(summary: str, commands: list[str]) -> Fix:
    """The ImageMagick way, printed apart from `otdoctor fix` as the other way, never the next step."""
    return Fix(f"{summary} (ImageMagick, changes the files in place)", tuple(commands))


def _scanned(ctx: Context) -> list[ConceptData]:
    return [c for c in scan_facts(ctx).concepts if c.scan is not None]


def _scan(c: ConceptData) -> ScanResult:
    assert c.scan is not None  # _scanned keeps only scanned concepts
    return c.scan


def _examples(infos: list[ImageInfo], what: Callable[[ImageInfo], str]) -> str:
    shown = ", ".join(what(i) for i in infos[:EXAMPLES])
    return shown + (f" and {len(infos) - EXAMPLES} more" if len(infos) > EXAMPLES else "")


class DatasetCheck(Check):
    area = "dataset"
    requires = (CONFIG_FILE,)
    timeout_s = 600.0  # the first scan of a large folder; later runs read the cache


class Readable(DatasetCheck):
    id = "dataset.readable"
    title = "Images are readable"

    def diagnose(self, ctx: Context) -> CheckResult:
        concepts = _scanned(ctx)
        lines = []
        total = 0
        for c in concepts:
            bad = _scan(c).errors()
            total += len(bad)
            for info in bad:
                lines.append(f"'{c.name}': {c.folder / info.path}: {info.error}")
        n = sum(len(_scan(c).images) for c in concepts)
        if total:
            return CheckResult.fail(
                f"{total} of {n} images cannot be loaded",
                details=tuple(lines[:20]) + ((f"... and {len(lines) - 20} more",) if len(lines) > 20 else ()),
                expected="every image in an enabled concept opens and decodes",
                why="OneTrainer stops with an error when it reaches a broken image, "
                "often hours into caching or training",
                fix=Fix(
                    "re-export or delete these files (a truncated download or copy)",
                    tuple(f'rm "{c.folder / i.path}"' for c in concepts for i in _scan(c).errors())[:5],
                ),
            )
        return CheckResult.ok(f"{n} images in {len(concepts)} concept(s) open and decode")


class Modes(DatasetCheck):
    id = "dataset.modes"
    title = "Image colour modes"
    required = False

    def diagnose(self, ctx: Context) -> CheckResult:
        lines = []
        total = 0
        commands = []
        for c in _scanned(ctx):
            odd = [i for i in _scan(c).images if i.unsupported_mode]
            if odd:
                total += len(odd)
                # Every flagged file by name, run from its concept folder, so the re-check is clean.
                commands.append(in_folder(c.folder, f"mogrify {MODE_FIX_OPTIONS}", [i.path for i in odd]))
                lines.append(
                    f"'{c.name}': {len(odd)} image(s): " + _examples(odd, lambda i: f"{i.path} {i.unsupported_mode}")
                )
        if total:
            return CheckResult.warn(
                f"{total} image(s) in modes that change when converted to 8-bit RGB",
                details=tuple(lines),
                expected="8-bit RGB (or greyscale) images",
                why="training converts every image to 8-bit RGB: CMYK colours shift, 16-bit detail is clipped, "
                "transparent palette areas become a solid colour",
                fix=Fix(
                    "convert them to 8-bit sRGB, keeping the originals in a folder beside each concept's",
                    (f"otdoctor fix {self.id}",),
                    automatic=True,
                    instead=with_imagemagick("convert them to 8-bit sRGB", commands),
                ),
            )
        return CheckResult.ok("every image is 8-bit RGB or greyscale")

    def fix(self, ctx: Context, confirm: Callable[[str], bool], dry_run: bool = False) -> FixOutcome:
        from otdoctor.dataset.repair import convert_to_8bit_rgb, originals_folder

        plan = [(c, [i.path for i in _scan(c).images if i.unsupported_mode]) for c in _scanned(ctx)]
        plan = [(c, rels) for c, rels in plan if rels]
        commands = tuple(f"convert {len(r)} image(s) of '{c.name}' in {c.folder}" for c, r in plan)
        if not plan or dry_run:
            what = "convert to 8-bit RGB, keeping each original beside the concept folder"
            return FixOutcome(self.id, False, what if plan else "every image is 8-bit RGB already", commands)
        messages = []
        converted = 0
        for c, rels in plan:
            keep = originals_folder(c.folder)
            if not confirm(f"Convert {len(rels)} image(s) of '{c.name}' to 8-bit RGB (originals to {keep})?"):
                messages.append(f"'{c.name}': skipped")
                continue
            done, failed = convert_to_8bit_rgb(c.folder, rels)
            converted += done
            messages.append(f"'{c.name}': {done} converted, originals in {keep}" + (f"; {failed[0]}" if failed else ""))
        ctx.forget("dataset")
        return FixOutcome(self.id, converted > 0, "; ".join(messages), commands)


class ExifRotation(DatasetCheck):
    id = "dataset.exif-rotation"
    title = "EXIF rotation"
    required = False

    def diagnose(self, ctx: Context) -> CheckResult:
        lines = []
        total = 0
        commands = []
        for c in _scanned(ctx):
            rotated = [i for i in _scan(c).images if i.rotated]
            if rotated:
                total += len(rotated)
                commands.append(in_folder(c.folder, "mogrify -auto-orient", [i.path for i in rotated]))
                lines.append(
                    f"'{c.name}': " + _examples(rotated, lambda i: f"{i.path} (orientation {i.exif_orientation})")
                )
        if total:
            return CheckResult.warn(
                f"{total} image(s) rely on an EXIF rotation tag that training ignores",
                details=tuple(lines),
                expected="pixels stored upright (EXIF orientation 1 or none)",
                why="viewers rotate these photos, but training reads the raw pixels: the model learns sideways faces",
                fix=Fix("rotate the pixels and drop the tag (ImageMagick)", tuple(commands)),
            )
        return CheckResult.ok("no image depends on EXIF rotation")


def target_side(cfg: TrainConfig, concept: Any) -> int | None:
    """The square side images are trained at: the concept's override, else the config's resolution."""
    numbers = parse_resolution(concept.resolution_override or "") or cfg.resolutions
    return max(numbers) if numbers else None


def resolution_findings(cfg: TrainConfig, c: ConceptData) -> tuple[int | None, list[ImageInfo], list[ImageInfo]]:
    """(side, images smaller than it, non-square images that bucketing-off training crops)."""
    side = target_side(cfg, c.concept)
    if side is None or c.scan is None:
        return side, [], []
    bucketing = cfg.flag("aspect_ratio_bucketing")
    small, cropped = [], []
    for i in c.scan.readable():
        w, h = i.width or 0, i.height or 0
        if (w * h < side * side) if bucketing else (min(w, h) < side):
            small.append(i)
        elif not bucketing and w != h:
            cropped.append(i)
    return side, small, cropped


class Resolution(DatasetCheck):
    id = "dataset.resolution"
    title = "Image size against the training resolution"
    required = False

    def diagnose(self, ctx: Context) -> CheckResult:
        cfg = train_config(ctx)
        lines = []
        total = 0
        sides = set()
        commands = []
        for c in _scanned(ctx):
            side, small, cropped = resolution_findings(cfg, c)
            if side is None:
                continue
            sides.add(side)
            if small or cropped:
                commands.append(in_folder(c.folder, f"mogrify {pad_options(side)}", [i.path for i in small + cropped]))
            if small:
                smaller = (
                    f"fewer pixels than {side}x{side}"
                    if cfg.flag("aspect_ratio_bucketing")
                    else f"a side shorter than {side} px"
                )
                lines.append(
                    f"'{c.name}': {len(small)} image(s) with {smaller} (upscaled): "
                    + _examples(small, lambda i: f"{i.path} {i.width}x{i.height}")
                )
            if cropped:
                lines.append(
                    f"'{c.name}': {len(cropped)} non-square image(s) cropped to square (bucketing is off): "
                    + _examples(cropped, lambda i: f"{i.path} {i.width}x{i.height}")
                )
            total += len(small) + len(cropped)
        res = "/".join(f"{s}" for s in sorted(sides)) or str(cfg.get("resolution"))
        if total:
            side = max(sides)
            return CheckResult.warn(
                f"{total} image(s) do not fit the training resolution {res}",
                details=tuple(lines),
                expected=f"images at least {res} px"
                + ("" if cfg.flag("aspect_ratio_bucketing") else ", square (bucketing is off)"),
                why="small images are upscaled (blurry results); "
                "with bucketing off non-square images lose their edges to the crop",
                fix=Fix(
                    f"pad every image to {side}x{side} on white into a new folder (masks on black, captions kept)",
                    (f"otdoctor fix {self.id}",),
                    automatic=True,
                    instead=with_imagemagick("pad these images on white", commands),
                ),
            )
        return CheckResult.ok(f"every image fits the training resolution {res}")

    def fix(self, ctx: Context, confirm: Callable[[str], bool], dry_run: bool = False) -> FixOutcome:
        cfg = train_config(ctx)
        in_place = bool(ctx.options.extra.get("in_place"))
        plan: list[tuple[ConceptData, int, Path]] = []
        for c in _scanned(ctx):
            side, small, cropped = resolution_findings(cfg, c)
            if side and (small or cropped):
                out = c.folder if in_place else c.folder.with_name(f"{c.folder.name}-{side}px")
                plan.append((c, side, out))
        if not plan:
            return FixOutcome(self.id, False, "every image already fits the training resolution")
        commands = tuple(
            f"pad {len(_readable(c))} images of '{c.name}' to {side}x{side}: {c.folder} -> {out}"
            for c, side, out in plan
        )
        if dry_run:
            how = (
                "replace the originals (--in-place)"
                if in_place
                else "write padded copies into a new folder, then point the concept at it (asks first)"
            )
            return FixOutcome(
                self.id, False, f"fit each image on a white square (masks on black, captions kept): {how}", commands
            )
        messages: list[str] = []
        applied = False
        for c, side, out in plan:
            where = "replacing the originals" if in_place else f"into {out} (originals untouched)"
            if not confirm(f"Pad {len(_readable(c))} images of '{c.name}' to {side}x{side} {where}?"):
                messages.append(f"'{c.name}': skipped")
                continue
            applied = True
            messages.append(_pad(ctx, c, side, out))
            if not in_place:
                messages.append(_repoint(ctx, cfg, c, out, confirm))
        # The config and the folders changed: the diagnosis that follows must read them again.
        ctx.forget("dataset")
        ctx.forget("otconfig")
        return FixOutcome(self.id, applied, "; ".join(messages), commands)


def _readable(c: ConceptData) -> list[ImageInfo]:
    return list(_scan(c).readable())


def _pad(ctx: Context, c: ConceptData, side: int, out: Path) -> str:
    """Pad the concept's readable images to SIDE x SIDE into OUT; what happened, in one line."""
    from otdoctor.dataset.repair import pad_folder

    images = [c.folder / i.path for i in _readable(c)]
    result = pad_folder(c.folder, images, side, out, progress=ctx.options.extra.get("progress"))
    msg = f"'{c.name}': {result.written} written, {result.skipped} already done"
    if result.failed:
        msg += f", {len(result.failed)} failed ({result.failed[0]})"
    return msg


def _repoint(ctx: Context, cfg: TrainConfig, c: ConceptData, out: Path, confirm: Callable[[str], bool]) -> str:
    """Point the concept at the padded folder OUT in the file that defines it (after asking)."""
    from otdoctor.dataset.repair import set_concept_path

    source = cfg.concepts_source
    file = config_facts(ctx).path if source == "inline" else Path(source) if source else None
    if file is None:
        return f"point the concept at {out} in the Concepts tab"
    base = cfg.base_dir
    new_path = str(out) if Path(c.concept.path).is_absolute() or base is None else os.path.relpath(out, base)
    if confirm(f"Point concept '{c.name}' at {new_path} in {file}?"):
        backup = set_concept_path(file, c.index, new_path, inline=source == "inline")
        return f"concept '{c.name}' now uses {new_path} (previous file kept as {backup.name})"
    return f"concept '{c.name}' unchanged: set its path to {new_path} in the Concepts tab"


class Duplicates(DatasetCheck):
    id = "dataset.duplicates"
    title = "Duplicate images"
    required = False

    def diagnose(self, ctx: Context) -> CheckResult:
        lines = []
        extra = 0
        for c in _scanned(ctx):
            for group in _scan(c).duplicates():
                extra += len(group) - 1
                lines.append(
                    f"'{c.name}': identical files: {', '.join(group[:5])}" + (" ..." if len(group) > 5 else "")
                )
        if extra:
            return CheckResult.warn(
                f"{extra} image(s) are exact copies of another",
                details=tuple(lines[:20]),
                expected="each image once",
                why="a copy is trained twice as often: the model overfits to it",
                fix=Fix("delete the copies (keep one of each group)", ("fdupes -r -d <folder>",)),
            )
        return CheckResult.ok("no exact duplicates")


class SizesMatch(DatasetCheck):
    id = "dataset.sizes-match"
    title = "Training and regularisation images share a size"
    required = False

    def diagnose(self, ctx: Context) -> CheckResult:
        cfg = train_config(ctx)
        if cfg.flag("aspect_ratio_bucketing"):
            return CheckResult.ok("aspect ratio bucketing is on: sizes may differ")
        concepts = _scanned(ctx)
        train = [c for c in concepts if c.concept.counts_for_training and not c.concept.is_regularisation]
        reg = [c for c in concepts if c.concept.is_regularisation]
        if not train or not reg:
            return CheckResult.ok("no regularisation concept to compare with")

        def sizes(group: list[ConceptData]) -> dict[tuple[int, int], int]:
            out: dict[tuple[int, int], int] = {}
            for c in group:
                for size, n in _scan(c).sizes().items():
                    out[size] = out.get(size, 0) + n
            return out

        t, r = sizes(train), sizes(reg)

        def show(d: dict[tuple[int, int], int]) -> str:
            top = sorted(d.items(), key=lambda kv: -kv[1])[:4]
            return ", ".join(f"{w}x{h} ({n})" for (w, h), n in top) + (" ..." if len(d) > 4 else "")

        if set(t) != set(r):
            side = max(cfg.resolutions or (1024,))
            return CheckResult.warn(
                "training and regularisation images have different sizes",
                details=(f"training: {show(t)}", f"regularisation: {show(r)}"),
                expected="the same size for both "
                '(the guide: "Your training images should be all in the same size as your regularization images")',
                why="with bucketing off, differently sized sets are scaled and cropped differently, "
                "and the model learns the difference",
                fix=Fix(
                    f"pad both sets to {side}x{side}",
                    ("otdoctor fix dataset.resolution",),
                    automatic=False,
                    instead=with_imagemagick(
                        f"pad both sets to {side}x{side} on white",
                        [
                            in_folder(c.folder, f"mogrify {pad_options(side)}", [i.path for i in _readable(c)])
                            for c in train + reg
                        ],
                    ),
                ),
            )
        return CheckResult.ok(f"training {show(t)} and regularisation {show(r)} share their size")


CHECKS = [Readable, Modes, ExifRotation, Resolution, Duplicates, SizesMatch]
