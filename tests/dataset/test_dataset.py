"""Dataset checks on real image files, the scan cache, and `otdoctor fix dataset.resolution`."""

from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path

import jsonschema
import pytest
from PIL import Image

from otdoctor.data import data_file
from otdoctor.dataset.listing import list_concept
from otdoctor.dataset.repair import pad_folder
from otdoctor.dataset.scan import scan_images
from otdoctor.engine.results import Status
from tests.support.trainingdata import Scenario, concept, image


@pytest.fixture
def sc(tmp_path: Path, base_env: dict[str, str]) -> Scenario:
    return Scenario(tmp_path / "ot", base_env)


def single(sc: Scenario, **cfg) -> Path:
    folder = sc.folder("me", 3)
    sc.write([concept("me", "data/me")], **cfg)
    return folder


def test_healthy_folder_is_quiet_everywhere(sc: Scenario) -> None:
    single(sc)
    results = sc.run(only=("dataset",))
    assert {k: r.status for k, r in results.items()} == {k: Status.OK for k in results}
    assert len(results) == 6


# unreadable / truncated ----------------------------------------------------------------------------
def test_broken_images_fail(sc: Scenario) -> None:
    folder = single(sc)
    # Random-looking pixels so that the compressed stream is long enough to cut.
    noisy = Image.effect_noise((256, 256), 64).convert("RGB")
    noisy.save(folder / "trunc.png")
    data = (folder / "trunc.png").read_bytes()
    (folder / "trunc.png").write_bytes(data[: len(data) // 2])
    noisy.save(folder / "trunc.jpg", quality=90)
    data = (folder / "trunc.jpg").read_bytes()
    (folder / "trunc.jpg").write_bytes(data[: len(data) // 2])
    (folder / "html.jpg").write_text("<!doctype html><html>Login</html>")
    (folder / "empty.webp").write_bytes(b"")
    r = sc.run(only=("dataset",))["dataset.readable"]
    assert r.status is Status.FAIL and r.summary == "4 of 7 images cannot be loaded"
    text = "\n".join(r.details)
    assert "trunc.png: truncated or corrupt" in text and "trunc.jpg: truncated or corrupt" in text
    assert "html.jpg: not an image Pillow can read" in text and "empty.webp: empty file" in text


# modes -------------------------------------------------------------------------------------------
def test_unsupported_modes_warn(sc: Scenario) -> None:
    folder = single(sc)
    image(folder / "cmyk.jpg", mode="CMYK")
    image(folder / "deep.png", mode="I;16")
    pal = Image.new("P", (64, 64), 1)
    pal.putpalette([0, 0, 0, 255, 0, 0] * 128)
    pal.info["transparency"] = 0
    pal.save(folder / "pal.png", transparency=0)
    image(folder / "grey.png", mode="L")
    r = sc.run(only=("dataset",))["dataset.modes"]
    assert r.status is Status.WARN and r.summary.startswith("3 image(s)")
    text = "\n".join(r.details)
    assert "cmyk.jpg CMYK" in text and "deep.png 16-bit" in text and "pal.png palette with transparency" in text
    assert "grey.png" not in text


def test_16_bit_rgb_png_is_found_from_its_header(tmp_path: Path) -> None:
    import numpy as np

    arr = np.arange(64 * 64 * 3, dtype=np.uint16).reshape(64, 64, 3) * 7
    # Pillow cannot write 48-bit PNGs; write one with the PNG format's own chunks.
    import struct
    import zlib

    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in arr)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 16, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    (tmp_path / "rgb48.png").write_bytes(png)
    scan = scan_images(tmp_path, [tmp_path / "rgb48.png"])
    (info,) = scan.images
    assert info.error is None and info.bit_depth == 16 and "16-bit" in info.unsupported_mode


# EXIF --------------------------------------------------------------------------------------------
def _jpeg_with_orientation(path: Path, orientation: int) -> None:
    img = Image.new("RGB", (80, 64), (200, 100, 50))
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(path, exif=exif.tobytes())


def test_exif_rotation_warns(sc: Scenario) -> None:
    folder = single(sc)
    _jpeg_with_orientation(folder / "phone.jpg", 6)
    r = sc.run(only=("dataset",))["dataset.exif-rotation"]
    assert r.status is Status.WARN and "phone.jpg (orientation 6)" in r.details[0]
    assert r.fix.commands == (f"cd {shlex.quote(str(folder))} && mogrify -auto-orient phone.jpg",)


def test_exif_orientation_1_is_quiet(sc: Scenario) -> None:
    folder = single(sc)
    _jpeg_with_orientation(folder / "upright.jpg", 1)
    assert sc.run(only=("dataset",))["dataset.exif-rotation"].status is Status.OK


# resolution, sizes ------------------------------------------------------------------------------
def test_small_images_warn(sc: Scenario) -> None:
    folder = single(sc)
    image(folder / "tiny.png", (32, 48))
    r = sc.run(only=("dataset",))["dataset.resolution"]
    assert (
        r.status is Status.WARN and "1 image(s) with fewer pixels than 64x64 (upscaled): tiny.png 32x48" in r.details[0]
    )
    assert r.fix.automatic and r.fix.commands == ("otdoctor fix dataset.resolution",)
    # The ImageMagick way is printed apart, in the concept's folder and naming only the flagged file:
    # pasted from any folder it touches nothing else (captions, other images).
    assert r.fix.instead is not None and r.fix.instead.commands == (
        f"cd {shlex.quote(str(folder))} && mogrify -resize 64x64 -background white -gravity center "
        "-extent 64x64 tiny.png",
    )


def test_the_imagemagick_way_prints_apart_from_otdoctor_fix(sc: Scenario, run_cli) -> None:
    """In the text a user reads, `otdoctor fix` is one way and the mogrify line, after "or instead:",
    the other: pasting the block as printed never runs both."""
    folder = single(sc)
    image(folder / "tiny.png", (32, 48))
    config = sc.root / "config.json"
    out = run_cli("check", "--only", "dataset.resolution", "--ot-dir", str(sc.root), "--config", str(config)).stdout
    lines = [line.strip() for line in out.splitlines()]
    start = lines.index("otdoctor fix dataset.resolution")
    assert lines[start + 1].startswith("or instead: pad these images on white (ImageMagick"), out
    assert lines[start + 2] == f"cd {shlex.quote(str(folder))} && mogrify -resize 64x64 -background white " + (
        "-gravity center -extent 64x64 tiny.png"
    )
    args = ("check", "--only", "dataset.resolution", "--ot-dir", str(sc.root), "--config", str(config))
    report = json.loads(run_cli(*args, "--format", "json").stdout)
    jsonschema.validate(report, json.loads(data_file("report.schema.json").read_text()))
    fix = next(c for c in report["checks"] if c["id"] == "dataset.resolution")["fix"]
    assert fix["commands"] == ["otdoctor fix dataset.resolution"] and fix["instead"]["commands"] == [lines[start + 2]]


def test_non_square_images_warn_only_without_bucketing(sc: Scenario) -> None:
    folder = single(sc, aspect_ratio_bucketing=False)
    image(folder / "wide.png", (128, 64))
    r = sc.run(only=("dataset",))["dataset.resolution"]
    assert r.status is Status.WARN and "non-square" in r.details[0]
    sc.write([concept("me", "data/me")], aspect_ratio_bucketing=True)
    assert sc.run(only=("dataset",))["dataset.resolution"].status is Status.OK


def test_training_and_reg_sizes_differ_warns(sc: Scenario) -> None:
    sc.folder("me", 3, size=(64, 64))
    sc.folder("reg", 30, size=(96, 96), captions=False)
    sc.write([concept("me", "data/me"), concept("reg", "data/reg", balancing=0.1)], aspect_ratio_bucketing=False)
    r = sc.run(only=("dataset",))["dataset.sizes-match"]
    assert r.status is Status.WARN
    assert r.details == ("training: 64x64 (3)", "regularisation: 96x96 (30)")


def test_training_and_reg_same_size_is_quiet(sc: Scenario) -> None:
    sc.folder("me", 3)
    sc.folder("reg", 30, captions=False)
    sc.write([concept("me", "data/me"), concept("reg", "data/reg", balancing=0.1)], aspect_ratio_bucketing=False)
    assert sc.run(only=("dataset",))["dataset.sizes-match"].status is Status.OK


# duplicates --------------------------------------------------------------------------------------
def test_exact_duplicates_warn(sc: Scenario) -> None:
    folder = single(sc)
    shutil.copy(folder / "img00000.png", folder / "copy of img00000.png")
    r = sc.run(only=("dataset",))["dataset.duplicates"]
    assert r.status is Status.WARN and r.summary.startswith("1 image(s)")
    assert "copy of img00000.png, img00000.png" in r.details[0]


# the scan cache ----------------------------------------------------------------------------------
def test_second_scan_reads_the_cache_and_notices_changes(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    for i in range(20):
        image(folder / f"{i}.png", (64, 64))
    cache = tmp_path / "cache"
    listing = list_concept(folder)
    first = scan_images(folder, listing.images, cache_root=cache)
    assert first.from_cache == 0 and len(first.images) == 20
    second = scan_images(folder, listing.images, cache_root=cache)
    assert second.from_cache == 20 and second.images == first.images
    image(folder / "3.png", (32, 32), color=(1, 2, 3))
    os.utime(folder / "3.png", ns=(1, 1))  # mtime changes even on coarse clocks
    third = scan_images(folder, listing.images, cache_root=cache)
    assert third.from_cache == 19
    assert next(i for i in third.images if i.path == "3.png").width == 32


# the fix -----------------------------------------------------------------------------------------
def _fix_setup(sc: Scenario) -> Path:
    folder = sc.root / "data" / "me"
    image(folder / "wide.png", (128, 64), color=(10, 20, 30))
    (folder / "wide.txt").write_text("ohwx man\n")
    Image.new("L", (128, 64), 255).save(folder / "wide-masklabel.png")
    image(folder / "tall.jpg", (40, 80), color=(200, 10, 10))
    image(folder / "ok.png", (64, 64))
    sc.write([concept("me", "data/me")], aspect_ratio_bucketing=False)
    return folder


def test_fix_pads_into_a_new_folder_and_repoints_the_concept(sc: Scenario, run_cli) -> None:
    folder = _fix_setup(sc)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    r = run_cli(
        "fix", "dataset.resolution", "--config", str(sc.root / "config.json"), "--ot-dir", str(sc.root), "--yes"
    )
    assert "Traceback" not in r.stderr, r.stderr
    out = sc.root / "data" / "me-64px"
    assert {p.name for p in out.iterdir()} == {"wide.png", "wide.txt", "wide-masklabel.png", "tall.jpg", "ok.png"}
    with Image.open(out / "wide.png") as img:
        assert img.size == (64, 64)
        assert img.getpixel((32, 2)) == (255, 255, 255)  # white padding above
        assert img.getpixel((32, 32)) == (10, 20, 30)
    with Image.open(out / "wide-masklabel.png") as m:
        assert m.size == (64, 64) and m.getpixel((32, 2)) == 0 and m.getpixel((32, 32)) == 255
    with Image.open(out / "tall.jpg") as img:
        assert img.size == (64, 64) and img.getpixel((2, 32))[0] > 240  # white at the sides
    assert (out / "wide.txt").read_text() == "ohwx man\n"
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # originals untouched
    concepts = json.loads((sc.root / "training_concepts" / "concepts.json").read_text())
    assert concepts[0]["path"] == "data/me-64px"
    assert json.loads((sc.root / "training_concepts" / "concepts.json.bak").read_text())[0]["path"] == "data/me"
    assert "re-check" in r.stdout and "every image fits the training resolution 64" in r.stdout
    assert r.returncode in (0, 1)  # other (machine) checks decide the exit code
    assert sc.run(only=("dataset",))["dataset.resolution"].status is Status.OK


def test_fix_dry_run_changes_nothing(sc: Scenario, run_cli) -> None:
    folder = _fix_setup(sc)
    r = run_cli(
        "fix", "dataset.resolution", "--config", str(sc.root / "config.json"), "--ot-dir", str(sc.root), "--dry-run"
    )
    assert "pad 3 images of 'me' to 64x64" in r.stdout
    assert not (sc.root / "data" / "me-64px").exists()
    assert json.loads((sc.root / "training_concepts" / "concepts.json").read_text())[0]["path"] == "data/me"
    assert folder.is_dir()


def test_fix_in_place_replaces_originals(sc: Scenario, run_cli) -> None:
    folder = _fix_setup(sc)
    run_cli(
        "fix",
        "dataset.resolution",
        "--config",
        str(sc.root / "config.json"),
        "--ot-dir",
        str(sc.root),
        "--yes",
        "--in-place",
    )
    with Image.open(folder / "wide.png") as img:
        assert img.size == (64, 64)
    with Image.open(folder / "wide-masklabel.png") as m:
        assert m.size == (64, 64)
    assert not (sc.root / "data" / "me-64px").exists()
    assert json.loads((sc.root / "training_concepts" / "concepts.json").read_text())[0]["path"] == "data/me"


def test_interrupted_padding_leaves_complete_files_and_resumes(tmp_path: Path) -> None:
    folder = tmp_path / "src"
    srcs = [image(folder / f"{i:02d}.png", (100, 50)) for i in range(10)]
    out = tmp_path / "out"

    def stop_after_four(what: str, done: int, total: int) -> None:
        if done == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pad_folder(folder, srcs, 64, out, progress=stop_after_four)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["00.png", "01.png", "02.png", "03.png"]  # no temporary or half-written file
    for p in out.iterdir():
        with Image.open(p) as img:
            img.load()
            assert img.size == (64, 64)
    result = pad_folder(folder, srcs, 64, out)
    assert (result.written, result.skipped) == (6, 4)
    assert len(list(out.iterdir())) == 10


def test_progress_bar_on_a_terminal_only(tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from otdoctor.render.progress import BarReporter

    srcs = [image(tmp_path / "src" / f"{i}.png", (80, 40)) for i in range(5)]
    term = io.StringIO()
    bar = BarReporter(Console(file=term, force_terminal=True, width=100))
    pad_folder(tmp_path / "src", srcs, 32, tmp_path / "out", progress=bar)
    assert "padding src" in term.getvalue() and "5/5" in term.getvalue()
    plain = io.StringIO()
    pad_folder(
        tmp_path / "src", srcs, 32, tmp_path / "out2", progress=BarReporter(Console(file=plain, force_terminal=False))
    )
    assert plain.getvalue() == ""


# The modes fix names every flagged file and leaves a clean re-check (issue 13) --------------------------
def test_modes_fix_covers_every_flagged_file_and_the_recheck_is_clean(sc: Scenario, run_cli) -> None:
    """A CMYK JPEG and a 16-bit PNG: the printed mogrify lines name both. With ImageMagick on PATH the
    printed lines are run as pasted; without it (as on the machine this was written on) the first
    printed line, `otdoctor fix dataset.modes`, converts with Pillow and keeps the originals."""
    import subprocess

    folder = single(sc)
    image(folder / "cmyk photo.jpg", mode="CMYK")
    image(folder / "deep.png", mode="I;16", color=40000)
    r = sc.run(only=("dataset",))["dataset.modes"]
    assert r.status is Status.WARN and r.summary.startswith("2 image(s)")
    # Two separate ways: `otdoctor fix` alone, or ImageMagick instead (never both, one after the other).
    assert r.fix is not None and r.fix.commands == ("otdoctor fix dataset.modes",)
    assert r.fix.instead is not None
    mogrify = list(r.fix.instead.commands)
    assert mogrify == [
        f"cd {shlex.quote(str(folder))} && mogrify -colorspace sRGB -depth 8 -background white -flatten "
        "'cmyk photo.jpg' deep.png"
    ]
    if shutil.which("mogrify"):
        done = subprocess.run(["bash", "-c", mogrify[0]], cwd="/", env=sc.env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    else:
        config = sc.root / "config.json"
        res = run_cli("fix", "dataset.modes", "--yes", "--ot-dir", str(sc.root), "--config", str(config))
        assert "2 converted" in res.stdout, res.stdout + res.stderr
        keep = folder.with_name(folder.name + ".otdoctor-originals")
        assert Image.open(keep / "deep.png").mode == "I;16" and Image.open(keep / "cmyk photo.jpg").mode == "CMYK"
        assert Image.open(folder / "deep.png").getpixel((0, 0)) == 40000 // 256  # scaled, not clipped to 255
    after = sc.run(only=("dataset",))
    assert after["dataset.modes"].status is Status.OK, after["dataset.modes"].details
    assert after["dataset.readable"].status is Status.OK


# Non-regular files are reported, never opened (issue 12) -------------------------------------------------
@pytest.mark.parametrize("subfolders", [False, True])
def test_a_named_pipe_called_png_is_reported_without_blocking(sc: Scenario, subfolders: bool) -> None:
    import threading

    folder = sc.folder("me", 3)
    sc.write([concept("me", "data/me", include_subdirectories=subfolders)])
    os.mkfifo(folder / "a.png")
    found: dict = {}
    worker = threading.Thread(target=lambda: found.update(sc.run(only=("dataset",))), daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "the scan opened the pipe and waited on it"
    readable = found["dataset.readable"]
    assert readable.status is Status.FAIL and readable.summary == "1 of 4 images cannot be loaded"
    assert f"{folder / 'a.png'}: not a regular file (a named pipe), skipped unread" in readable.details[0]
    assert all(r.status is not Status.ERROR for r in found.values())
