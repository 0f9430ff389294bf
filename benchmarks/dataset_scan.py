"""Dataset scan speed: otdoctor's header-only parallel scan against decoding every image.

    .venv/bin/python benchmarks/dataset_scan.py [--count 5000] [--size 1024] [--dir DIR] [--repeat 3]

A folder of --count distinct JPEGs (--size px square, noisy pixels so files have realistic sizes,
every 10th with a caption) is made once (kept in --dir between runs). Then, on a warm page cache:

1. naive: what a plain script does to find broken images: `Image.open(p).load()` on every file,
   one thread (the per-image decode OneTrainer itself pays during caching).
2. otdoctor cold: `scan_images` with an empty cache (header reads, tail truncation test, hashes
   only for size collisions, threads).
3. otdoctor warm: the same with the cache from run 2 (only `stat` per file).
4. `otdoctor check --only dataset` through the CLI, warm (interpreter start-up included).

Targets: cold >= 10x faster than naive; warm under 0.5 s for 5000 images.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from otdoctor.dataset.listing import list_concept  # noqa: E402
from otdoctor.dataset.scan import scan_images  # noqa: E402


def make_folder(folder: Path, count: int, size: int) -> None:
    from PIL import Image

    marker = folder / ".complete"
    if marker.is_file() and marker.read_text() == f"{count} {size}":
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    from PIL import ImageFilter

    # Smoothed noise: photo-like JPEG sizes (about 100-200 KB at 1024 px), not worst-case noise.
    base = Image.merge(
        "RGB", [Image.effect_noise((size, size), 60).filter(ImageFilter.GaussianBlur(2)) for _ in range(3)]
    )
    for i in range(count):
        img = base.copy()
        img.putpixel((i % size, (i // size) % size), (255, 0, 0))  # distinct content
        img.save(folder / f"img{i:05d}.jpg", quality=90)
        if i % 10 == 0:
            (folder / f"img{i:05d}.txt").write_text("ohwx man\n")
    marker.write_text(f"{count} {size}")


def naive(paths: list[Path]) -> int:
    from PIL import Image

    bad = 0
    for p in paths:
        try:
            with Image.open(p) as img:
                img.load()
        except Exception:
            bad += 1
    return bad


def best(fn, repeat: int) -> float:
    """Best wall time of `repeat` single calls."""
    return min(timeit.repeat(fn, number=1, repeat=repeat))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "otdoctor-bench-dataset")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    folder = args.dir / "images"
    t = time.perf_counter()
    make_folder(folder, args.count, args.size)
    made_s = time.perf_counter() - t
    listing = list_concept(folder)
    paths = list(listing.images)
    total_bytes = sum(p.stat().st_size for p in paths)
    naive(paths[:50])  # warm the page cache for the first files; the full pass below warms the rest

    print(
        f"{len(paths)} JPEGs, {args.size}x{args.size}, {total_bytes / 1e6:.0f} MB (made in {made_s:.1f} s); "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    naive_s = best(lambda: naive(paths), 1)
    print(f"naive decode, 1 thread:        {naive_s:8.2f} s  ({len(paths) / naive_s:7.0f} images/s)")

    cache = args.dir / "cache"

    def cold() -> None:
        shutil.rmtree(cache, ignore_errors=True)
        scan_images(folder, paths, cache_root=cache)

    cold_s = best(cold, args.repeat)
    print(
        f"otdoctor scan, cold cache:     {cold_s:8.2f} s  ({len(paths) / cold_s:7.0f} images/s, "
        f"{naive_s / cold_s:.0f}x faster)"
    )
    warm_s = best(lambda: scan_images(folder, paths, cache_root=cache), args.repeat)
    print(f"otdoctor scan, warm cache:     {warm_s:8.2f} s  ({len(paths) / warm_s:7.0f} images/s)")

    root = args.dir / "ot"
    (root / "training_concepts").mkdir(parents=True, exist_ok=True)
    (root / "training_concepts" / "concepts.json").write_text(json.dumps([{"name": "bench", "path": str(folder)}]))
    (root / "config.json").write_text(json.dumps({"resolution": str(args.size), "aspect_ratio_bucketing": False}))
    exe = str(Path(sys.executable).with_name("otdoctor"))
    env = {**os.environ, "OTDOCTOR_CACHE_DIR": str(cache)}
    cmd = [
        exe,
        "check",
        "--config",
        str(root / "config.json"),
        "--ot-dir",
        str(root),
        "--only",
        "dataset",
        "-f",
        "json",
    ]
    subprocess.run(cmd, env=env, capture_output=True)  # fill the cache for this exact run

    def cli() -> None:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert '"dataset.readable"' in r.stdout, r.stderr

    cli_s = best(cli, args.repeat)
    print(f"otdoctor check --only dataset: {cli_s:8.2f} s  (warm cache, whole CLI run)")


if __name__ == "__main__":
    main()
