"""The download lock sits beside the destination (issue 12): two `models download` runs with
different otdoctor cache folders still see each other, for Civitai and for Hugging Face, and a
Hugging Face download refused with 401/403/404 says why and what to do (issue 13). Real processes
against the real HTTP server on 127.0.0.1; huggingface_hub is pointed at it with HF_ENDPOINT."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from otdoctor.checkpoints import civitai
from tests.checkpoints.conftest import CIVITAI_FILE, HF_FILE, HF_REPO
from tests.support.factory import otdoctor_exe
from tests.support.modelfiles import sha256_of
from tests.support.models_helpers import CIVITAI_TOKEN, HF_TOKEN, PROXY_VARS, assert_no_tokens


def _own_cache_env(base_env: dict[str, str], server_url: str, tmp_path: Path, tag: str) -> dict[str, str]:
    """The environment of one run, with its own otdoctor cache and XDG cache folders."""
    env = {k: v for k, v in base_env.items() if k not in PROXY_VARS}
    env.update(
        OTDOCTOR_CIVITAI_URL=server_url,
        HF_ENDPOINT=server_url,
        HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_DISABLE_TELEMETRY="1",
        CIVITAI_TOKEN=CIVITAI_TOKEN,
        HF_TOKEN=HF_TOKEN,
        OTDOCTOR_CACHE_DIR=str(tmp_path / f"otd-cache-{tag}"),
        XDG_CACHE_HOME=str(tmp_path / f"xdg-cache-{tag}"),
    )
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def _wait_for(ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    cmd = [otdoctor_exe(), "models", "download", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_civitai_lock_holds_across_different_cache_folders(run, server, tmp_path, base_env, files):
    server.state.gate_after = 1_000_000
    dest = tmp_path / "models"
    part, lock = dest / (CIVITAI_FILE + ".part"), dest / f".{CIVITAI_FILE}.otdoctor-lock"
    first = _start(["hyper-realism-v3", "--dest", str(dest)], _own_cache_env(base_env, server.url, tmp_path, "a"))
    held = (1_000_000 // civitai.CHUNK_BYTES) * civitai.CHUNK_BYTES  # whole chunks before the gate
    _wait_for(lambda: part.exists() and part.stat().st_size == held, "the first download to reach the gate")
    second = run(
        "models",
        "download",
        "hyper-realism-v3",
        "--dest",
        str(dest),
        env=_own_cache_env(base_env, server.url, tmp_path, "b"),
    )
    assert second.returncode == 1
    assert f"another otdoctor is downloading {dest / CIVITAI_FILE} (pid {first.pid})" in second.stderr
    assert part.stat().st_size == held  # the second run appended nothing
    server.state.gate.set()
    out, err = first.communicate(timeout=60)
    assert_no_tokens(out, err)
    assert first.returncode == 0, err
    assert sha256_of(dest / CIVITAI_FILE) == sha256_of(files["sd15"])
    assert not lock.exists() and not part.exists()  # nothing of the download is left beside the model


def test_hf_second_download_of_the_same_file_is_refused(run, server, tmp_path, base_env, files):
    server.state.hf_faults, server.state.gate_after = True, 500_000
    dest = tmp_path / "models"
    lock = dest / f".{HF_FILE}.otdoctor-lock"
    first = _start(["realvisxl-v4", "--dest", str(dest)], _own_cache_env(base_env, server.url, tmp_path, "a"))
    _wait_for(lambda: lock.exists() and server.requests_to(f"/{HF_REPO}/resolve/"), "the first download to start")
    _wait_for(lambda: any(r["method"] == "GET" for r in server.requests_to(f"/{HF_REPO}/resolve/")), "its GET")
    second = run(
        "models",
        "download",
        "realvisxl-v4",
        "--dest",
        str(dest),
        env=_own_cache_env(base_env, server.url, tmp_path, "b"),
    )
    assert second.returncode == 1
    assert f"another otdoctor is downloading {dest / HF_FILE} (pid {first.pid})" in second.stderr
    gets = [r for r in server.requests_to(f"/{HF_REPO}/resolve/") if r["method"] == "GET"]
    assert len(gets) == 1  # the refused run asked the server for nothing
    server.state.gate.set()
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert (dest / HF_FILE).read_bytes() == files["sdxl"].read_bytes() and not lock.exists()


def test_hf_cache_download_is_locked_too(run, server, tmp_path, base_env):
    server.state.hf_faults, server.state.gate_after = True, 500_000
    repo_dir = tmp_path / "hf-home" / "hub" / ("models--" + HF_REPO.replace("/", "--"))
    first = _start(["realvisxl-v4"], _own_cache_env(base_env, server.url, tmp_path, "a"))
    _wait_for(lambda: (repo_dir / f".{HF_FILE}.otdoctor-lock").exists(), "the lock in the cache")
    second = run("models", "download", "realvisxl-v4", env=_own_cache_env(base_env, server.url, tmp_path, "b"))
    server.state.gate.set()
    assert second.returncode == 1 and f"(pid {first.pid})" in second.stderr, second.stderr
    assert f"another otdoctor is downloading {HF_REPO}/{HF_FILE}" in second.stderr
    first.communicate(timeout=60)
    assert first.returncode == 0


def test_hf_gated_repo_without_token_says_accept_the_licence(run, server, tmp_path):
    server.state.hf_gated.add(HF_REPO)
    proc = run("models", "download", "realvisxl-v4", "--dest", str(tmp_path / "models"), drop_env=("HF_TOKEN",))
    assert proc.returncode == 1
    assert f"Hugging Face answered 401: {HF_REPO} is gated and no valid token was sent" in proc.stderr
    assert f"Accept the licence on https://huggingface.co/{HF_REPO}" in proc.stderr
    assert "`hf auth login` or set HF_TOKEN" in proc.stderr
    assert "Traceback" not in proc.stderr and not list((tmp_path / "models").glob("*.safetensors"))


def test_hf_gated_repo_with_token_says_the_token_has_no_access(run, server, tmp_path):
    server.state.hf_gated.add(HF_REPO)
    proc = run("models", "download", "realvisxl-v4", "--dest", str(tmp_path / "models"))
    assert proc.returncode == 1
    assert f"Hugging Face answered 403: {HF_REPO} is gated and this token has no access to it yet" in proc.stderr
    assert f"Accept the licence on https://huggingface.co/{HF_REPO}" in proc.stderr
    assert_no_tokens(proc.stdout, proc.stderr)  # the run fixture also searches every file left behind


def test_hf_missing_file_and_missing_repo_say_which(run, server, tmp_path):
    server.state.hf_files[(HF_REPO, "other.safetensors")] = server.state.hf_files.pop((HF_REPO, HF_FILE))
    proc = run("models", "download", "realvisxl-v4", "--dest", str(tmp_path / "models"))
    assert proc.returncode == 1
    assert f"Hugging Face answered 404: {HF_REPO} has no file {HF_FILE} at revision main" in proc.stderr
    assert f"https://huggingface.co/{HF_REPO}/tree/main" in proc.stderr
    server.state.hf_files.clear()
    proc = run("models", "download", "realvisxl-v4", "--dest", str(tmp_path / "models"))
    assert proc.returncode == 1
    assert f"there is no repository {HF_REPO}, or it is private" in proc.stderr
