#!/usr/bin/env python3
"""Golden snapshot of every otdoctor command's output, for "no behaviour change" refactors.

    python scripts/snapshot_outputs.py --otdoctor /path/to/venv/bin/otdoctor --out DIR

Builds a fixture world in a temporary folder (a fake HOME, a OneTrainer-shaped git checkout with a
venv, a training config with two concept folders of tiny PNGs, a small SDXL-shaped safetensors
checkpoint, NVML snapshots from tests/data/nvml/), runs every command through the given console
script with a fixed environment, and writes DIR/<name>.txt: the exit code on the first line, then
stdout and stderr. What legitimately varies between runs (the temporary path, the otdoctor install
location, timings, timestamps, free disk/memory, PIDs) is normalised, so two runs of one build give
identical folders and `diff -r BEFORE AFTER` shows only behaviour changes.

Standard library only (plus the tests' stdlib-only config helpers); no network (proxies point at
a closed port, and --offline where offered).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.trainingdata import PARTS, part  # noqa: E402 - the tests' config parts (stdlib only)

REPO = Path(__file__).resolve().parent.parent
NVML_DIR = REPO / "tests" / "data" / "nvml"
MAIN_SNAPSHOT = "h100-idle.json"
# NVML snapshots name PIDs that otdoctor looks up on *this* machine; moved above Linux's
# PID_MAX_LIMIT (4194304) so no live process can ever match one.
PID_SHIFT = 5_000_000
TIMEOUT_S = 60
FIXED_DATE = "2024-01-02T03:04:05+00:00"
START = "2030-06-01T09:00:00+00:00"

# Fixture ----------------------------------------------------------------------------------------
LIB_INCLUDE = """\
#!/usr/bin/env bash
# Shaped like OneTrainer's lib.include.sh: the variables otdoctor reads.
export OT_CONDA_CMD="${OT_CONDA_CMD:-conda}"
export OT_PYTHON_CMD="${OT_PYTHON_CMD:-python}"
export OT_PYTHON_VENV="${OT_PYTHON_VENV:-venv}"
export OT_PLATFORM_REQUIREMENTS="${OT_PLATFORM_REQUIREMENTS:-detect}"
OT_PYTHON_VERSION_MINIMUM="3.10"
OT_PYTHON_VERSION_TOO_HIGH="3.14"
"""


KNOWN_ERROR_LOG = """\
Traceback (most recent call last):
  File "/home/user/Projects/OneTrainer/scripts/train_ui.py", line 3, in <module>
    from modules.util.args.TrainArgs import TrainArgs
  File "/home/user/Projects/OneTrainer/modules/util/args/TrainArgs.py", line 4, in <module>
    import mgds
ModuleNotFoundError: No module named 'mgds'
"""

UNKNOWN_ERROR_LOG = "epoch 1/10\nValueError: something otdoctor has never heard of\n"


def git_env(base: dict[str, str]) -> dict[str, str]:
    return {
        **base,
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.invalid",
        "GIT_AUTHOR_DATE": FIXED_DATE,
        "GIT_COMMITTER_DATE": FIXED_DATE,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }


def png(path: Path, w: int, h: int, seed: int, mode: str = "RGB") -> Path:
    """A real PNG (8-bit RGB or L), written with zlib: deterministic bytes, distinct per seed."""
    channels = 3 if mode == "RGB" else 1
    color_type = 2 if mode == "RGB" else 0
    rows = []
    for y in range(h):
        row = bytearray([0])
        for x in range(w):
            if channels == 3:
                row += bytes(((seed * 37 + x) & 255, (seed * 91 + y) & 255, (seed * 13 + x + y) & 255))
            else:
                row.append(255)
        rows.append(bytes(row))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    data = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def safetensors(path: Path, tensors: dict[str, tuple[int, ...]]) -> Path:
    """A real safetensors file of fp16 zeros: 8-byte header length, JSON header, data."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in tensors.items():
        n = 2
        for d in shape:
            n *= d
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)
    return path


SDXL_TENSORS = {
    "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": (16, 8),
    "conditioner.embedders.1.model.ln_final.weight": (8,),
    "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": (4, 2048),
    "first_stage_model.decoder.conv_in.weight": (4, 4, 3, 3),
}
SD15_TENSORS = {
    "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": (16, 8),
    "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (4, 768),
    "first_stage_model.decoder.conv_in.weight": (4, 4, 3, 3),
}


def concept(name: str, path: Path, prompt_path: Path, **kw: object) -> dict[str, object]:
    c: dict[str, object] = {
        "__version": 2,
        "image": {
            "__version": 0,
            "enable_crop_jitter": True,
            "enable_random_flip": False,
            "enable_resolution_override": False,
            "resolution_override": "512",
        },
        "text": {
            "__version": 0,
            "prompt_source": "concept",
            "prompt_path": str(prompt_path),
            "enable_tag_shuffling": False,
            "tag_delimiter": ",",
            "keep_tags_count": 1,
        },
        "name": name,
        "path": str(path),
        "seed": -19421,
        "enabled": True,
        "type": "STANDARD",
        "include_subdirectories": False,
        "image_variations": 1,
        "text_variations": 1,
        "balancing": 1.0,
        "balancing_strategy": "REPEATS",
        "loss_weight": 1.0,
        "concept_stats": {},
    }
    c.update(kw)
    return c


def training_config(ckpt: Path, concepts_file: Path, out: Path) -> dict[str, object]:
    """An exported OneTrainer config (version 11): SDXL fine-tune, Adafactor, bf16, masked training."""
    cfg: dict[str, object] = {
        "__version": 11,
        "training_method": "FINE_TUNE",
        "model_type": "STABLE_DIFFUSION_XL_10_BASE",
        "workspace_dir": "workspace/snap",
        "cache_dir": "workspace-cache/snap",
        "base_model_name": str(ckpt),
        "output_dtype": "BFLOAT_16",
        "output_model_format": "SAFETENSORS",
        "output_model_destination": str(out),
        "concept_file_name": str(concepts_file),
        "concepts": None,
        "aspect_ratio_bucketing": False,
        "latent_caching": True,
        "clear_cache_before_training": True,
        "learning_rate_scheduler": "CONSTANT",
        "learning_rate": 1e-05,
        "learning_rate_warmup_steps": 200.0,
        "epochs": 200,
        "batch_size": 1,
        "gradient_accumulation_steps": 1,
        "ema": "OFF",
        "train_dtype": "BFLOAT_16",
        "fallback_train_dtype": "BFLOAT_16",
        "resolution": "64",
        "masked_training": True,
        "unmasked_probability": 0.1,
        "unmasked_weight": 0.6,
        "optimizer": {
            "__version": 0,
            "optimizer": "ADAFACTOR",
            "eps": 1e-30,
            "eps2": 0.001,
            "clip_threshold": 1.0,
            "decay_rate": -0.8,
            "weight_decay": 0.01,
            "scale_parameter": False,
            "relative_step": False,
            "warmup_init": False,
            "stochastic_rounding": False,
            "fused_back_pass": True,
        },
        "sample_after": 10,
        "sample_after_unit": "MINUTE",
        "backup_after": 30,
        "backup_after_unit": "NEVER",
        "rolling_backup": False,
        "rolling_backup_count": 3,
        "backup_before_save": False,
        "save_every": 15,
        "save_every_unit": "EPOCH",
        "save_skip_first": 0,
        "save_filename_prefix": "snap",
        "lora_rank": 16,
        "samples": None,
    }
    for name in PARTS:
        cfg[name] = part()
    cfg["unet"] = part(weight_dtype="BFLOAT_16", learning_rate=1e-05, stop_training_after=10000)
    cfg["text_encoder"] = part(weight_dtype="BFLOAT_16", learning_rate=3e-06, stop_training_after=10000)
    cfg["text_encoder_2"] = part(
        weight_dtype="BFLOAT_16", train=False, stop_training_after=0, stop_training_after_unit="EPOCH"
    )
    return cfg


def find_python(version: str) -> Path | None:
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    if not root.is_dir():
        return None
    found = sorted(
        (p for p in root.iterdir() if p.name.startswith(version + ".") and (p / "bin" / "python").exists()),
        key=lambda p: tuple(int(x) for x in p.name.split(".") if x.isdigit()),
    )
    return found[-1] / "bin" / "python" if found else None


def build_world(root: Path, base_env: dict[str, str], nvml_dir: Path = NVML_DIR) -> dict[str, Path]:
    home = root / "home" / "snapuser"
    ot = home / "Projects" / "OneTrainer"
    (ot / "scripts" / "util").mkdir(parents=True)
    (ot / "modules").mkdir()
    (ot / "modules" / "__init__.py").write_text("")
    (ot / "lib.include.sh").write_text(LIB_INCLUDE)
    for launcher in ("install.sh", "start-ui.sh", "update.sh", "run-cmd.sh"):
        (ot / launcher).write_text("#!/usr/bin/env bash\nsource lib.include.sh\n")
        (ot / launcher).chmod(0o755)
    for launcher in ("install.bat", "start-ui.bat", "update.bat"):
        (ot / launcher).write_text("@echo off\r\n")
    (ot / "scripts" / "train.py").write_text("import sys\nprint('train.py', sys.argv[1:])\n")
    (ot / "requirements-global.txt").write_text("numpy\nPillow\n")
    (ot / "requirements-default.txt").write_text("-r requirements-global.txt\n")
    (ot / "requirements-cuda.txt").write_text(
        "--extra-index-url https://download.pytorch.org/whl/cu130\ntorch==2.9.0\n"
    )
    (ot / "requirements-cuda-legacy.txt").write_text(
        "--extra-index-url https://download.pytorch.org/whl/cu126\ntorch==2.9.0\n"
    )
    (ot / "requirements.txt").write_text("-r requirements-global.txt\n-r requirements-cuda.txt\n")
    (ot / ".gitignore").write_text("venv/\nworkspace/\nworkspace-cache/\nmodels/\nsecrets.json\nupdate.var\n")
    (ot / ".python-version").write_text("3.10\n")
    genv = git_env(base_env)
    for args in (["init", "-q", "-b", "master"], ["add", "-A"], ["commit", "-q", "-m", "OneTrainer-shaped checkout"]):
        subprocess.run(["git", "-C", str(ot), *args], check=True, capture_output=True, env=genv)
    py = find_python("3.10")
    if py is not None:  # a venv without pip: the venv checks find its Python but no torch
        subprocess.run([str(py), "-m", "venv", "--without-pip", str(ot / "venv")], check=True, capture_output=True)

    ckpt = safetensors(ot / "models" / "snap-sdxl.safetensors", SDXL_TENSORS)
    safetensors(home / "checkpoints" / "other-sd15.safetensors", SD15_TENSORS)
    (home / "checkpoints" / "broken.safetensors").write_bytes(b"<!DOCTYPE html><html>Access denied</html>\n")

    train = home / "training"
    for i in range(4):
        img = png(train / "person" / f"ohwx{i:02d}.png", 64, 64 if i < 3 else 48, seed=i)
        png(img.with_name(img.stem + "-masklabel.png"), 64, 64 if i < 3 else 48, seed=0, mode="L")
    for i in range(6):
        png(train / "reg-man" / f"reg{i:03d}.png", 64, 64, seed=100 + i)
    (train / "ohwx.txt").write_text("ohwx man\n")
    (train / "man.txt").write_text("man\n")
    concepts = [
        concept("ohwx man", train / "person", train / "ohwx.txt"),
        concept("regularization man", train / "reg-man", train / "man.txt", balancing=0.5),
    ]
    concepts_file = train / "concepts.json"
    concepts_file.write_text(json.dumps(concepts, indent=4))
    cfg = train / "person.json"
    cfg.write_text(json.dumps(training_config(ckpt, concepts_file, train / "out" / "model.safetensors"), indent=4))
    # A config with an unknown model type and a missing concept folder: the failing path.
    bad = training_config(
        home / "nowhere.safetensors", train / "missing-concepts.json", train / "out" / "x.safetensors"
    )
    bad["model_type"] = "NO_SUCH_MODEL"
    bad_cfg = train / "bad.json"
    bad_cfg.write_text(json.dumps(bad, indent=4))

    nvml = root / "nvml"
    nvml.mkdir()
    for src in sorted(nvml_dir.glob("*.json")):
        data = json.loads(src.read_text())
        (nvml / src.name).write_text(json.dumps(shift_pids(data), indent=1))

    logs = root / "logs"
    logs.mkdir()
    (logs / "known.log").write_text(KNOWN_ERROR_LOG)
    (logs / "unknown.log").write_text(UNKNOWN_ERROR_LOG)
    (root / "work").mkdir()
    return {
        "home": home,
        "ot": ot,
        "ckpt": ckpt,
        "cfg": cfg,
        "bad_cfg": bad_cfg,
        "nvml": nvml,
        "logs": logs,
        "work": root / "work",
        "checkpoints": home / "checkpoints",
    }


def shift_pids(value):
    if isinstance(value, dict):
        return {k: (v + PID_SHIFT if k == "pid" and isinstance(v, int) else shift_pids(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [shift_pids(v) for v in value]
    return value


# Normalisation ----------------------------------------------------------------------------------
def make_normaliser(replacements: list[tuple[str, str]]):
    """normalise(text, durations, clock): `durations` off for outputs whose times are computed
    (estimate), `clock` off where the start time is given (--start), so those stay exact."""
    subs = [(re.compile(re.escape(old)), new) for old, new in sorted(replacements, key=lambda p: -len(p[0])) if old]
    always = [
        # free disk space and available RAM move between runs (VRAM comes from the snapshot: kept)
        (r'("(?:available_bytes|free_bytes)"\s*:\s*)\d+', r"\1<N>"),
        (r"\b\d+(?:\.\d+)? ([KMGT]i?B|B) free(?! of [\d.]+ \w+ on GPU)", r"<N> \1 free"),
        (r"\b\d+(?:\.\d+)? ([KMGT]i?B|B) available\b", r"<N> \1 available"),
        (r"\bpid[ =:]+\d+", "pid <PID>"),
        # sizes of the report's files and zip: they follow the free disk figures and the length of
        # otdoctor's own install path (facts.json); the files' full text is kept anyway
        (r"(?m)^(- `[^`]+`) \([\d.]+ (?:B|KiB|MiB)\)$", r"\1 (<SIZE>)"),
        (r"\.zip \([\d.]+ (?:B|KiB|MiB), (\d+ files)\)", r".zip (<SIZE>, \1)"),
    ]
    clock = [
        # ISO timestamps (generated_at, the report's header), the report's default file name
        (r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?", "<TIMESTAMP>"),
        (r"\b\d{8}-\d{6}\b", "<STAMP>"),
        (r'(\btimestamp=")[^"]*(")', r"\1<TIMESTAMP>\2"),
    ]
    durations = [
        # how long checks took: JSON duration_s, JUnit time=, "took 12 ms", "... in 0.31 s"
        (r'("(?:duration_s|duration_ms|elapsed_s|elapsed|took_s|runtime_s)"\s*:\s*)-?[\d.eE+-]+', r"\1<DUR>"),
        (r'(<testsuites?\b[^>]*?\btime=")[\d.]+(")', r"\1<DUR>\2"),
        (r'(<testcase\b[^>]*?\btime=")[\d.]+(")', r"\1<DUR>\2"),
        (r"\b\d+(?:\.\d+)?\s?(?:ms|µs|us)\b", "<DUR>"),
        (r"\b(?:in|took|after) \d+(?:\.\d+)?\s?s\b", "<DUR>"),
        (r"\(\d+(?:\.\d+)?\s?s\)", "(<DUR>)"),
    ]

    def comp(rules):
        return [(re.compile(p), r) for p, r in rules]

    always_c, clock_c, durations_c = comp(always), comp(clock), comp(durations)

    def normalise(text: str, durations: bool = True, clock: bool = True) -> str:
        for pat, new in subs:
            text = pat.sub(new, text)
        rules = always_c + (clock_c if clock else []) + (durations_c if durations else [])
        for pat, rep in rules:
            text = pat.sub(rep, text)
        return text

    return normalise


# Running ----------------------------------------------------------------------------------------
class Runner:
    def __init__(self, exe: str, env: dict[str, str], cwd: Path, out: Path, normalise) -> None:
        self.exe, self.env, self.cwd, self.out, self.normalise = exe, env, cwd, out, normalise
        self.names: list[str] = []

    def __call__(
        self,
        name: str,
        *args: str,
        env: dict[str, str] | None = None,
        stdin: str | None = None,
        durations: bool = True,
        clock: bool = True,
    ) -> int:
        """Run `otdoctor ARGS`; DIR/NAME.txt gets the exit code, the command, stdout, then stderr."""
        assert name not in self.names, name
        self.names.append(name)
        if args and args[0] == "estimate":  # its times are computed, not measured: keep them exact
            durations = False
            clock = clock and "--start" not in args
        try:
            p = subprocess.run(
                [self.exe, *args],
                env={**self.env, **(env or {})},
                cwd=str(self.cwd),
                input=stdin if stdin is not None else "",
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
            )
            code, stdout, stderr = str(p.returncode), p.stdout, p.stderr
        except subprocess.TimeoutExpired as exc:
            code, stdout, stderr = f"TIMEOUT after {TIMEOUT_S} s", _s(exc.stdout), _s(exc.stderr)
        body = stdout + (f"----- stderr -----\n{stderr}" if stderr else "")
        command = self.normalise(f"$ otdoctor {' '.join(args)}\n", durations=False, clock=False)
        self.save(name, body, durations, clock, head=f"{code}\n{command}")
        return int(code) if code.lstrip("-").isdigit() else -1

    def save(self, name: str, text: str, durations: bool = True, clock: bool = True, head: str = "") -> None:
        path = self.out / f"{name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(head + self.normalise(text, durations, clock), encoding="utf-8")


def _s(b) -> str:
    return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")


def help_commands(run: Runner) -> None:
    """--help of the app and of every command and subcommand, discovered from the help texts."""
    seen: set[tuple[str, ...]] = set()
    todo: list[tuple[str, ...]] = [()]
    while todo:
        path = todo.pop(0)
        if path in seen:
            continue
        seen.add(path)
        name = "help/" + ("otdoctor" if not path else "_".join(path))
        run(name, *path, "--help")
        text = (run.out / f"{name}.txt").read_text()
        if "Commands:" in text:
            block = text.split("Commands:", 1)[1]
            for line in block.splitlines()[1:] if not block.splitlines()[0].strip() else block.splitlines():
                m = re.match(r"^  (\S+)", line)
                if m:
                    todo.append((*path, m.group(1)))
                elif line.strip() and not line.startswith(" "):
                    break


def save_bundle(run: Runner, name: str, zpath: Path) -> None:
    if not zpath.is_file():
        run.save(name + "/_files", "no zip written\n")
        return
    with zipfile.ZipFile(zpath) as zf:
        infos = sorted(zf.infolist(), key=lambda i: i.filename)
        run.save(name + "/_files", "".join(f"{i.filename}\n" for i in infos))
        for info in infos:
            base = info.filename.split("/", 1)[-1]
            if info.file_size <= 256_000:
                run.save(f"{name}/{base}", zf.read(info).decode("utf-8", errors="replace"))
            else:
                run.save(f"{name}/{base}", f"<{info.file_size} bytes, not kept>\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--otdoctor", required=True, help="the otdoctor console script to snapshot")
    ap.add_argument("--out", required=True, type=Path, help="folder for the outputs (emptied first)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary fixture folder")
    ap.add_argument(
        "--nvml-dir", type=Path, default=NVML_DIR, help=f"folder of NVML snapshot JSON files (default: {NVML_DIR})"
    )
    opts = ap.parse_args(argv)

    exe = str(Path(opts.otdoctor).absolute())
    out = opts.out.absolute()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t0 = time.monotonic()
    # Always /tmp/otsnap-XXXXXXXX: the same length on every run, so tables and wrapped lines that
    # hold the path are laid out alike before <ROOT> replaces it.
    root = Path(tempfile.mkdtemp(prefix="otsnap-", dir="/tmp"))
    try:
        base_env = {
            "HOME": str(root / "home" / "snapuser"),
            "USER": "snapuser",
            "LOGNAME": "snapuser",
            "TERM": "dumb",
            "COLUMNS": "160",
            "LINES": "50",
            "NO_COLOR": "1",
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
            "TZ": "UTC",
            "PATH": "/usr/local/bin:/usr/bin:/bin",  # pyenv's shims go first, below
            "PYTHONHASHSEED": "0",
            "PYTHONDONTWRITEBYTECODE": "1",
            "OTDOCTOR_CACHE_DIR": str(root / "otdoctor-cache"),
            "OTDOCTOR_CONFIG_DIR": str(root / "otdoctor-config"),
            "OTDOCTOR_HOSTNAME": "snaphost",
            "HOSTNAME": "snaphost",
            "http_proxy": "http://127.0.0.1:9",
            "https_proxy": "http://127.0.0.1:9",
            "HTTP_PROXY": "http://127.0.0.1:9",
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "no_proxy": "",
            "NO_PROXY": "",
            "TMPDIR": str(root / "tmp"),
        }
        pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
        if pyenv_root.is_dir():  # a pyenv-initialised shell: `python` follows the checkout's .python-version
            base_env["PYENV_ROOT"] = str(pyenv_root)
            base_env["PATH"] = f"{pyenv_root / 'shims'}:{pyenv_root / 'bin'}:{base_env['PATH']}"
        (root / "tmp").mkdir()
        (root / "home" / "snapuser").mkdir(parents=True)
        w = build_world(root, base_env, opts.nvml_dir)
        env = {**base_env, "OT_DIR": str(w["ot"]), "OTDOCTOR_NVML_SNAPSHOT": str(w["nvml"] / MAIN_SNAPSHOT)}

        # Where the build under test lives varies between builds: normalise it.
        probe = subprocess.run([exe, "--version"], capture_output=True, text=True, env=env)
        shebang = Path(exe).read_text(errors="replace").splitlines()[0] if Path(exe).is_file() else ""
        interp = shebang[2:].strip().split()[0] if shebang.startswith("#!") else sys.executable
        loc = subprocess.run(
            [
                interp,
                "-c",
                "import otdoctor, sys, os; print(os.path.dirname(os.path.dirname("
                "os.path.abspath(otdoctor.__file__)))); print(sys.prefix)",
            ],
            capture_output=True,
            text=True,
            env={"PATH": base_env["PATH"]},
        )
        src, prefix = (loc.stdout.splitlines() + ["", ""])[:2]
        replacements = [
            (str(root), "<ROOT>"),
            (src, "<OTDOCTOR_SRC>"),
            (prefix, "<OTDOCTOR_ENV>"),
            (str(Path(exe).parent), "<OTDOCTOR_BIN>"),
        ]
        normalise = make_normaliser(replacements)
        run = Runner(exe, env, w["work"], out, normalise)
        # The fixture's inputs, so a difference caused by changed test data shows up as such.
        fixture = "".join(
            f"  {p.name} sha256 {hashlib.sha256(p.read_bytes()).hexdigest()}\n"
            for p in sorted(opts.nvml_dir.glob("*.json"))
        )
        run.save(
            "_meta", f"otdoctor --version: {probe.stdout.strip()} (exit {probe.returncode})\nNVML snapshots:\n{fixture}"
        )

        cfg, ot, home = str(w["cfg"]), str(w["ot"]), w["home"]

        # help of everything
        help_commands(run)
        run("version", "--version")
        run("no_args")

        # check
        run("check/list", "check", "--list")
        run("check/text_default", "check")
        run("check/text", "check", "--offline", "--config", cfg, "--models-dir", str(w["checkpoints"]))
        run("check/text_verbose", "check", "--offline", "--config", cfg, "--verbose")
        run("check/text_strict", "check", "--offline", "--config", cfg, "--strict")
        for fmt in ("json", "junit", "github"):
            run(f"check/{fmt}", "check", "--offline", "--config", cfg, "--format", fmt)
        run(
            "check/github_step_summary_run",
            "check",
            "--offline",
            "--format",
            "github",
            "--only",
            "system",
            env={"GITHUB_STEP_SUMMARY": str(w["work"] / "step-summary.md")},
        )
        summary = w["work"] / "step-summary.md"
        run.save("check/github_step_summary", summary.read_text() if summary.exists() else "<none>\n")
        run("check/only_python", "check", "--offline", "--only", "python", "--format", "json")
        run("check/skip_gpu", "check", "--offline", "--skip", "gpu")
        run("check/bad_config", "check", "--offline", "--config", str(w["bad_cfg"]), "--only", "config")
        run(
            "check/require_gpu_no_gpu",
            "check",
            "--offline",
            "--require-gpu",
            "--only",
            "gpu",
            env={"OTDOCTOR_NVML_SNAPSHOT": str(w["nvml"] / "no-gpu.json")},
        )
        run("check/output_file_run", "check", "--offline", "--format", "json", "-o", str(w["work"] / "check.json"))
        run.save(
            "check/output_file",
            (w["work"] / "check.json").read_text() if (w["work"] / "check.json").exists() else "<none>\n",
        )
        run("check/usage_bad_format", "check", "--format", "xml")
        run("check/usage_missing_config", "check", "--config", str(home / "nope.json"))

        # gpu: the main snapshot plus every recorded machine
        run("gpu/text", "gpu")
        run("gpu/json", "gpu", "--format", "json")
        for snap in sorted(w["nvml"].glob("*.json")):
            e = {"OTDOCTOR_NVML_SNAPSHOT": str(snap)}
            run(f"gpu/{snap.stem}", "gpu", env=e)
            run(f"gpu/{snap.stem}.json", "gpu", "--format", "json", env=e)
        run("gpu/usage_bad_format", "gpu", "--format", "xml")

        # models
        run("models/verify_file", "models", "verify", str(w["ckpt"]))
        run("models/verify_file_json", "models", "verify", str(w["ckpt"]), "--json")
        run("models/verify_file_no_hash", "models", "verify", str(w["ckpt"]), "--no-hash")
        run("models/verify_dir", "models", "verify", str(w["checkpoints"]))
        run("models/verify_all", "models", "verify", "--config", cfg, "--models-dir", str(w["checkpoints"]))
        run("models/verify_bad_models_dir", "models", "verify", "--models-dir", str(home / "nope"))
        run("models/list", "models", "list")
        run("models/list_json", "models", "list", "--json")
        run("models/list_config_dir", "models", "list", "--config", cfg, "--models-dir", str(w["checkpoints"]))
        run(
            "models/list_config_dir_json",
            "models",
            "list",
            "--config",
            cfg,
            "--models-dir",
            str(w["checkpoints"]),
            "--json",
        )
        run("models/list_all", "models", "list", "--all")
        run("models/download_unknown", "models", "download", "no-such-model", "--offline")

        # estimate
        run("estimate/basic", "estimate", "--images", "36", "--reg", "5000", "--epochs", "200")
        run("estimate/basic_start", "estimate", "--images", "36", "--reg", "5000", "--epochs", "200", "--start", START)
        run(
            "estimate/basic_json",
            "estimate",
            "--images",
            "36",
            "--reg",
            "5000",
            "--epochs",
            "200",
            "--start",
            START,
            "--format",
            "json",
        )
        run("estimate/config", "estimate", "--config", cfg, "--start", START)
        run("estimate/config_json", "estimate", "--config", cfg, "--start", START, "--format", "json")
        run(
            "estimate/config_gpu_its",
            "estimate",
            "--config",
            cfg,
            "--gpu",
            "RTX 4090",
            "--its",
            "1.5",
            "--start",
            START,
        )
        run(
            "estimate/samples_strategy",
            "estimate",
            "--images",
            "20",
            "--reg",
            "300",
            "--strategy",
            "samples",
            "--epochs",
            "10",
            "--batch-size",
            "2",
            "--model",
            "sd15",
            "--start",
            START,
        )
        run("estimate/bad_config", "estimate", "--config", str(w["bad_cfg"]), "--start", START)
        run("estimate/usage_bad_start", "estimate", "--images", "3", "--start", "tomorrow")

        # explain
        run("explain/known", "explain", str(w["logs"] / "known.log"))
        run("explain/known_json", "explain", str(w["logs"] / "known.log"), "--format", "json")
        run("explain/known_stdin", "explain", "-", stdin=KNOWN_ERROR_LOG)
        run("explain/unknown", "explain", str(w["logs"] / "unknown.log"))
        run("explain/missing_file", "explain", str(w["logs"] / "nope.log"))

        # fix / install / smoke
        run("fix/dry_run", "fix", "--dry-run")
        run("fix/dry_run_config", "fix", "--dry-run", "--config", cfg)
        run("fix/bad_ot_dir", "fix", "--dry-run", "--ot-dir", str(home / "nope"))
        run(
            "install/dry_run",
            "install",
            "--dry-run",
            "--dir",
            str(home / "OT-new"),
            "--repo-url",
            ot,
            "--platform",
            "cuda",
        )
        run("install/dry_run_existing", "install", "--dry-run", "--dir", ot, "--repo-url", ot)
        run(
            "install/dry_run_cpu",
            "install",
            "--dry-run",
            "--dir",
            str(home / "OT-cpu"),
            "--repo-url",
            ot,
            "--platform",
            "cpu",
            "--python",
            "3.11",
        )
        run("smoke/usage_bad_device", "smoke", "--synthetic", "--device", "tpu")
        run("smoke/usage_bad_dtype", "smoke", "--dtype", "fp8")

        # report and merge
        zips = {}
        for label, snap in (("h100", MAIN_SNAPSHOT), ("rtx4090", "rtx4090-desktop.json")):
            z = w["work"] / f"report-{label}.zip"
            run(
                f"report/{label}_run",
                "report",
                "--offline",
                "--config",
                cfg,
                "--output",
                str(z),
                env={"OTDOCTOR_NVML_SNAPSHOT": str(w["nvml"] / snap)},
            )
            save_bundle(run, f"report/{label}_bundle", z)
            zips[label] = z
        run("report/print", "report", "--offline", "--print")
        run("report/no_output", "report", "--offline")
        run("merge/zips_text", "merge", str(zips["h100"]), str(zips["rtx4090"]))
        run("merge/zips_all", "merge", "--all", str(zips["h100"]), str(zips["rtx4090"]))
        run("merge/zips_markdown", "merge", "--format", "markdown", str(zips["h100"]), str(zips["rtx4090"]))
        run("merge/zips_json", "merge", "--format", "json", str(zips["h100"]), str(zips["rtx4090"]))
        run("merge/check_json", "merge", str(w["work"] / "check.json"), str(zips["rtx4090"]))
        run("merge/unreadable", "merge", str(w["logs"] / "known.log"), str(zips["h100"]))

        index = "".join(f"{n}\n" for n in run.names)
        (out / "_index.txt").write_text(index)
        print(f"{len(run.names)} outputs in {out} ({time.monotonic() - t0:.1f} s)", file=sys.stderr)
    finally:
        if opts.keep:
            print(f"fixture kept at {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
