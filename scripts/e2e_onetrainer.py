"""The real-OneTrainer end-to-end steps that scripts/e2e_onetrainer.sh chains (see docs/onetrainer-e2e.md).

    python scripts/e2e_onetrainer.py config NAME --ot-dir DIR --models DIR --work DIR [--images N] [--epochs N]
    python scripts/e2e_onetrainer.py train CONFIG --ot-dir DIR --record FILE
    python scripts/e2e_onetrainer.py smoke-figures RUN.json --config CONFIG --clock wall|cpu --out DIR
    python scripts/e2e_onetrainer.py compare --estimate FILE --real RUN.json --clock wall|cpu
    python scripts/e2e_onetrainer.py defaults --ot-dir DIR --out FILE

`config` writes a full OneTrainer config (OneTrainer's own defaults, exported by its venv, plus the
overrides of tests/data/onetrainer/e2e_configs.json), a generated dataset and a sample definition.
`train` runs the real scripts/train.py from the checkout root with one thread and records its output
with arrival times, wall and CPU (JSON lines `[t, text, cpu]`; the fixtures keep `[t, text]`), the
wall time, the CPU time (user + system) and the peak RSS of its process tree. `smoke-figures` reads a
recorded run with otdoctor's own meter into a smoke result, in either clock; `compare` sets
`otdoctor estimate`'s prediction against a recorded run in that clock. Run it with otdoctor's venv
(it imports otdoctor and psutil); `config` and `defaults` also run under OneTrainer's venv.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIGS = HERE.parent / "tests" / "data" / "onetrainer" / "e2e_configs.json"
EXPORT_DEFAULTS = (
    "import json, sys; sys.path.insert(0, '.');"
    "from modules.util.config.TrainConfig import TrainConfig;"
    "print(json.dumps(TrainConfig.default_values().to_settings_dict(secrets=False)))"
)


def defaults(ot_dir: Path) -> dict:
    """OneTrainer's own defaults as a full config, exported by its venv (what the UI's export writes)."""
    python = ot_dir.resolve() / "venv" / "bin" / "python"
    out = subprocess.run([str(python), "-c", EXPORT_DEFAULTS], cwd=ot_dir, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_dataset(folder: Path, count: int, size: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for old in [*folder.glob("*.png"), *folder.glob("*.txt")]:  # a rerun with fewer images
        old.unlink()
    for i in range(count):
        Image.effect_noise((size, size), 64).convert("RGB").save(folder / f"{i:04d}.png")
        (folder / f"{i:04d}.txt").write_text("a photo of a test pattern", encoding="utf-8")


def write_config(
    name: str, ot_dir: Path, models: Path, work: Path, images: int, epochs: int, sets: dict | None = None
) -> Path:
    table = json.loads(CONFIGS.read_text(encoding="utf-8"))
    models, work = models.resolve(), work.resolve()
    over = {**table["common"], **table["configurations"][name]}
    layout = "sdxl" if "XL" in over["model_type"] else "sd15"
    run = work / name
    make_dataset(run / "dataset", images, int(over["resolution"]))
    concepts = [
        {
            "__version": 2,
            "name": "e2e",
            "path": str(run / "dataset"),
            "enabled": True,
            "text": {"prompt_source": "sample"},
        }
    ]
    (run / "concepts.json").write_text(json.dumps(concepts), encoding="utf-8")
    (run / "samples.json").write_text(json.dumps(table["samples"]), encoding="utf-8")
    config = defaults(ot_dir)
    config.update(over)
    config.update(
        base_model_name=str(models / f"tiny-{layout}"),
        workspace_dir=str(run / "workspace"),
        cache_dir=str(run / "cache"),
        output_model_destination=str(run / "output" / "model"),
        concept_file_name=str(run / "concepts.json"),
        sample_definition_file_name=str(run / "samples.json"),
        epochs=epochs,
    )
    config.update(sets or {})
    config.pop("concepts", None)
    config.pop("samples", None)
    path = run / "config.json"
    path.write_text(json.dumps(config, indent=1), encoding="utf-8")
    return path


def _peak_rss(pid: int, stop: threading.Event, peak: list[int]) -> None:
    import psutil

    while not stop.wait(0.1):
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
            peak[0] = max(peak[0], sum(p.memory_info().rss for p in procs if p.is_running()))
        except psutil.Error:
            continue


def _tree_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process tree so far (its ended, waited-for children included)."""
    import psutil

    try:
        root = psutil.Process(pid)
        done = root.cpu_times()
        total = done.children_user + done.children_system
        for proc in (root, *root.children(recursive=True)):
            times = proc.cpu_times()
            total += times.user + times.system
        return total
    except psutil.Error:
        return None


# One thread for torch, OpenMP and MKL: the process's CPU time then measures its work whatever else
# the machine runs, where wall time on shared cores varies with the load (docs/benchmarks.md).
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def train(config: Path, ot_dir: Path, record: Path, extra: list[str]) -> dict:
    """Run the real scripts/train.py with one thread; record `[t, text, cpu]` chunks as they arrive (wall
    and CPU seconds since the start); the wall time, the CPU time and the peak RSS as a dict."""
    import resource

    python = ot_dir.resolve() / "venv" / "bin" / "python"
    argv = [str(python), "-u", "scripts/train.py", "--config-path", str(config.resolve()), *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **ONE_THREAD}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    child = subprocess.Popen(argv, cwd=ot_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    stop, peak = threading.Event(), [0]
    watcher = threading.Thread(target=_peak_rss, args=(child.pid, stop, peak), daemon=True)
    watcher.start()
    assert child.stdout is not None
    cpu = 0.0
    with record.open("w", encoding="utf-8") as out:
        while chunk := child.stdout.read1(65536):  # type: ignore[attr-defined]  # a BufferedReader
            cpu = max(cpu, _tree_cpu_s(child.pid) or cpu)
            t = round(time.monotonic() - t0, 4)
            out.write(json.dumps([t, chunk.decode("utf-8", "replace"), round(cpu, 4)]) + "\n")
    rc = child.wait()
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    stop.set()
    watcher.join()
    return {
        "rc": rc,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu_s, 3),
        "peak_rss_bytes": peak[0],
        "record": str(record),
    }


def check_presets(ot_dir: Path, otdoctor: str, extra: list[Path]) -> list[dict]:
    """`otdoctor check --config` on every preset of the checkout (and EXTRA configs): what it finds."""
    rows = []
    for cfg in sorted((ot_dir / "training_presets").rglob("*.json")) + extra:
        argv = [otdoctor, "check", "--ot-dir", str(ot_dir), "--config", str(cfg), "--offline", "--format", "json"]
        res = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        row = {"config": str(cfg.relative_to(ot_dir)) if ot_dir in cfg.parents else cfg.name, "rc": res.returncode}
        try:
            checks = json.loads(res.stdout)["checks"]
        except (ValueError, KeyError):
            row["crash"] = (res.stderr or res.stdout).strip().splitlines()[-1:]
            rows.append(row)
            continue
        row["found"] = [
            {"status": c["status"], "id": c["id"], "summary": c.get("summary", "")}
            for c in checks
            if c["status"] in ("fail", "warn", "error")
        ]
        rows.append(row)
    return rows


CLOCKS = {"wall": 0, "cpu": 2}  # where each clock is in a record's `[t, text, cpu]`


def _record_events(record: Path, clock: str = "wall") -> list:
    """The bar updates and lines of a record, timed by CLOCK: wall seconds, or CPU seconds of the tree."""
    from otdoctor.estimate.progress_bars import BarStream

    stream, events, at = BarStream(), [], CLOCKS[clock]
    for line in record.read_text(encoding="utf-8").splitlines():
        chunk = json.loads(line)
        t = float(chunk[at])
        events += [(t, ev) for ev in stream.feed(chunk[1], t)]
    return events


def smoke_figures(record: Path, end: float, clock: str, config: Path) -> dict:
    """What `otdoctor smoke` reports of a whole OneTrainer run, read by otdoctor's own meter from a
    record in CLOCK (wall or CPU seconds): a smoke result `otdoctor estimate --from-smoke` finds."""
    from otdoctor.smoke.results import from_whole_run

    cfg = json.loads(config.read_text(encoding="utf-8"))
    settings = {
        "model": "sdxl" if "XL" in cfg["model_type"] else "sd15",
        "resolution": int(cfg["resolution"]),
        "batch_size": int(cfg["batch_size"]),
        "dtype": "fp32",
        "gpu": "CPU",
    }
    result = from_whole_run(_record_events(record, clock), end, settings)
    result.notes.append(f"{clock} clock, from {record.name}")
    result.date = dt.datetime.fromtimestamp(record.stat().st_mtime, dt.timezone.utc).isoformat(timespec="seconds")
    return result.to_dict()


def compare(estimate: dict, real: dict, clock: str) -> dict:
    """The estimate's prediction of the long run against what it really took in CLOCK, and the same
    terms with the long run's own costs (do the terms add up to the run?)."""
    from otdoctor.smoke.onetrainer_phases import overheads

    took = real["wall_s"] if clock == "wall" else real["cpu_s"]
    counts = {t["name"]: t["count"] or 0 for t in estimate["terms"]}
    events = _record_events(Path(real["record"]), clock)
    seen = overheads(events, took)
    first = next(t for t, ev in events if getattr(ev, "desc", None) == "step" and ev.n >= 1)
    steps, epochs = counts["training steps"], estimate["steps"]["epochs"]
    terms = (
        first
        + (steps - 1) * (seen.step_s or 0.0)
        + (epochs - 1) * (seen.epoch_s or 0.0)
        + max(0, counts["sampling"] - 1) * (seen.sample_s or 0.0)
        + counts["backups"] * (seen.backup_s or 0.0)
        + max(0, counts["saves"] - ("final save and exit" not in counts)) * (seen.save_s or 0.0)
        + (seen.final_s or 0.0)
    )
    return {
        "clock": clock,
        "real_s": round(took, 1),
        "estimate_s": round(estimate["total_s"], 1),
        "error_pct": round(100 * (estimate["total_s"] - took) / took, 1),
        "own_terms_error_pct": round(100 * (terms - took) / took, 1),
        "counted": {
            k: counts.get(k) for k in ("training steps", "sampling", "backups", "saves", "final save and exit")
        },
        "real_run": {"backups": seen.backups, "saves": seen.saves + 1, "step_s": seen.step_s},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("config")
    c.add_argument("name")
    c.add_argument("--ot-dir", type=Path, required=True)
    c.add_argument("--models", type=Path, required=True)
    c.add_argument("--work", type=Path, required=True)
    c.add_argument("--images", type=int, default=10)
    c.add_argument("--epochs", type=int, default=3)
    c.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="one more override")
    t = sub.add_parser("train")
    t.add_argument("config", type=Path)
    t.add_argument("--ot-dir", type=Path, required=True)
    t.add_argument("--record", type=Path, required=True)
    t.add_argument("--config-value", action="append", default=[])
    p = sub.add_parser("presets")
    p.add_argument("--ot-dir", type=Path, required=True)
    p.add_argument("--otdoctor", default="otdoctor")
    p.add_argument("--extra", type=Path, action="append", default=[])
    f = sub.add_parser("smoke-figures")
    f.add_argument("run", type=Path, help="the JSON `train` printed for the smoke run")
    f.add_argument("--config", type=Path, required=True)
    f.add_argument("--clock", choices=sorted(CLOCKS), required=True)
    f.add_argument("--out", type=Path, required=True, help="a smoke results folder (<cache>/smoke)")
    k = sub.add_parser("compare")
    k.add_argument("--estimate", type=Path, required=True)
    k.add_argument("--real", type=Path, required=True)
    k.add_argument("--clock", choices=sorted(CLOCKS), required=True)
    d = sub.add_parser("defaults")
    d.add_argument("--ot-dir", type=Path, required=True)
    d.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.cmd == "config":
        sets = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
        print(write_config(args.name, args.ot_dir, args.models, args.work, args.images, args.epochs, sets))
    elif args.cmd == "train":
        extra = [x for v in args.config_value for x in ("--config-value", v)]
        print(json.dumps(train(args.config, args.ot_dir, args.record, extra)))
    elif args.cmd == "smoke-figures":
        run = json.loads(args.run.read_text(encoding="utf-8"))
        end = run["wall_s"] if args.clock == "wall" else run["cpu_s"]
        figures = smoke_figures(Path(run["record"]), end, args.clock, args.config)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"{args.clock}.json").write_text(json.dumps(figures, indent=1), encoding="utf-8")
        print(json.dumps(figures))
    elif args.cmd == "compare":
        estimate, real = (json.loads(p.read_text(encoding="utf-8")) for p in (args.estimate, args.real))
        print(json.dumps(compare(estimate, real, args.clock)))
    elif args.cmd == "presets":
        print(json.dumps(check_presets(args.ot_dir.resolve(), args.otdoctor, args.extra), indent=1))
    else:
        args.out.write_text(json.dumps(defaults(args.ot_dir), indent=1), encoding="utf-8")
        print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
