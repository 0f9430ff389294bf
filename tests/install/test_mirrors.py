"""Installing from mirrors: real git repositories, real bare mirrors (full and partial), real git
rewriting URLs it was never given, and `otdoctor install` with no way to reach GitHub."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from otdoctor.errors import UserError
from otdoctor.install import mirrors as m
from otdoctor.probe import Probe
from tests.support.factory import git
from tests.support.installkit import bare_for_http, pip_env, serve, upstream, wheelhouse

DIFFUSERS = "https://github.com/huggingface/diffusers.git"


def _tiny_package(root: Path, name: str = "tinygit") -> tuple[Path, str]:
    """A real git repository holding a pip-installable package; returns (repo, commit)."""
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    (root / name).mkdir()
    (root / name / "__init__.py").write_text("VERSION = 'from the mirror'\n")
    (root / "pyproject.toml").write_text(
        f'[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{name}"\nversion = "0.1"\n\n[tool.setuptools]\npackages = ["{name}"]\n'
    )
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "tiny package")
    return root, git(root, "rev-parse", "HEAD").strip()


def _bare(src: Path, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", "--bare", str(src), str(dest)], check=True)
    return dest


def _partial(src: Path, dest: Path) -> Path:
    """A blobless clone: it has the commits but not the files' contents."""
    subprocess.run(["git", "-C", str(src), "config", "uploadpack.allowFilter", "true"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", "--filter=blob:none", f"file://{src}", str(dest)], check=True)
    return dest


def _git_env(sources: m.Sources) -> dict[str, str]:
    return sources.env({k: v for k, v in os.environ.items() if not k.startswith("GIT_CONFIG")})


# The options -----------------------------------------------------------------------------------


def test_owner_name_stands_for_github_with_and_without_dot_git(tmp_path):
    got = m.parse_mirror("huggingface/diffusers=mirrors/diffusers.git", tmp_path)
    assert [x.source for x in got] == [DIFFUSERS, "https://github.com/huggingface/diffusers"]
    assert {x.target for x in got} == {str(tmp_path / "mirrors" / "diffusers.git")}


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("huggingface/diffusers", "is not NAME=URL"),
        ("=/srv/x", "is not NAME=URL"),
        ("diffusers=/srv/x", "OWNER/NAME"),
    ],
)
def test_a_malformed_mirror_is_a_one_line_error(tmp_path, spec, says):
    with pytest.raises(UserError, match=says):
        m.parse_mirror(spec, tmp_path)


def test_pip_options_become_the_variables_pip_reads():
    env = m.pip_env(["--index-url=http://pypi.internal/simple", "--find-links=/a", "--find-links /b", "--no-index"])
    assert env == {"PIP_INDEX_URL": "http://pypi.internal/simple", "PIP_FIND_LINKS": "/a /b", "PIP_NO_INDEX": "1"}
    with pytest.raises(UserError, match="long option"):
        m.pip_env(["-i", "http://x"])


def test_mirrors_file_and_command_line_combine(tmp_path):
    f = tmp_path / "mirrors.toml"
    f.write_text('[git]\n"Nerogar/mgds" = "mgds.git"\n\n[pip]\nargs = ["--find-links=/wheels"]\n')
    got = m.gather(["huggingface/diffusers=/m/d.git"], [f], ["--no-index"], tmp_path)
    assert str(tmp_path / "mgds.git") in {x.target for x in got.mirrors}  # relative to the file
    assert "/m/d.git" in {x.target for x in got.mirrors}
    env = got.env({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "core.x", "GIT_CONFIG_VALUE_0": "y"})
    assert env["GIT_CONFIG_COUNT"] == "5" and env["GIT_CONFIG_KEY_0"] == "core.x"  # the user's own kept
    assert env["PIP_FIND_LINKS"] == "/wheels" and env["PIP_NO_INDEX"] == "1"
    f.write_text("[git\n")
    with pytest.raises(UserError, match="not valid TOML"):
        m.gather([], [f], [], tmp_path)


# Real git -------------------------------------------------------------------------------------


def test_git_reads_the_mirror_for_a_github_url(tmp_path):
    repo, commit = _tiny_package(tmp_path / "src")
    mirror = _bare(repo, tmp_path / "diffusers.git")
    env = _git_env(m.Sources(tuple(m.parse_mirror(f"huggingface/diffusers={mirror}", tmp_path))))
    out = subprocess.run(
        ["git", "ls-remote", DIFFUSERS], env={**env, "GIT_TERMINAL_PROMPT": "0"}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert commit in out.stdout


def test_a_partial_mirror_is_refused_with_the_way_out(tmp_path):
    repo, _ = _tiny_package(tmp_path / "src")
    partial = _partial(_bare(repo, tmp_path / "full.git"), tmp_path / "partial.git")
    mirrors = m.parse_mirror(f"huggingface/diffusers={partial}", tmp_path)
    with pytest.raises(UserError) as err:
        m.check_mirrors(Probe(), mirrors)
    assert "partial clone" in err.value.message
    assert f"git clone --mirror {DIFFUSERS}" in (err.value.hint or "")
    assert m.mirror_problem(Probe(), tmp_path / "full.git") is None
    assert m.mirror_problem(Probe(), tmp_path / "nowhere") == "does not exist"


def test_a_mirror_without_the_pinned_commit_is_named(tmp_path):
    repo, commit = _tiny_package(tmp_path / "src")
    mirror = _bare(repo, tmp_path / "mirror.git")
    reqs = tmp_path / "requirements-global.txt"
    reqs.write_text(f"-e git+{DIFFUSERS}@{commit[:7]}#egg=diffusers\n")
    probe = Probe(env=_git_env(m.Sources(tuple(m.parse_mirror(f"huggingface/diffusers={mirror}", tmp_path)))))
    m.check_requirement_commits(probe, [reqs])  # the mirror has it: nothing to say
    reqs.write_text(f"-e git+{DIFFUSERS}@{'1' * 40}#egg=diffusers\n")
    with pytest.raises(UserError, match="has no commit 1111111"):
        m.check_requirement_commits(probe, [reqs])


# otdoctor install, air-gapped ------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    return wheelhouse(tmp_path_factory.mktemp("wheels"))


def _offline_upstream(tmp_path: Path, commit: str) -> Path:
    return upstream(
        tmp_path / "upstream",
        global_requirements=["tinyglobal==1.0", f"-e git+https://github.com/acme/tinygit.git@{commit}#egg=tinygit"],
    )


@pytest.mark.slow
def test_install_from_mirrors_only(run_cli, tmp_path, wheels):
    """No --repo-url and no GitHub: OneTrainer comes from a mirror served over HTTP with credentials in
    its URL, its git requirement from a local bare mirror; the password is never printed or logged."""
    pkg, commit = _tiny_package(tmp_path / "tinygit")
    ot = _offline_upstream(tmp_path, commit)
    served = tmp_path / "served"
    bare_for_http(ot, served / "OneTrainer.git")
    server = serve(served)
    secret = "s3cret-mirror-pass"
    ot_url = server.url.replace("http://", f"http://mirror:{secret}@") + "/OneTrainer.git"
    target = tmp_path / "ot"
    res = run_cli(
        "install",
        "--dir",
        str(target),
        "--yes",
        "--git-mirror",
        f"Nerogar/OneTrainer={ot_url}",
        "--git-mirror",
        f"acme/tinygit={_bare(pkg, tmp_path / 'tinygit.git')}",
        "--pip-arg=--no-index",
        f"--pip-arg=--find-links={wheels}",
        env={"PIP_NO_CACHE_DIR": "1", "GIT_CONFIG_GLOBAL": "/dev/null"},
        timeout=300,
    )
    server.shutdown()
    assert "OneTrainer is installed" in res.stdout, res.stdout + res.stderr
    venv_python = target / "venv" / "bin" / "python"
    got = subprocess.run(
        [str(venv_python), "-c", "import tinygit; print(tinygit.VERSION)"], capture_output=True, text=True
    )
    assert got.stdout.strip() == "from the mirror", got.stderr
    # The checkout is still a checkout of upstream: `git pull` asks GitHub once the network is back.
    assert git(target, "config", "--get", "remote.origin.url").strip() == "https://github.com/Nerogar/OneTrainer.git"
    for text in (res.stdout, res.stderr, (target / "otdoctor-install.log").read_text()):
        assert secret not in text


@pytest.mark.slow
def test_a_partial_mirror_stops_install_before_anything_runs(run_cli, tmp_path, wheels):
    pkg, commit = _tiny_package(tmp_path / "tinygit")
    ot = _offline_upstream(tmp_path, commit)
    partial = _partial(_bare(pkg, tmp_path / "full.git"), tmp_path / "partial.git")
    target = tmp_path / "ot"
    res = run_cli(
        "install",
        "--dir",
        str(target),
        "--repo-url",
        str(ot),
        "--yes",
        "--git-mirror",
        f"acme/tinygit={partial}",
        env=pip_env(wheels),
        timeout=60,
    )
    assert res.returncode != 0
    assert "partial clone" in res.stderr and "Traceback" not in res.stderr
    assert not target.exists()


def test_plan_carries_the_mirrors_so_a_pasted_command_works(run_cli, tmp_path, wheels):
    pkg, commit = _tiny_package(tmp_path / "tinygit")
    ot = _offline_upstream(tmp_path, commit)
    mirror = _bare(pkg, tmp_path / "tinygit.git")
    res = run_cli(
        "install",
        "--dir",
        str(tmp_path / "ot"),
        "--repo-url",
        str(ot),
        "--dry-run",
        "--git-mirror",
        f"acme/tinygit={mirror}",
        "--pip-arg=--no-index",
    )
    assert res.returncode == 0, res.stderr
    line = next(x for x in res.stdout.splitlines() if "-r requirements-global.txt" in x)
    assert f"GIT_CONFIG_KEY_0=url.{mirror}.insteadOf" in line and "PIP_NO_INDEX=1" in line


@pytest.mark.parametrize("command", ["install", "fix"])
def test_bad_mirror_options_are_one_line_errors(run_cli, tmp_path, command):
    for args, says in (
        (["--git-mirror", "diffusers"], "is not NAME=URL"),
        (["--pip-arg=-i"], "long option"),
        (["--git-mirror", f"huggingface/diffusers={tmp_path / 'none.git'}"], "does not exist"),
    ):
        where = ["--dir", str(tmp_path / "ot")] if command == "install" else []
        res = run_cli(command, *where, "--dry-run", *args)
        assert res.returncode != 0 and says in res.stderr, res.stderr
        assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) <= 3
