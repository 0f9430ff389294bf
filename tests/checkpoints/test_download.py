"""`otdoctor models download` against a real HTTP server on 127.0.0.1 speaking the Hugging Face and
Civitai endpoints, serving small real safetensors files. The catalog's two models are replaced by
entries for those small files through the user's models.toml, exactly as a user would add one."""

from __future__ import annotations

import resource
import shlex
import signal
import subprocess
import time
from pathlib import Path

from tests.checkpoints.conftest import CIVITAI_FILE, HF_FILE, HF_REPO, VERSION_ID, write_catalog
from tests.support.factory import make_onetrainer, otdoctor_exe
from tests.support.modelfiles import sha256_of
from tests.support.models_helpers import CIVITAI_TOKEN, HF_TOKEN, assert_no_tokens, catalog_toml
from tests.support.modelserver import ModelServer


def _signed(server: ModelServer) -> list[dict]:
    return server.requests_to("/signed/")


# Civitai --------------------------------------------------------------------------------------------
def test_civitai_download_verified_and_token_not_sent_to_signed_host(run, server, tmp_path, files):
    dest = tmp_path / "models"
    proc = run("models", "download", "hyper-realism-v3", "--dest", str(dest))
    assert proc.returncode == 0, proc.stderr
    final = dest / CIVITAI_FILE
    assert final.read_bytes() == files["sd15"].read_bytes()
    assert not (dest / (CIVITAI_FILE + ".part")).exists()
    assert "sha256 verified" in proc.stdout + proc.stderr
    downloads = server.requests_to("/api/download/models/")
    assert downloads and downloads[0]["headers"].get("Authorization") == f"Bearer {CIVITAI_TOKEN}"
    signed = _signed(server)
    assert signed, "the redirect to the signed URL was not followed"
    assert all("Authorization" not in r["headers"] for r in signed), "the token leaked to the redirect target"
    # The download's own verification was cached: a check finds it verified without reading it again.
    check = run("check", "--only", "models", "--models-dir", str(dest), "--verbose")
    assert "Hyper Realism V3" in check.stdout and "sha256 verified" in check.stdout
    # Running the same download again is a no-op.
    again = run("models", "download", "hyper-realism-v3", "--dest", str(dest))
    assert again.returncode == 0 and "already there" in again.stdout + again.stderr


def test_civitai_without_token_gets_login_page_nothing_saved(run, tmp_path):
    dest = tmp_path / "models"
    proc = run("models", "download", "hyper-realism-v3", "--dest", str(dest), drop_env=("CIVITAI_TOKEN",))
    assert proc.returncode == 1
    assert "HTML page" in proc.stderr and "without an API token" in proc.stderr
    assert "CIVITAI_TOKEN" in proc.stderr  # says how to give one
    assert not (dest / CIVITAI_FILE).exists()
    assert not (dest / (CIVITAI_FILE + ".part")).exists()


def test_civitai_invalid_token_from_file(run, tmp_path):
    bad = tmp_path / "token.txt"
    wrong = "civitai-WRONG-token-0000"
    bad.write_text(wrong + "\n")
    dest = tmp_path / "models"
    proc = run("models", "download", "hyper-realism-v3", "--dest", str(dest), "--token-file", str(bad))
    assert proc.returncode == 1
    assert "401" in proc.stderr and "refused" in proc.stderr
    assert wrong not in proc.stdout + proc.stderr
    assert not (dest / CIVITAI_FILE).exists()


def test_binary_token_file_is_one_line_error(run_cli, tmp_path):
    binary = tmp_path / "token.bin"
    binary.write_bytes(b"\xbc\xff\x00garbage")
    proc = run_cli("models", "download", "hyper-realism-v3", "--dest", str(tmp_path), "--token-file", str(binary))
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == f"otdoctor: error: the token file {binary} is not text; it should hold only your Civitai API key"
    )
    assert binary.read_bytes() == b"\xbc\xff\x00garbage"


def test_connection_drops_resume_to_verified_file(run, server, tmp_path, files):
    size = files["sd15"].stat().st_size
    server.state.drop_at = [700_000, 1_900_000, 2_600_000]
    dest = tmp_path / "models"
    part = dest / (CIVITAI_FILE + ".part")
    sizes = []
    for _ in range(3):
        proc = run("models", "download", "hyper-realism-v3", "--dest", str(dest), "--retries", "0")
        assert proc.returncode == 1
        assert "dropped" in proc.stderr and "run the same command again" in proc.stderr
        assert not (dest / CIVITAI_FILE).exists()
        sizes.append(part.stat().st_size)
    assert sizes == sorted(sizes) and 0 < sizes[-1] < size
    final = run("models", "download", "hyper-realism-v3", "--dest", str(dest))
    assert final.returncode == 0, final.stderr
    assert (dest / CIVITAI_FILE).read_bytes() == files["sd15"].read_bytes()
    assert not part.exists()
    ranges = [r["headers"].get("Range") for r in _signed(server)]
    assert ranges[0] is None and f"bytes={sizes[-1]}-" in ranges, ranges


def test_drops_within_one_run_are_resumed_automatically(run, server, tmp_path, files):
    server.state.drop_at = [600_000, 2_000_000]
    dest = tmp_path / "models"
    proc = run("models", "download", "hyper-realism-v3", "--dest", str(dest))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("resuming") == 2
    assert sha256_of(dest / CIVITAI_FILE) == sha256_of(files["sd15"])


def test_wrong_hash_rejected_nothing_under_final_name(run, server, tmp_path):
    server.state.civitai[VERSION_ID].api_sha256 = "ab" * 32
    dest = tmp_path / "models"
    proc = run("models", "download", "hyper-realism-v3", "--dest", str(dest))
    assert proc.returncode == 1
    assert "rejected" in proc.stderr and "sha256" in proc.stderr
    # only the hidden lock stays after a failure (removed on success; safe to remove only then)
    assert [p.name for p in dest.iterdir()] == [f".{CIVITAI_FILE}.otdoctor-lock"]


def test_offline_uses_catalog_hash(run, server, tmp_path, base_env, files):
    write_catalog(base_env, files, civitai_sha="cd" * 32)
    dest = tmp_path / "models"
    proc = run("models", "download", "hyper-realism-v3", "--dest", str(dest), "--offline")
    assert proc.returncode == 1 and "catalog" in proc.stderr
    assert not server.requests_to("/api/v1/"), "--offline still asked the API"
    assert not (dest / CIVITAI_FILE).exists()


def test_not_enough_free_disk_is_checked_first(run, server, tmp_path, base_env, files):
    write_catalog(base_env, files, civitai_size=10**17)
    dest = tmp_path / "models"
    proc = run("models", "download", "hyper-realism-v3", "--dest", str(dest), "--offline")
    assert proc.returncode == 1
    assert "not enough free disk space" in proc.stderr
    assert not _signed(server), "the download started although the disk is too small"


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failing write, not a killed process
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))


def test_disk_full_while_writing_gives_clear_error(run, tmp_path):
    dest = tmp_path / "models"
    proc = run("models", "download", "hyper-realism-v3", "--dest", str(dest), preexec_fn=_limit_file_size)
    assert proc.returncode == 1
    assert "file size limit was reached" in proc.stderr and "resumes" in proc.stderr
    assert not (dest / CIVITAI_FILE).exists()
    # Without the limit, the next run resumes from what was written and finishes.
    again = run("models", "download", "hyper-realism-v3", "--dest", str(dest))
    assert again.returncode == 0, again.stderr
    assert (dest / CIVITAI_FILE).exists()


def test_ctrl_c_leaves_resumable_part(run, server, tmp_path, base_env, files):
    server.state.gate_after = 1_200_000
    dest = tmp_path / "models"
    part = dest / (CIVITAI_FILE + ".part")
    env = {
        **base_env,
        "HF_ENDPOINT": server.url,
        "OTDOCTOR_CIVITAI_URL": server.url,
        "CIVITAI_TOKEN": CIVITAI_TOKEN,
        "HF_TOKEN": HF_TOKEN,
        "NO_PROXY": "127.0.0.1,localhost",
    }
    proc = subprocess.Popen(
        [otdoctor_exe(), "models", "download", "hyper-realism-v3", "--dest", str(dest)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (part.exists() and part.stat().st_size > 0):
        time.sleep(0.02)
    assert part.exists() and part.stat().st_size > 0
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    server.state.gate.set()
    assert_no_tokens(out, err)
    assert proc.returncode == 130
    assert "resumes it" in err
    assert part.exists() and not (dest / CIVITAI_FILE).exists()
    kept = part.stat().st_size
    listed = run("models", "list", "--models-dir", str(dest))
    assert "interrupted download" in listed.stdout
    assert f"otdoctor models download hyper-realism-v3 --dest {shlex.quote(str(dest))}" in listed.stdout
    check = run("check", "--only", "models", "--models-dir", str(dest))
    assert "only an interrupted download" in check.stdout
    server.state.gate_after = None
    again = run("models", "download", "hyper-realism-v3", "--dest", str(dest))
    assert again.returncode == 0, again.stderr
    assert f"bytes={kept}-" in [r["headers"].get("Range") for r in _signed(server)]
    assert sha256_of(dest / CIVITAI_FILE) == sha256_of(files["sd15"])


# Hugging Face ----------------------------------------------------------------------------------------
def test_hf_download_into_cache_then_check_finds_it(run, server, tmp_path, files):
    proc = run("models", "download", "realvisxl-v4")
    assert proc.returncode == 0, proc.stderr
    snapshots = list((tmp_path / "hf-home" / "hub").glob(f"models--SG161222--RealVisXL_V4.0/snapshots/*/{HF_FILE}"))
    assert len(snapshots) == 1 and snapshots[0].read_bytes() == files["sdxl"].read_bytes()
    assert "sha256 matches" in proc.stdout + proc.stderr
    heads = [r for r in server.requests_to("/SG161222/") if r["method"] == "HEAD"]
    assert heads, "huggingface_hub did not ask the local endpoint"
    check = run("check", "--only", "models", "--verbose")
    assert "Hugging Face cache" in check.stdout and "sha256 verified" in check.stdout


def test_hf_download_to_dest_with_wrong_content_fails(run, server, tmp_path, files):
    server.state.hf_files[(HF_REPO, HF_FILE)] = files["sdxl_other"].read_bytes()
    dest = tmp_path / "models"
    proc = run("models", "download", "realvisxl-v4", "--dest", str(dest))
    assert proc.returncode == 1
    assert "does not match the catalog" in proc.stderr and "sha256" in proc.stdout + proc.stderr


def test_hf_not_enough_free_disk(run, server, base_env, files, tmp_path):
    cfg = Path(base_env["OTDOCTOR_CONFIG_DIR"]) / "models.toml"
    cfg.write_text(
        catalog_toml(
            [
                {
                    "name": "realvisxl-v4",
                    "architecture": "SDXL",
                    "source": "huggingface",
                    "repo": HF_REPO,
                    "filename": HF_FILE,
                    "files": [{"name": HF_FILE, "size_bytes": 10**17}],
                }
            ]
        )
    )
    proc = run("models", "download", "realvisxl-v4", "--dest", str(tmp_path / "models"))
    assert proc.returncode == 1 and "not enough free disk space" in proc.stderr
    assert not server.requests_to("/SG161222/")


def test_hf_entry_without_sha_uses_paths_info(run, server, base_env, tmp_path, files):
    cfg = Path(base_env["OTDOCTOR_CONFIG_DIR"]) / "models.toml"
    cfg.write_text(
        catalog_toml(
            [{"name": "my-xl", "architecture": "SDXL", "source": "huggingface", "repo": HF_REPO, "filename": HF_FILE}]
        )
    )
    proc = run("models", "download", "my-xl", "--dest", str(tmp_path / "models"))
    assert proc.returncode == 0, proc.stderr
    assert "sha256 matches the Hub's paths-info file" in proc.stdout + proc.stderr
    assert [r for r in server.requests_to("/api/models/") if r["method"] == "POST" and "paths-info" in r["path"]]


def test_unknown_model_name(run):
    proc = run("models", "download", "no-such-model")
    assert proc.returncode == 2 and "realvisxl-v4" in proc.stderr


def test_fix_moves_damaged_copy_aside_and_downloads_verified_one(run, server, tmp_path, files):
    ot = make_onetrainer(tmp_path / "OneTrainer", git_init=False)
    dest = ot / "models"  # the checkout's models/ folder is one of the places otdoctor looks
    dest.mkdir()
    damaged = dest / CIVITAI_FILE
    damaged.write_bytes(files["sd15"].read_bytes()[:-4096])  # an interrupted download from elsewhere
    check = run("check", "--only", "models", "--ot-dir", str(ot))
    assert check.returncode == 1 and "truncated: 4096 bytes" in check.stdout and "OneTrainer models/" in check.stdout
    proc = run("fix", "models.checkpoints", "--yes", "--ot-dir", str(ot), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (dest / (CIVITAI_FILE + ".bad")).stat().st_size == files[
        "sd15"
    ].stat().st_size - 4096  # the user's file, kept
    assert sha256_of(damaged) == sha256_of(files["sd15"])
    after = run("check", "--only", "models", "--ot-dir", str(ot))
    assert after.returncode == 0 and "2 checkpoint(s) verified" in after.stdout


def test_fix_without_a_checkout_repairs_a_models_dir(run, server, tmp_path, files):
    # Only --models-dir, no OneTrainer checkout: the fix still runs and logs to otdoctor's cache.
    dest = tmp_path / "my-models"
    dest.mkdir()
    damaged = dest / CIVITAI_FILE
    damaged.write_bytes(files["sd15"].read_bytes()[:-4096])
    proc = run("fix", "models.checkpoints", "--yes", "--models-dir", str(dest), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "internal error" not in proc.stderr
    assert (dest / (CIVITAI_FILE + ".bad")).exists()
    assert sha256_of(damaged) == sha256_of(files["sd15"])
