"""Two downloads of one file, and downloads that fail before any byte arrives (issue 12): the second
run stops with the holder's pid instead of appending to the same `.part`, and the messages say only
what happened on disk. Against the real HTTP server on 127.0.0.1."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from otdoctor.checkpoints import civitai
from otdoctor.checkpoints.catalog import find_entry, load_catalog
from otdoctor.checkpoints.download import download_civitai
from otdoctor.errors import UserError
from tests.checkpoints.conftest import CIVITAI_FILE
from tests.support.factory import otdoctor_exe
from tests.support.modelfiles import sha256_of
from tests.support.models_helpers import CIVITAI_TOKEN, HF_TOKEN, PROXY_VARS, assert_no_tokens


def test_second_download_of_the_same_file_stops_and_names_the_first(run, server, tmp_path, base_env, files):
    server.state.gate_after = 1_000_000  # the first download holds there until the gate opens
    dest = tmp_path / "models"
    part = dest / (CIVITAI_FILE + ".part")
    env = {k: v for k, v in base_env.items() if k not in PROXY_VARS}
    env.update(OTDOCTOR_CIVITAI_URL=server.url, CIVITAI_TOKEN=CIVITAI_TOKEN, HF_TOKEN=HF_TOKEN)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    first = subprocess.Popen(
        [otdoctor_exe(), "models", "download", "hyper-realism-v3", "--dest", str(dest)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    held = (1_000_000 // civitai.CHUNK_BYTES) * civitai.CHUNK_BYTES  # whole chunks before the gate
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (part.exists() and part.stat().st_size == held):
        time.sleep(0.02)
    assert part.stat().st_size == held
    second = run("models", "download", "hyper-realism-v3", "--dest", str(dest))
    assert second.returncode == 1
    assert f"another otdoctor is downloading {dest / CIVITAI_FILE} (pid {first.pid})" in second.stderr
    assert part.stat().st_size == held  # the second run wrote nothing
    server.state.gate.set()
    out, err = first.communicate(timeout=60)
    assert_no_tokens(out, err)
    assert first.returncode == 0, err
    assert sha256_of(dest / CIVITAI_FILE) == sha256_of(files["sd15"]) and not part.exists()


def test_drop_before_the_first_byte_says_nothing_was_saved(run, server, tmp_path, files):
    server.state.drop_at = [0]  # headers, then the connection closes before any data
    dest = tmp_path / "models"
    proc = run("models", "download", "hyper-realism-v3", "--dest", str(dest), "--retries", "0")
    assert proc.returncode == 1
    assert "no data arrived, nothing was saved" in proc.stderr
    assert "is kept" not in proc.stderr and "resume" not in proc.stderr
    assert not (dest / (CIVITAI_FILE + ".part")).exists()
    again = run("models", "download", "hyper-realism-v3", "--dest", str(dest))
    assert again.returncode == 0, again.stderr
    assert sha256_of(dest / CIVITAI_FILE) == sha256_of(files["sd15"])


def test_drop_after_some_bytes_says_how_many_are_kept(run, server, tmp_path):
    server.state.drop_at = [500_000]
    dest = tmp_path / "models"
    proc = run("models", "download", "hyper-realism-v3", "--dest", str(dest), "--retries", "0")
    assert proc.returncode == 1
    part = dest / (CIVITAI_FILE + ".part")
    kept = part.stat().st_size
    assert 0 < kept <= 500_000
    assert f"the partial file {part.name} ({kept} bytes) is kept" in proc.stderr


def test_stalled_server_before_any_byte_leaves_no_part(server, tmp_path, base_env, monkeypatch):
    # A server that sends the headers and then nothing: the read timeout ends each try.
    monkeypatch.setattr(civitai, "READ_TIMEOUT_S", 1.0)
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    server.state.gate_after = 0
    env = {**base_env, "OTDOCTOR_CIVITAI_URL": server.url}
    entry = find_entry(load_catalog(env), "hyper-realism-v3")
    dest = tmp_path / "models"
    started = time.monotonic()
    with pytest.raises(UserError) as caught:
        download_civitai(entry, dest, env, CIVITAI_TOKEN, retries=1)
    assert time.monotonic() - started < 20
    assert "no data arrived, nothing was saved" in caught.value.message
    assert "kept" not in caught.value.message
    assert not (dest / (CIVITAI_FILE + ".part")).exists() and not (dest / CIVITAI_FILE).exists()


def test_the_lock_is_released_when_the_holder_is_gone(run, server, tmp_path, files):
    # A finished (or killed) download never blocks the next one: the kernel drops the lock.
    dest = tmp_path / "models"
    assert run("models", "download", "hyper-realism-v3", "--dest", str(dest)).returncode == 0
    Path(dest / CIVITAI_FILE).rename(dest / "moved.safetensors")
    assert run("models", "download", "hyper-realism-v3", "--dest", str(dest)).returncode == 0
