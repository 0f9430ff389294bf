"""`otdoctor report`: the bundle holds everything a maintainer needs and nothing personal or secret.

A machine is planted with a user name, a host name and secrets in every place they hide: the
environment, secrets.json, the Hugging Face token file, the config and its concept file, the
install log, `pip freeze` (a wheel installed from a URL with a token), the git remote. The real
console script makes the bundle; every file of the zip, the printed Markdown and the `--print`
output are then searched for each planted value.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import pty
import re
import secrets
import select
import socket
import string
import subprocess
import threading
import zipfile
from pathlib import Path

import pytest

from tests.support import NVML_DATA
from tests.support.factory import build_wheel, git, make_onetrainer, make_venv, otdoctor_exe, pyenv_python

USER = "zeldakowalski"
HOST = "orion-gpu-box-7"
REAL_HOST = socket.gethostname()


def _alnum(n: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(n))


def _hex(n: int) -> str:
    return secrets.token_hex(n // 2)


class Planted:
    """Every secret value planted, by where it was put."""

    def __init__(self) -> None:
        self.hf_env = "hf_" + _alnum(34)
        self.civitai_env = _hex(32)
        self.wandb_env = _alnum(40)
        self.hf_secrets_json = "hf_" + _alnum(34)
        self.civitai_secrets_json = _hex(32)
        self.plain_secrets_json = "plain-" + _alnum(18)  # matches no pattern: only registration catches it
        self.bearer = "Zq" + _alnum(22)
        self.url_token = _alnum(24)  # ?token= in the config and the install log
        self.hf_loose = "hf_" + _alnum(34)  # in a concept's text, matched by pattern only
        self.civitai_loose = _hex(32)  # in the install log, matched by pattern only
        self.pip_token = _alnum(20)  # ?token= in a wheel URL pip recorded
        self.pip_password = _alnum(16)  # user:password@ in a wheel URL pip recorded
        self.github_token = "ghp_" + _alnum(36)  # in the git remote
        self.hf_token_file = "hf_" + _alnum(34)

    def values(self) -> dict[str, str]:
        return dict(vars(self))


@pytest.fixture(scope="module")
def wheel_server(tmp_path_factory):
    """A real HTTP server on 127.0.0.1 serving wheels (it ignores the ?token= in the URL, as a CDN would)."""
    root = tmp_path_factory.mktemp("wheels")
    build_wheel(root, "tokenpkg", "1.2.3")
    build_wheel(root, "authpkg", "0.4.0")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))

    class Quiet(handler.func):  # type: ignore[name-defined]
        def log_message(self, *args):  # noqa: D401 - silence the test output
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def machine(tmp_path_factory, wheel_server):
    """A home folder named after the user, a OneTrainer checkout with a venv, secrets everywhere."""
    p = Planted()
    base = tmp_path_factory.mktemp("machine")
    home = base / USER
    home.mkdir()
    ot = make_onetrainer(home / "OneTrainer", python_version="3.11")
    venv = make_venv(ot / "venv", pyenv_python("3.11"))
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps"]
    host = wheel_server.split("//", 1)[1]
    subprocess.run(pip + [f"{wheel_server}/tokenpkg-1.2.3-py3-none-any.whl?token={p.pip_token}"], check=True)
    subprocess.run(pip + [f"http://{USER}:{p.pip_password}@{host}/authpkg-0.4.0-py3-none-any.whl"], check=True)
    local = build_wheel(home / "wheels", "localpkg", "0.1.0")
    subprocess.run(pip + [str(local)], check=True)

    # The checkout: a remote with a token in it, a local change, the install log, secrets.json.
    git(ot, "remote", "add", "origin", f"https://{USER}:{p.github_token}@github.com/Nerogar/OneTrainer.git")
    (ot / "requirements-global.txt").write_text("diffusers==0.31.0  # pinned by " + USER + "\n")
    (ot / "secrets.json").write_text(
        json.dumps(
            {
                "__version": 0,
                "huggingface_token": p.hf_secrets_json,
                "cloud": {"api_key": p.civitai_secrets_json, "extra": [p.plain_secrets_json]},
            }
        )
    )
    (ot / "otdoctor-install.log").write_text(
        f"[install] running on {HOST} as {USER} in {home}/OneTrainer\n"
        f"[install] curl -H 'Authorization: Bearer {p.bearer}' https://civitai.com/api/download/models/292213\n"
        f"[install] GET https://civitai.com/api/download/models/292213?token={p.url_token}&type=Model\n"
        f"[install] using Civitai key {p.civitai_loose} for the download\n"
        f"[install] wandb login {p.wandb_env}\n"
        f"[install] secrets.json has {p.plain_secrets_json}\n"
        f"[install] HF_TOKEN={p.hf_env} set\n"
    )
    hf_home = home / ".cache" / "huggingface"
    hf_home.mkdir(parents=True)
    (hf_home / "token").write_text(p.hf_token_file + "\n")

    # The config and its concept file, with personal paths and a token in a URL.
    data = home / "datasets" / f"{USER}-photos"
    data.mkdir(parents=True)
    concepts = ot / "training_concepts" / "concepts.json"
    concepts.parent.mkdir()
    concepts.write_text(
        json.dumps(
            [
                {
                    "name": f"{USER} on {HOST}",
                    "path": str(data),
                    "enabled": True,
                    "text": {"prompt_source": "concept", "prompt_path": f"{home}/captions/{p.hf_loose}.txt"},
                },
                {"name": "reg", "path": "~/datasets/reg", "type": "STANDARD", "balancing": 0.2},
            ]
        )
    )
    config = home / "configs" / "me.json"
    config.parent.mkdir()
    config.write_text(
        json.dumps(
            {
                "__version": 11,
                "model_type": "STABLE_DIFFUSION_XL_10_BASE",
                "training_method": "FINE_TUNE",
                "base_model_name": f"https://civitai.com/api/download/models/292213?token={p.url_token}",
                "output_model_destination": f"{home}/models/{USER}.safetensors",
                "workspace_dir": f"/home/{USER}/workspace",
                "concept_file_name": "training_concepts/concepts.json",
                "huggingface_token": p.hf_secrets_json,
            }
        )
    )
    env = {
        "HOME": str(home),
        "USER": USER,
        "LOGNAME": USER,
        "OTDOCTOR_HOSTNAME": HOST,
        "HF_TOKEN": p.hf_env,
        "CIVITAI_API_KEY": p.civitai_env,
        "WANDB_API_KEY": p.wandb_env,
        "HF_HOME": str(hf_home),
        "PYTORCH_CUDA_ALLOC_CONF": "garbage_collection_threshold:0.6",
        "OT_DIR": str(ot),
    }
    return {"planted": p, "home": home, "ot": ot, "config": config, "env": env}


def _forbidden(m) -> dict[str, re.Pattern]:
    words = {
        "home path": re.escape(str(m["home"])),
        "user": re.escape(USER),
        "host": re.escape(HOST),
        # the real host name, as a word (a short one such as "vm" may sit inside "nvml")
        "real host": r"(?<![A-Za-z0-9])" + re.escape(REAL_HOST) + r"(?![A-Za-z0-9])",
    }
    words.update({name: re.escape(value) for name, value in m["planted"].values().items()})
    return {name: re.compile(pattern, re.I) for name, pattern in words.items()}


def _assert_clean(text: str, where: str, m) -> None:
    for name, pattern in _forbidden(m).items():
        hit = pattern.search(text)
        assert hit is None, f"{name} leaked into {where}: ...{text[max(0, hit.start() - 80) : hit.end() + 40]}..."


@pytest.fixture(scope="module")
def bundle(machine, tmp_path_factory):
    """One real `otdoctor report --output` run (it runs every check and pip freeze: seconds)."""
    out_dir = tmp_path_factory.mktemp("out")
    out = out_dir / "report.zip"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OT_", "OTDOCTOR_", "HF_", "GITHUB_"))}
    env.update(machine["env"], NO_COLOR="1", OTDOCTOR_CACHE_DIR=str(out_dir / "cache"))
    proc = subprocess.run(
        [otdoctor_exe(), "report", "--config", str(machine["config"]), "--output", str(out)],
        env=env,
        cwd=str(out_dir),
        capture_output=True,
        text=True,
        timeout=180,
    )
    printed = subprocess.run(
        [otdoctor_exe(), "report", "--config", str(machine["config"]), "--print"],
        env=env,
        cwd=str(out_dir),
        capture_output=True,
        text=True,
        timeout=180,
    )
    with zipfile.ZipFile(out) as zf:
        files = {name.split("/", 1)[1]: zf.read(name).decode("utf-8") for name in zf.namelist()}
    return {"proc": proc, "printed": printed, "files": files, "out": out, "out_dir": out_dir, "env": env}


def test_no_secret_or_personal_name_anywhere_in_the_bundle(bundle, machine):
    assert bundle["proc"].returncode == 0, bundle["proc"].stderr
    assert bundle["printed"].returncode == 0, bundle["printed"].stderr
    for name, text in bundle["files"].items():
        _assert_clean(text, f"zip:{name}", machine)
    _assert_clean(bundle["proc"].stdout, "the Markdown printed after writing", machine)
    _assert_clean(bundle["proc"].stderr, "stderr", machine)
    _assert_clean(bundle["printed"].stdout, "--print", machine)
    _assert_clean(bundle["out"].name, "the file name", machine)


def test_the_bundle_holds_what_a_maintainer_needs(bundle, machine):
    files = bundle["files"]
    assert {
        "summary.md",
        "checks.json",
        "facts.json",
        "pip-freeze.txt",
        "config.json",
        "concepts.json",
        "install.log",
        "environment.txt",
        "git.txt",
        "gpu.json",
        "nvml-snapshot.json",
    } <= set(files)
    # pip freeze of OneTrainer's venv, with the URLs' secrets cut but the packages kept.
    freeze = files["pip-freeze.txt"]
    assert re.search(
        r"^tokenpkg @ http://127\.0\.0\.1:\d+/tokenpkg-1\.2\.3-py3-none-any\.whl\?token=\*\*\*#sha256=[0-9a-f]{64}$",
        freeze,
        re.M,
    ), freeze
    assert re.search(r"^authpkg @ http://", freeze, re.M) and "localpkg @ file://~/wheels/" in freeze, freeze
    # The config with its concepts, paths relative to ~.
    config = json.loads(files["config.json"])
    assert config["base_model_name"] == "https://civitai.com/api/download/models/292213?token=***"
    assert config["output_model_destination"] == "~/models/<user>.safetensors"
    assert config["workspace_dir"] == "/home/<user>/workspace"
    concepts = json.loads(files["concepts.json"])
    assert [c["name"] for c in concepts] == ["<user> on <host>", "reg"]
    assert concepts[0]["path"] == "~/datasets/<user>-photos" and concepts[0]["_path_exists"] is True
    assert concepts[1]["_path_exists"] is False
    # The install log, each secret masked in its own way.
    log = files["install.log"]
    assert "running on <host> as <user> in ~/OneTrainer" in log
    assert "Authorization: Bearer ***" in log and "?token=***&type=Model" in log and "Civitai key *** for" in log
    assert "HF_TOKEN=*** set" in log
    # git: commit, local change, the remote without its credentials.
    assert "https://***@github.com/Nerogar/OneTrainer.git" in files["git.txt"]
    assert "requirements-global.txt" in files["git.txt"]
    # The environment: relevant variables, secrets masked by name.
    envtext = files["environment.txt"]
    assert "PYTORCH_CUDA_ALLOC_CONF=garbage_collection_threshold:0.6" in envtext
    assert "HF_TOKEN=***" in envtext and "HOME=~" in envtext
    assert "WANDB_API_KEY" not in envtext  # not relevant to OneTrainer: not listed at all
    # The full check results: a valid report `otdoctor merge` reads.
    checks = json.loads(files["checks.json"])
    assert checks["schema_version"] == 1 and checks["host"]["hostname"] == "<host>"
    assert {c["id"] for c in checks["checks"]} >= {"onetrainer.checkout", "onetrainer.git"}


def test_the_markdown_summary_describes_the_machine(bundle, machine):
    md = bundle["files"]["summary.md"]
    assert bundle["proc"].stdout == md  # printed to paste, identical to the file in the zip
    printed_md = bundle["printed"].stdout.split("\n===== otdoctor-report/", 1)[0]
    ids = re.compile(r"^\| \S+ \| `([a-z0-9._-]+)` \|", re.M)
    assert printed_md.startswith("## otdoctor report\n") and ids.findall(printed_md) == ids.findall(md)
    rows = dict(re.findall(r"^\| \*\*(.+?)\*\* \| (.*) \|$", md, re.M))
    assert set(rows) >= {"otdoctor", "OS", "CPU", "RAM", "GPUs", "Python", "venv", "torch", "OneTrainer", "config"}
    assert rows["venv"].startswith("~/OneTrainer/venv: Python 3.11.")
    assert rows["torch"] == "not installed"
    assert re.match(
        r"~/OneTrainer at `[0-9a-f]{10}` on master \(.*\), 1 locally changed file\(s\): requirements-global.txt",
        rows["OneTrainer"],
    )
    assert rows["GPUs"].startswith("none found (NVML Shared Library Not Found")
    assert rows["config"] == "~/configs/me.json (--config): STABLE_DIFFUSION_XL_10_BASE FINE_TUNE, 2 concept(s)"
    checks = json.loads(bundle["files"]["checks.json"])["checks"]
    for c in checks:  # every check's result is in the table
        assert re.search(r"^\| \S+ \| `" + re.escape(c["id"]) + "` \\| ", md, re.M), c["id"]
    # --print shows every file of the zip, each under its name.
    for name in ("pip-freeze.txt", "config.json", "concepts.json", "install.log", "environment.txt"):
        assert f"===== otdoctor-report/{name} =====\n{bundle['files'][name]}" in bundle["printed"].stdout
    for name in bundle["files"]:
        assert name == "summary.md" or f"===== otdoctor-report/{name} =====\n" in bundle["printed"].stdout


def test_print_alone_and_no_terminal_write_nothing(bundle):
    assert sorted(p.name for p in bundle["out_dir"].iterdir() if p.suffix == ".zip") == ["report.zip"]


def test_a_recorded_gpu_is_summarised_and_its_snapshot_kept_replayable(machine, bundle, run_cli, tmp_path):
    snapshot = NVML_DATA / "rtx4090-desktop.json"
    env = {**bundle["env"], "OTDOCTOR_NVML_SNAPSHOT": str(snapshot), "HOME": str(machine["home"])}
    proc = subprocess.run([otdoctor_exe(), "report", "--print"], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    gpus = re.search(r"^\| \*\*GPUs\*\* \| (.*) \|$", proc.stdout, re.M).group(1)
    assert gpus.startswith("#0 NVIDIA GeForce RTX 4090, 24.0 GiB (")
    assert "driver 570.133.07 (CUDA 12.8); read via NVML snapshot" in gpus
    kept = proc.stdout.split("===== otdoctor-report/nvml-snapshot.json =====\n", 1)[1].split("\n===== ", 1)[0]
    (tmp_path / "kept.json").write_text(kept)
    assert "GPU-<uuid>" in kept and not re.search(r"GPU-[0-9a-f]{8}-", kept)  # the card's identity is gone
    replay = run_cli("gpu", "--format", "json", env={"OTDOCTOR_NVML_SNAPSHOT": str(tmp_path / "kept.json")})
    if replay.returncode == 2 and "No such command" in replay.stderr:
        pytest.skip("`otdoctor gpu` not there yet")
    assert "NVIDIA GeForce RTX 4090" in replay.stdout


def _run_on_terminal(args: list[str], env: dict[str, str], cwd: Path, answers: list[bytes]) -> tuple[int, str]:
    master, slave = pty.openpty()
    proc = subprocess.Popen([otdoctor_exe(), *args], stdin=slave, stdout=slave, stderr=slave, env=env, cwd=str(cwd))
    os.close(slave)
    out = b""
    pending = list(answers)
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        out += data
        if pending and b"[s]how every file" in out.rsplit(b"\n", 1)[-1]:
            os.write(master, pending.pop(0))
    os.close(master)
    return proc.wait(timeout=60), re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode(errors="replace"))


def test_on_a_terminal_it_shows_the_summary_and_asks_before_writing(machine, bundle, tmp_path):
    env = {**bundle["env"], "TERM": "dumb"}
    rc, out = _run_on_terminal(["report"], env, tmp_path, [b"n\n"])
    assert rc == 1 and "## otdoctor report" in out and "pip-freeze.txt (" in out
    assert "nothing written" in out and not list(tmp_path.glob("*.zip"))
    rc, out = _run_on_terminal(["report"], env, tmp_path, [b"s\n", b"y\n"])
    assert rc == 0, out
    assert "===== otdoctor-report/install.log =====" in out  # [s]how printed every file first
    written = list(tmp_path.glob("otdoctor-report-*.zip"))
    assert len(written) == 1 and f"wrote {written[0].name}" in out.replace("\r", "")
    with zipfile.ZipFile(written[0]) as zf:
        assert "otdoctor-report/summary.md" in zf.namelist()


def test_the_uis_last_used_config_is_included_and_a_broken_one_shared_as_text(run_cli, home):
    ot = make_onetrainer(home / "OneTrainer")
    (ot / "training_presets").mkdir()
    (ot / "training_presets" / "#.json").write_text(
        '{"__version": 11, "model_type": "STABLE_DIFFUSION_15",\n  "epochs": 10,,}'
    )
    proc = run_cli("report", "--ot-dir", str(ot), "--print")
    assert proc.returncode == 0, proc.stderr
    row = re.search(r"^\| \*\*config\*\* \| (.*) \|$", proc.stdout, re.M).group(1)
    assert row.startswith("~/OneTrainer/training_presets/#.json (last-used UI state): does not load: ")
    assert "line 2" in row
    assert '"epochs": 10,,}' in proc.stdout.split("===== otdoctor-report/config.json =====\n", 1)[1]


def test_a_missing_config_is_one_line_and_exit_2(run_cli, tmp_path):
    proc = run_cli("report", "--config", str(tmp_path / "nope.json"), "--print")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"otdoctor: error: config file not found: {tmp_path / 'nope.json'}"]


def test_output_onto_a_folder_is_one_line_and_exit_2(run_cli, tmp_path):
    """`-o ""` (an empty shell variable) names the current folder: refused, and nothing left behind."""
    work = tmp_path / "work"
    work.mkdir()
    proc = run_cli("report", "--offline", "-o", "", cwd=work)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["otdoctor: error: cannot write --output .: Is a directory"]
    assert list(work.iterdir()) == []
