"""The real-OneTrainer end-to-end steps that scripts/e2e_onetrainer.sh chains (see docs/onetrainer-e2e.md).

    python scripts/e2e_onetrainer.py config NAME --ot-dir DIR --models DIR --work DIR [--images N] [--epochs N]
    python scripts/e2e_onetrainer.py train CONFIG --ot-dir DIR --record FILE
    python scripts/e2e_onetrainer.py defaults --ot-dir DIR --out FILE

`config` writes a full OneTrainer config (OneTrainer's own defaults, exported by its venv, plus the
overrides of tests/data/onetrainer/e2e_configs.json), a generated dataset and a sample definition.
`train` runs the real scripts/train.py from the checkout root and records its output with arrival
times (JSON lines `[t, text]`, the fixtures' format), the wall time and the peak RSS of its process tree.
"""

from __future__ import annotations

import argparse
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
    for i in range(count):
        Image.effect_noise((size, size), 64).convert("RGB").save(folder / f"{i:04d}.png")
        (folder / f"{i:04d}.txt").write_text("a photo of a test pattern", encoding="utf-8")


def write_config(name: str, ot_dir: Path, models: Path, work: Path, images: int, epochs: int) -> Path:
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


def train(config: Path, ot_dir: Path, record: Path, extra: list[str]) -> dict:
    """Run the real scripts/train.py; record `[t, text]` chunks as they arrive; the figures as a dict."""
    python = ot_dir.resolve() / "venv" / "bin" / "python"
    argv = [str(python), "-u", "scripts/train.py", "--config-path", str(config.resolve()), *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t0 = time.monotonic()
    child = subprocess.Popen(argv, cwd=ot_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    stop, peak = threading.Event(), [0]
    watcher = threading.Thread(target=_peak_rss, args=(child.pid, stop, peak), daemon=True)
    watcher.start()
    assert child.stdout is not None
    with record.open("w", encoding="utf-8") as out:
        while chunk := child.stdout.read1(65536):
            out.write(json.dumps([round(time.monotonic() - t0, 4), chunk.decode("utf-8", "replace")]) + "\n")
    rc = child.wait()
    wall = time.monotonic() - t0
    stop.set()
    watcher.join()
    return {"rc": rc, "wall_s": round(wall, 3), "peak_rss_bytes": peak[0], "record": str(record)}


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


def _record_events(record: Path) -> list:
    from otdoctor.estimate.progress_bars import BarStream

    stream, events = BarStream(), []
    for line in record.read_text(encoding="utf-8").splitlines():
        t, text = json.loads(line)
        events += [(t, ev) for ev in stream.feed(text, t)]
    return events


def _term(estimate: dict, name: str) -> dict:
    return next((t for t in estimate["terms"] if t["name"] == name), {"count": 0, "seconds": 0.0})


def compare(smoke: dict, estimate: dict, real: dict, smoke_counts: tuple[int, int, int, int]) -> dict:
    """Predicted wall time of the long run two ways, and the real one.

    `estimate`: what `otdoctor estimate --from-smoke` says. `from_smoke`: the smoke's own wall time,
    plus what the long run has more of (steps, epoch boundaries, sampling passes, backups, saves), each
    at the cost the smoke measured, counted on OneTrainer's schedule as the estimate counts it.
    """
    sys.path.insert(0, str(HERE.parent))  # otdoctor itself, from this checkout
    from otdoctor.smoke.onetrainer_phases import overheads

    smoke_epochs, smoke_samples, smoke_backups, smoke_saves = smoke_counts
    steps = _term(estimate, "training steps")["count"]
    epochs = estimate["steps"]["epochs"]
    samples, backups = _term(estimate, "sampling")["count"], _term(estimate, "backups")["count"]
    saves = _term(estimate, "saves")["count"]
    smoke_steps = smoke["steps"] + smoke["warmup_steps"]
    extra = (
        (steps - smoke_steps) / smoke["its"]
        + (epochs - smoke_epochs) * (smoke.get("epoch_s") or 0.0)
        + (samples - smoke_samples) * (smoke.get("sample_s") or 0.0)
        + (backups - smoke_backups) * (smoke.get("backup_s") or 0.0)
        + (saves - smoke_saves) * (smoke.get("save_s") or 0.0)
    )
    predicted = smoke["wall_s"] + extra
    events = _record_events(Path(real["record"]))
    seen = overheads(events, real["wall_s"])
    first = next(t for t, ev in events if getattr(ev, "desc", None) == "step" and ev.n >= 1)
    # The same terms with the long run's own costs: do they add up to its wall time?
    terms = (
        first
        + (steps - 1) * (seen.step_s or 0.0)
        + (epochs - 1) * (seen.epoch_s or 0.0)
        + max(0, samples - 1) * (seen.sample_s or 0.0)
        + backups * (seen.backup_s or 0.0)
        + max(0, saves - 1) * (seen.save_s or 0.0)
        + (seen.final_s or 0.0)
    )
    return {
        "real_s": real["wall_s"],
        "from_smoke_s": round(predicted, 1),
        "from_smoke_error_pct": round(100 * (predicted - real["wall_s"]) / real["wall_s"], 1),
        "estimate_s": round(estimate["total_s"], 1) if "total_s" in estimate else None,
        "estimate_error_pct": round(100 * (estimate["total_s"] - real["wall_s"]) / real["wall_s"], 1)
        if "total_s" in estimate
        else None,
        "own_terms_error_pct": round(100 * (terms - real["wall_s"]) / real["wall_s"], 1),
        "counted": {"steps": steps, "epochs": epochs, "samples": samples, "backups": backups, "saves": saves},
        "real_run": {"backups": seen.backups, "saves": seen.saves + 1, "step_s": seen.step_s},
        "peak_rss_bytes": real.get("peak_rss_bytes"),
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
    t = sub.add_parser("train")
    t.add_argument("config", type=Path)
    t.add_argument("--ot-dir", type=Path, required=True)
    t.add_argument("--record", type=Path, required=True)
    t.add_argument("--config-value", action="append", default=[])
    p = sub.add_parser("presets")
    p.add_argument("--ot-dir", type=Path, required=True)
    p.add_argument("--otdoctor", default="otdoctor")
    p.add_argument("--extra", type=Path, action="append", default=[])
    k = sub.add_parser("compare")
    k.add_argument("--smoke", type=Path, required=True)
    k.add_argument("--estimate", type=Path, required=True)
    k.add_argument("--real", type=Path, required=True)
    k.add_argument(
        "--smoke-counts", type=int, nargs=4, required=True, metavar=("EPOCHS", "SAMPLES", "BACKUPS", "SAVES")
    )
    d = sub.add_parser("defaults")
    d.add_argument("--ot-dir", type=Path, required=True)
    d.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.cmd == "config":
        print(write_config(args.name, args.ot_dir, args.models, args.work, args.images, args.epochs))
    elif args.cmd == "train":
        extra = [x for v in args.config_value for x in ("--config-value", v)]
        print(json.dumps(train(args.config, args.ot_dir, args.record, extra)))
    elif args.cmd == "compare":
        loaded = [json.loads(p.read_text(encoding="utf-8")) for p in (args.smoke, args.estimate, args.real)]
        print(json.dumps(compare(*loaded, tuple(args.smoke_counts))))
    elif args.cmd == "presets":
        print(json.dumps(check_presets(args.ot_dir.resolve(), args.otdoctor, args.extra), indent=1))
    else:
        args.out.write_text(json.dumps(defaults(args.ot_dir), indent=1), encoding="utf-8")
        print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
