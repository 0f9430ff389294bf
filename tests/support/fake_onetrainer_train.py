"""Stand-in for OneTrainer's scripts/train.py, behaving like it where `otdoctor smoke` looks.

Same arguments (--config-path, --preset-path, --secrets-path, --config-value KEY=VALUE with dotted
keys), the preset applied before the config, a model load, tqdm bars written by tqdm itself
(`epoch`, `caching`, `step` with `loss`/`smooth loss` postfix), files written into the workspace and
cache folders, Ctrl-C caught as KeyboardInterrupt (the run is cancelled, no final save), and the
final `Saving <path>` when it runs to the end.

Test knobs (environment): FAKE_OT_REPLAY=file (replay a recorded real run's output, with its timing
times FAKE_OT_REPLAY_SCALE, instead of the stand-in's own bars), FAKE_OT_LOAD_S,
FAKE_OT_STEP_S, FAKE_OT_FAIL=oom, FAKE_OT_RECORD=file
(JSON lines: pid, workspace, the merged config, phases reached).
"""

import argparse
import json
import os
import random
import sys
import time

from tqdm import tqdm


def record(**data):
    path = os.environ.get("FAKE_OT_RECORD")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps(data) + "\n")


def replay(path, scale):
    """Write a recorded real train.py run (JSON lines `[t, text]`) with its timing, times SCALE."""
    start = time.monotonic()
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            t, text = json.loads(line)
            time.sleep(max(0.0, start + t * scale - time.monotonic()))
            sys.stdout.write(text)
            sys.stdout.flush()


def set_dotted(config, key, value):
    *parents, leaf = key.split(".")
    node = config
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value


def main():
    parser = argparse.ArgumentParser(description="One Trainer Training Script.")
    parser.add_argument("--preset-path", type=str, required=False, dest="preset_path")
    parser.add_argument("--config-path", type=str, required=True, dest="config_path")
    parser.add_argument("--secrets-path", type=str, required=False, dest="secrets_path")
    parser.add_argument("--config-value", type=str, required=False, dest="config_values", action="append")
    parser.add_argument("--callback-path", type=str, required=False, dest="callback_path")
    parser.add_argument("--command-path", type=str, required=False, dest="command_path")
    args = parser.parse_args()

    config = {}
    if args.preset_path:
        with open(args.preset_path) as f:
            config.update(json.load(f))
    with open(args.config_path) as f:
        config.update(json.load(f))
    for item in args.config_values or []:
        key, _, value = item.partition("=")
        set_dotted(config, key, value)

    record(
        phase="start",
        pid=os.getpid(),
        workspace=config.get("workspace_dir"),
        config=config,
        preset=bool(args.preset_path),
    )
    time.sleep(float(os.environ.get("FAKE_OT_LOAD_S", "0.3")))
    base = config.get("base_model_name", "")
    if not os.path.exists(base):
        raise RuntimeError("could not load model: %s" % base)
    if os.environ.get("FAKE_OT_FAIL") == "oom":
        sys.stderr.write('Traceback (most recent call last):\n  File "modules/trainer/GenericTrainer.py", line 700\n')
        sys.stderr.write(
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total "
            "capacity of 23.64 GiB of which 3.44 MiB is free.\n"
        )
        sys.exit(1)

    if os.environ.get("FAKE_OT_REPLAY"):
        replay(os.environ["FAKE_OT_REPLAY"], float(os.environ.get("FAKE_OT_REPLAY_SCALE", "1")))
        return

    workspace = config["workspace_dir"]
    cache = config["cache_dir"]
    for sub in ("config", "samples", "backup", "save"):
        os.makedirs(os.path.join(workspace, sub), exist_ok=True)
    os.makedirs(os.path.join(cache, "image"), exist_ok=True)
    with open(os.path.join(workspace, "config", "config.json"), "w") as fh:
        json.dump(config, fh)
    with open(config["concept_file_name"]) as fh:
        concepts = json.load(fh)
    images = []
    for c in concepts:
        folder = c["path"]
        images += sorted(
            os.path.join(folder, n)
            for n in os.listdir(folder)
            if n.lower().endswith((".png", ".jpg", ".jpeg", ".webp")) and "-masklabel" not in n
        )
    batch = int(config.get("batch_size", 1))
    epochs = int(config.get("epochs", 100))
    step_s = float(os.environ.get("FAKE_OT_STEP_S", "0.05"))
    canceled = False
    try:
        for _epoch in tqdm(range(epochs), desc="epoch"):
            for i in tqdm(range(len(images)), desc="caching"):
                with open(os.path.join(cache, "image", "%d.pt" % i), "wb") as fh:
                    fh.write(os.urandom(256))
                time.sleep(0.01)
            record(phase="training")
            steps = len(images) // batch
            bar = tqdm(total=steps, desc="step")
            smooth = None
            for _ in range(steps):
                time.sleep(step_s * random.uniform(0.9, 1.1))
                loss = random.uniform(0.05, 0.2)
                smooth = loss if smooth is None else 0.9 * smooth + 0.1 * loss
                bar.set_postfix({"loss": "%.4f" % loss, "smooth loss": "%.4f" % smooth}, refresh=False)
                bar.update(1)
            bar.close()
    except KeyboardInterrupt:
        canceled = True
    record(phase="end", canceled=canceled)
    if not canceled:
        out = config["output_model_destination"]
        os.makedirs(os.path.dirname(out), exist_ok=True)
        print("Saving " + out)
        with open(out, "wb") as fh:
            fh.write(b"\0" * 1024)


if __name__ == "__main__":
    main()
