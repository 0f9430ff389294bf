"""No planted secret reaches any output (issue 12): 32 secrets in every place a user keeps one.

The sources: environment variables (names otdoctor knows, and names no list could foresee, such as
`OT_CUSTOM_PASS`), OneTrainer's secrets.json, the training config, the checkout's git remotes, the
Hugging Face token file under HF_HOME, the command line of a real process holding VRAM (its PID
listed by a recorded NVML snapshot), the install log, a OneTrainer log given to `explain`, and the
options of `install`. Every command that prints or writes is run for real and each planted value is
searched for in all it produced: `check` in every format, `gpu`, the report bundle (every file of
the zip), `explain`, `fix --dry-run` and `install --dry-run`.
"""

from __future__ import annotations

import json
import os
import secrets
import string
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support import NVML_DATA
from tests.support.factory import git, make_onetrainer, otdoctor_exe
from tests.support.nvml_snapshots import put_processes


def _alnum(n: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(n))


def _plain(n: int = 14) -> str:
    """A secret of no known shape: only its place (a name, an option) or registration can catch it."""
    return "pw" + "".join(secrets.choice(string.ascii_lowercase + "!%^") for _ in range(n))


def _planted() -> dict[str, str]:
    return {
        # environment
        "env HF_TOKEN": "hf_" + _alnum(34),
        "env OT_CUSTOM_PASS": _plain(),
        "env CIVITAI_API_KEY": secrets.token_hex(16),
        "env WANDB_API_KEY": secrets.token_hex(20),
        "env MY_SERVICE_TOKEN": _plain(),
        "env AWS_SECRET_ACCESS_KEY": _alnum(40),
        "env DB_PASSWORD_2": _plain(),
        "env PIP_INDEX_URL password": _plain(),
        "env GITHUB_TOKEN": "ghp_" + _alnum(36),
        # OneTrainer's secrets.json
        "secrets.json huggingface_token": "hf_" + _alnum(34),
        "secrets.json cloud api_key": _plain(),
        "secrets.json list item": _plain(),
        # the training config
        "config huggingface_token": _plain(),
        "config ?token= in a URL": _alnum(24),
        "config sk- key in a prompt": "sk-proj-" + _alnum(40),
        # git remotes
        "git remote password": _plain(),
        "git remote token": "ghp_" + _alnum(36),
        # the VRAM holder's command line
        "argv --wandb-key": _plain(),
        "argv --password=": _plain(),
        "argv --api-key": _plain(),
        "argv DB_PASS=": _plain(),
        "argv MY_PWD=": _plain(),
        "argv --pw": _plain(),
        "argv password: (YAML)": _plain(),
        "argv curl -u user:pw": _plain(),
        "argv mysql -pX": _plain(),
        # the Hugging Face token file
        "HF_HOME/token": "hf_" + _alnum(34),
        # the install log
        "install log Bearer": _alnum(30),
        "install log AKIA": "AKIA" + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16)),
        # the log given to explain
        "explain Authorization": _plain(),
        "explain --hf-token": _plain(),
        "explain ?api_key=": _alnum(20),
        "explain JWT": "eyJ" + _alnum(20) + "." + _alnum(30) + "." + _alnum(25),
        "explain user:pass@": _plain(),
        "explain JSON password": _plain(),
        # install's options
        "install --repo-url password": _plain(),
        "install --pip-arg index password": _plain(),
    }


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    s = _planted()
    base = tmp_path_factory.mktemp("secrets")
    home = base / "home"
    home.mkdir()
    ot = make_onetrainer(home / "OneTrainer", python_version="3.11")
    git(ot, "remote", "add", "origin", f"https://zelda:{s['git remote password']}@github.com/Nerogar/OneTrainer.git")
    git(ot, "remote", "add", "fork", f"https://{s['git remote token']}@github.com/zelda/OneTrainer.git")
    (ot / "secrets.json").write_text(
        json.dumps(
            {
                "__version": 0,
                "huggingface_token": s["secrets.json huggingface_token"],
                "cloud": {"api_key": s["secrets.json cloud api_key"], "extra": [s["secrets.json list item"]]},
            }
        )
    )
    (ot / "otdoctor-install.log").write_text(
        f"[install] curl -H 'Authorization: Bearer {s['install log Bearer']}' https://example.org\n"
        f"[install] aws configure set aws_access_key_id {s['install log AKIA']}\n"
    )
    hf_home = home / "hf"
    hf_home.mkdir()
    (hf_home / "token").write_text(s["HF_HOME/token"] + "\n")
    config = home / "config.json"
    config.write_text(
        json.dumps(
            {
                "__version": 11,
                "model_type": "STABLE_DIFFUSION_XL_10_BASE",
                "training_method": "FINE_TUNE",
                "base_model_name": f"https://civitai.com/api/download/models/1?token={s['config ?token= in a URL']}",
                "huggingface_token": s["config huggingface_token"],
                "sample_definition_file_name": f"samples {s['config sk- key in a prompt']}.json",
            }
        )
    )
    log = home / "train.log"
    log.write_text(
        "Traceback (most recent call last):\n"
        f'  File "train.py", line 3, in <module>  # --hf-token {s["explain --hf-token"]}\n'
        f"requests: GET https://huggingface.co/api/x?api_key={s['explain ?api_key=']} (Authorization: "
        f"{s['explain Authorization']})\n"
        f"jwt={s['explain JWT']} https://zelda:{s['explain user:pass@']}@example.org/\n"
        f'{{"password": "{s["explain JSON password"]}"}}\n'
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB. --password "
        f"{s['argv --password=']}\n"
        "Torch not compiled with CUDA enabled\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OT_", "OTDOCTOR_", "HF_", "GITHUB_", "CIVITAI"))}
    env.update(
        HOME=str(home),
        NO_COLOR="1",
        COLUMNS="200",
        OT_DIR=str(ot),
        HF_HOME=str(hf_home),
        OTDOCTOR_CACHE_DIR=str(base / "cache"),
        OTDOCTOR_CONFIG_DIR=str(base / "config"),
        HF_TOKEN=s["env HF_TOKEN"],
        OT_CUSTOM_PASS=s["env OT_CUSTOM_PASS"],
        CIVITAI_API_KEY=s["env CIVITAI_API_KEY"],
        WANDB_API_KEY=s["env WANDB_API_KEY"],
        MY_SERVICE_TOKEN=s["env MY_SERVICE_TOKEN"],
        AWS_SECRET_ACCESS_KEY=s["env AWS_SECRET_ACCESS_KEY"],
        DB_PASSWORD_2=s["env DB_PASSWORD_2"],
        PIP_INDEX_URL=f"https://zelda:{s['env PIP_INDEX_URL password']}@pypi.example.org/simple",
        GITHUB_TOKEN=s["env GITHUB_TOKEN"],
    )
    return {"planted": s, "home": home, "ot": ot, "config": config, "log": log, "env": env, "base": base}


@pytest.fixture(scope="module")
def holder(machine):
    """A real process of this user holding VRAM, started with secrets on its command line."""
    s = machine["planted"]
    argv = [sys.executable, "-c", "import time; time.sleep(300)", "train.py", "--wandb-key", s["argv --wandb-key"]]
    argv += [f"--password={s['argv --password=']}", "--api-key", s["argv --api-key"], f"DB_PASS={s['argv DB_PASS=']}"]
    argv += [f"MY_PWD={s['argv MY_PWD=']}", "--pw", s["argv --pw"], f"password: {s['argv password: (YAML)']}"]
    argv += ["curl", "-u", f"zelda:{s['argv curl -u user:pw']}", "mysql", f"-p{s['argv mysql -pX']}"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    snap = json.loads((NVML_DATA / "rtx4090-desktop.json").read_text())
    put_processes(snap, "compute", [(proc.pid, "keep")])
    path = machine["base"] / "nvml.json"
    path.write_text(json.dumps(snap))
    yield {"pid": proc.pid, "snapshot": path}
    proc.kill()
    proc.wait(timeout=10)


def _run(machine, holder, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**machine["env"], "OTDOCTOR_NVML_SNAPSHOT": str(holder["snapshot"])}
    return subprocess.run(
        [otdoctor_exe(), *args],
        env=env,
        cwd=str(cwd or machine["home"]),
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def outputs(machine, holder) -> dict[str, str]:
    """Every output of every command, by a name that says where it came from."""
    got: dict[str, str] = {}

    def keep(name: str, proc: subprocess.CompletedProcess[str]) -> None:
        assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        got[f"{name} stdout"] = proc.stdout
        got[f"{name} stderr"] = proc.stderr

    cfg = str(machine["config"])
    for fmt in ("text", "json", "junit", "github"):
        keep(f"check --format {fmt}", _run(machine, holder, "check", "--config", cfg, "--format", fmt, "--verbose"))
    for fmt in ("text", "json"):
        keep(f"gpu --format {fmt}", _run(machine, holder, "gpu", "--format", fmt))
    keep("explain", _run(machine, holder, "explain", str(machine["log"])))
    keep("explain --format json", _run(machine, holder, "explain", "--format", "json", str(machine["log"])))
    keep("fix --dry-run", _run(machine, holder, "fix", "--dry-run", "--force", "--config", cfg))
    keep("fix gpu.vram --dry-run", _run(machine, holder, "fix", "gpu.vram", "--dry-run", "--force"))
    s = machine["planted"]
    repo = f"https://zelda:{s['install --repo-url password']}@github.com/Nerogar/OneTrainer.git"
    index = f"--extra-index-url=https://zelda:{s['install --pip-arg index password']}@pypi.example.org/simple"
    target = str(machine["base"] / "OneTrainer-new")
    keep(
        "install --dry-run",
        _run(machine, holder, "install", "--dry-run", "--dir", target, "--repo-url", repo, f"--pip-arg={index}"),
    )
    zip_path = machine["base"] / "report.zip"
    keep("report --output", _run(machine, holder, "report", "--config", cfg, "--output", str(zip_path)))
    keep("report --print", _run(machine, holder, "report", "--config", cfg, "--print"))
    with zipfile.ZipFile(zip_path) as zf:
        for name in zf.namelist():
            got[f"zip:{name}"] = zf.read(name).decode("utf-8")
    return got


def test_thirty_two_planted_secrets_appear_in_no_output(machine, holder, outputs):
    planted = machine["planted"]
    assert len(planted) >= 25 and len(set(planted.values())) == len(planted)
    leaks = [
        f"{where} leaks {name!r}: ...{text[max(0, text.find(value) - 60) : text.find(value) + len(value) + 20]}..."
        for name, value in planted.items()
        for where, text in outputs.items()
        if value in text
    ]
    assert leaks == [], "\n".join(leaks)


def test_the_outputs_still_show_what_the_secrets_were_next_to(machine, holder, outputs):
    """Masking keeps the rest: the holder's command, the remotes, the allowlisted variables."""
    pid = holder["pid"]
    assert f"{pid}" in outputs["gpu --format text stdout"]
    gpu = json.loads(outputs["gpu --format json stdout"])
    (mine,) = [p for p in gpu["processes"] if p["pid"] == pid]
    cmdline = " ".join(mine["cmdline"]) if isinstance(mine["cmdline"], list) else mine["cmdline"]
    assert "train.py --wandb-key *** --password=*** --api-key *** DB_PASS=***" in cmdline
    env = outputs["zip:otdoctor-report/environment.txt"]
    assert "HF_TOKEN=***" in env and "PIP_INDEX_URL=https://***@pypi.example.org/simple" in env
    assert "OT_CUSTOM_PASS" not in env and "MY_SERVICE_TOKEN" not in env and "DB_PASSWORD_2" not in env
    assert "https://***@github.com/Nerogar/OneTrainer.git" in outputs["zip:otdoctor-report/git.txt"]
    explained = outputs["explain stdout"]
    assert "CUDA out of memory" in explained and "--password ***" in explained
    assert "from https://***@github.com/Nerogar/OneTrainer.git" in outputs["install --dry-run stdout"]
