"""Checkpoint verify throughput against `sha256sum`, and the cost of a cached re-verify.

    .venv/bin/python benchmarks/verify_throughput.py [--size-gb 2] [--big-gb 7] [--dir DIR] [--repeat 3]
        [--headers-only]

1. A real safetensors file of --size-gb (SDXL-shaped header, one large tensor of random data) is
   hashed by `sha256sum` and by otdoctor's verifier (header, structure, architecture, sha256 against
   a catalog entry), each --repeat times, best time kept. Dropping the page cache needs root and a
   quiet machine, so both run on a WARM page cache (the file is read once first): this compares the
   hashing code paths, not the disk. Target: otdoctor >= 0.9x sha256sum's throughput.
2. A --big-gb file (sparse: only the header is written, the data is a hole) is verified once to fill
   the cache, then verified again, in-process and through the CLI. The second verify must not read
   the file: the bytes this process reads during it (/proc/self/io rchar) are reported. Target: the
   cached re-verify under 50 ms (in-process; the CLI figure adds interpreter start-up).
3. Header validation (the format's rules, issue 12): reading and validating an SDXL-sized header
   (2,515 tensors), and the worst headers the format's 100 MB bound allows: 100 MB of `[` and a
   100 MB string. Target: the SDXL header under 50 ms, each worst case a finding under 5 s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from otdoctor.checkpoints.catalog import CatalogEntry, KnownFile  # noqa: E402
from otdoctor.checkpoints.hashing import VerifyCache  # noqa: E402
from otdoctor.checkpoints.verify import Verifier  # noqa: E402


def write_model(path: Path, data_bytes: int, sparse: bool) -> None:
    header = {
        "conditioner.embedders.1.model.ln_final.weight": {"dtype": "U8", "shape": [16], "data_offsets": [0, 16]},
        "model.diffusion_model.out.2.weight": {
            "dtype": "U8",
            "shape": [data_bytes - 16],
            "data_offsets": [16, data_bytes],
        },
    }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
        if sparse:
            fh.truncate(8 + len(raw) + data_bytes)
            return
        block = os.urandom(64 * 1024 * 1024)
        left = data_bytes
        while left:
            n = min(left, len(block))
            fh.write(block[:n])
            left -= n


def header_costs(work: Path) -> None:
    """Time `read_header` on a real-sized header and on the two worst headers the bound allows."""
    from otdoctor.checkpoints.safetensors import HeaderError, read_header

    header, offset = {}, 0
    for i in range(2515):  # SDXL single files hold about 2,500 tensors
        name = f"model.diffusion_model.input_blocks.{i}.1.transformer_blocks.0.attn2.to_k.weight"
        header[name] = {"dtype": "F16", "shape": [4, 2], "data_offsets": [offset, offset + 16]}
        offset += 16
    raw = json.dumps(header).encode()
    sdxl = work / "sdxl-header.safetensors"
    sdxl.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset))
    t = best(lambda: read_header(sdxl), 5)
    print(f"header of 2515 tensors ({len(raw)} bytes): read and validated in {t * 1000:.1f} ms")
    worst_headers = (("100 MB of '['", b"[" * 99_999_990), ("a 100 MB string", b'{"a":"' + b"x" * 99_999_990 + b'"}'))
    for label, body in worst_headers:
        worst = work / "worst.safetensors"
        worst.write_bytes(struct.pack("<Q", len(body)) + body)
        t0 = time.perf_counter()
        try:
            read_header(worst)
            verdict = "read"
        except HeaderError as exc:
            verdict = str(exc)[:60]
        print(f"header of {label}: {time.perf_counter() - t0:.2f} s -> {verdict}")
        worst.unlink()


def rchar() -> int:
    with open("/proc/self/io") as fh:
        return int(next(line for line in fh if line.startswith("rchar:")).split()[1])


def best(fn, repeat: int) -> float:
    """Best wall time of `repeat` single calls."""
    return min(timeit.repeat(fn, number=1, repeat=repeat))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-gb", type=float, default=2.0)
    ap.add_argument("--big-gb", type=float, default=7.0)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--headers-only", action="store_true", help="Only part 3, the header validation.")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="otdoctor-bench-", dir=args.dir))
    try:
        header_costs(work)
        if args.headers_only:
            return
        # 1. throughput ------------------------------------------------------------------------
        f = work / "model.safetensors"
        write_model(f, int(args.size_gb * 1e9), sparse=False)
        size = f.stat().st_size
        subprocess.run(["cat", str(f)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
        digest = hashlib.sha256()
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(64 << 20), b""):
                digest.update(block)
        sha = digest.hexdigest()
        entry = CatalogEntry(
            "bench", "Bench", "SDXL", "huggingface", f.name, (KnownFile(f.name, sha, size),), repo="bench/bench"
        )

        def otdoctor_verify() -> None:
            v = Verifier([entry], cache=None).verify([(f, entry, None, "")])[0]
            assert v.matched is not None, v.problems

        def sha256sum() -> None:
            out = subprocess.run(["sha256sum", str(f)], capture_output=True, text=True, check=True).stdout
            assert out.split()[0] == sha

        def openssl() -> None:
            out = subprocess.run(
                ["openssl", "dgst", "-sha256", "-r", str(f)], capture_output=True, text=True, check=True
            ).stdout
            assert out.split()[0] == sha

        t_sum = best(sha256sum, args.repeat)
        t_ot = best(otdoctor_verify, args.repeat)
        t_ssl = best(openssl, args.repeat) if shutil.which("openssl") else None
        gbps = lambda t: size / t / 1e9  # noqa: E731
        print(f"file: {size} bytes, warm page cache, best of {args.repeat}")
        print(f"sha256sum:        {t_sum:.3f} s  {gbps(t_sum):.2f} GB/s")
        print(f"otdoctor verify:  {t_ot:.3f} s  {gbps(t_ot):.2f} GB/s  ({t_sum / t_ot:.2f}x sha256sum)")
        if t_ssl is not None:  # the same OpenSSL digest hashlib uses: the ceiling on this CPU
            print(f"openssl dgst:     {t_ssl:.3f} s  {gbps(t_ssl):.2f} GB/s  (otdoctor at {t_ssl / t_ot:.2f}x of it)")
        f.unlink()

        # 1b. two files: one after the other vs otdoctor's parallel threads --------------------
        pair = [work / "a.safetensors", work / "b.safetensors"]
        for p in pair:
            write_model(p, int(args.size_gb * 1e9 / 2), sparse=False)
            subprocess.run(["cat", str(p)], stdout=subprocess.DEVNULL, check=True)
        from otdoctor.checkpoints.hashing import sha256_file, sha256_files

        t_seq = best(lambda: [sha256_file(p) for p in pair], args.repeat)
        t_par = best(lambda: sha256_files(pair), args.repeat)
        print(
            f"two files of {pair[0].stat().st_size} bytes: one after the other {t_seq:.3f} s, "
            f"in parallel threads {t_par:.3f} s ({t_seq / t_par:.2f}x, {os.cpu_count()} CPUs)"
        )
        for p in pair:
            p.unlink()

        # 2. cached re-verify of a big sparse file -----------------------------------------------
        big = work / "big.safetensors"
        write_model(big, int(args.big_gb * 1e9), sparse=True)
        big_size = big.stat().st_size
        digest = hashlib.sha256()  # the expected hash, from memory: the hole reads as zeros
        with open(big, "rb") as fh:
            head = fh.read(1 << 20)
        digest.update(head)
        left, zeros = big_size - len(head), bytes(64 << 20)
        while left:
            digest.update(zeros[: min(left, len(zeros))])
            left -= min(left, len(zeros))
        t = time.perf_counter()
        big_entry = CatalogEntry(
            "big",
            "Big",
            "SDXL",
            "huggingface",
            big.name,
            (KnownFile(big.name, digest.hexdigest(), big_size),),
            repo="bench/big",
        )
        cache_file = work / "cache" / "model-verify.json"
        first = Verifier([big_entry], VerifyCache(cache_file)).verify([(big, big_entry, None, "")])[0]
        t_first = time.perf_counter() - t
        assert first.matched is not None
        times = []
        read_bytes = []
        for _ in range(max(5, args.repeat)):
            r0 = rchar()
            t = time.perf_counter()
            v = Verifier([big_entry], VerifyCache(cache_file)).verify([(big, big_entry, None, "")])[0]
            times.append(time.perf_counter() - t)
            read_bytes.append(rchar() - r0)
            assert v.matched is not None and not v.hashed_now
        print(f"big file: {big_size} bytes (sparse); first verify (hashes it) {t_first:.2f} s")
        print(
            f"cached re-verify in-process: best {min(times) * 1000:.2f} ms, worst {max(times) * 1000:.2f} ms; "
            f"bytes read (all files, incl. the cache JSON) {max(read_bytes)}"
        )
        exe = shutil.which("otdoctor", path=str(Path(sys.executable).parent)) or "otdoctor"
        toml = (
            f'[[model]]\nname = "big"\narchitecture = "SDXL"\nsource = "huggingface"\nrepo = "bench/big"\n'
            f'filename = "{big.name}"\n[[model.files]]\nname = "{big.name}"\nsize_bytes = {big_size}\n'
            f'sha256 = "{big_entry.files[0].sha256}"\n'
        )
        (work / "config").mkdir()
        (work / "config" / "models.toml").write_text(toml)
        env = {**os.environ, "OTDOCTOR_CACHE_DIR": str(work / "cache"), "OTDOCTOR_CONFIG_DIR": str(work / "config")}
        cli = []
        for _ in range(max(5, args.repeat)):
            t = time.perf_counter()
            proc = subprocess.run([exe, "models", "verify", str(big)], env=env, capture_output=True, text=True)
            cli.append(time.perf_counter() - t)
            assert proc.returncode == 0, proc.stdout + proc.stderr
        print(f"cached re-verify via `otdoctor models verify` (whole process): best {min(cli) * 1000:.0f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
