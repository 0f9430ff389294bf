"""Real things for the install/fix tests: a wheelhouse, an upstream repo, a slow HTTP server.

The HTTP server (127.0.0.1 only) serves a folder: the wheelhouse as a pip `--find-links` page and
a bare OneTrainer-shaped repository over git's dumb HTTP protocol. Every request is reported
through a queue, so a test can kill `otdoctor install` exactly while git or pip is talking to it.
"""

from __future__ import annotations

import hashlib
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support.factory import build_wheel, git, make_onetrainer

GLOBAL_REQS = ["tinyglobal==1.0", "tinyshared>=1.0"]
DEFAULT_REQS = ["-r requirements-global.txt", "tinycpu==2.0", "torch==2.12.0+cpu"]


def wheelhouse(dest: Path) -> Path:
    """Small real wheels, plus setuptools 81.0.0 (the launcher's pin) from PyPI, downloaded once."""
    dest.mkdir(parents=True, exist_ok=True)
    build_wheel(dest, "tinyglobal", "1.0", requires=["tinyshared"])
    build_wheel(dest, "tinyglobal", "2.0", requires=["tinyshared"])
    build_wheel(dest, "tinyshared", "1.0")
    build_wheel(dest, "tinycpu", "2.0")
    build_wheel(dest, "tinycuda", "13.0")
    build_wheel(dest, "tinylegacy", "12.6")
    # Stand-ins for torch builds: the real builds' version.py (what otdoctor reads), no code.
    for version, cuda in (("2.12.0+cpu", None), ("2.12.0+cu130", "13.0"), ("2.12.0+cu126", "12.6")):
        build_wheel(
            dest,
            "torch",
            version,
            modules={
                "torch/__init__.py": "raise ImportError('stand-in torch: only version.py is real')\n",
                "torch/version.py": (
                    f"__version__ = {version!r}\ncuda = {cuda!r}\nhip = None\ngit_version = 'stand-in'\n"
                ),
            },
        )
    cache = Path(os.environ.get("OTDOCTOR_TEST_WHEEL_CACHE", Path.home() / ".cache" / "otdoctor-test-wheels"))
    st = cache / "setuptools-81.0.0-py3-none-any.whl"
    if not st.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--disable-pip-version-check",
                "setuptools==81.0.0",
                "-d",
                str(cache),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
    shutil.copy2(st, dest / st.name)
    return dest


def upstream(root: Path, **kw) -> Path:
    kw.setdefault("global_requirements", GLOBAL_REQS)
    kw.setdefault(
        "platform_requirements",
        {
            "requirements-default.txt": DEFAULT_REQS,
            "requirements-cuda.txt": ["tinycuda==13.0", "torch==2.12.0+cu130"],
            "requirements-cuda-legacy.txt": ["tinylegacy==12.6", "torch==2.12.0+cu126"],
            "requirements-rocm.txt": ["tinycpu==2.0"],
        },
    )
    repo = make_onetrainer(root, **kw)
    lib = repo / "lib.include.sh"
    lib.write_text(lib.read_text() + "run_pip install --upgrade --upgrade-strategy eager pip setuptools==81.0.0\n")
    git(repo, "commit", "-q", "-am", "launcher pins setuptools")
    return repo


def pip_env(wheels: Path | str) -> dict[str, str]:
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels), "PIP_NO_CACHE_DIR": "1"}


def tree_digest(*roots: Path) -> str:
    """Names, modes and contents of every file under the roots (symlinks by target)."""
    h = hashlib.sha256()
    for root in roots:
        if not root.exists():
            h.update(f"{root}: absent\n".encode())
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            h.update(f"d {os.path.relpath(dirpath, root)}\n".encode())
            for name in sorted(filenames):
                p = Path(dirpath) / name
                rel = os.path.relpath(p, root)
                if p.is_symlink():
                    h.update(f"l {rel} {os.readlink(p)}\n".encode())
                    continue
                st = p.stat()
                h.update(f"f {rel} {st.st_mode} {st.st_size} {st.st_mtime_ns}\n".encode())
                h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        server: SlowServer = self.server  # type: ignore[assignment]
        server.requests.put(self.path)
        if server.delay_s:
            server.release.wait(server.delay_s)
        super().do_GET()


class SlowServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, folder: Path) -> None:
        super().__init__(("127.0.0.1", 0), partial(_Handler, directory=str(folder)))
        self.requests: queue.Queue[str] = queue.Queue()
        self.release = threading.Event()
        self.delay_s = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def wait_for(self, prefix: str, timeout_s: float = 60) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no request for {prefix}")
            path = self.requests.get(timeout=left)
            if path.startswith(prefix):
                return path


def serve(folder: Path) -> SlowServer:
    server = SlowServer(folder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def bare_for_http(repo: Path, dest: Path) -> Path:
    """A bare clone that git can fetch over dumb HTTP (`git update-server-info`)."""
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(dest)], check=True)
    subprocess.run(["git", "-C", str(dest), "update-server-info"], check=True)
    return dest


def simple_index(wheels: Path, dest: Path) -> Path:
    """A PEP 503 "simple" index over the wheelhouse, for pip's --index-url (served by `serve`)."""
    import re

    by_name: dict[str, list[Path]] = {}
    for whl in sorted(wheels.glob("*.whl")):
        name = re.sub(r"[-_.]+", "-", whl.name.split("-")[0]).lower()
        by_name.setdefault(name, []).append(whl)
    for name, files in by_name.items():
        d = dest / "simple" / name
        d.mkdir(parents=True, exist_ok=True)
        links = []
        for whl in files:
            shutil.copy2(whl, d / whl.name)
            links.append(f'<a href="{whl.name}">{whl.name}</a>')
        (d / "index.html").write_text("<html><body>" + "\n".join(links) + "</body></html>\n")
    return dest
