"""Shared pieces of the checkpoint tests: planted tokens, a user catalog for small files, a CLI runner
that searches every output (and every file the run left behind) for the planted tokens, and the
pieces the property tests share."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from tests.support.calm import TIME_LIMIT_S
from tests.support.factory import otdoctor_exe

CIVITAI_TOKEN = "civitai-PLANTED-7f3a9c2e5d1b"
HF_TOKEN = "hf_PLANTEDsecretTOKENabcdefghij123456"
PLANTED = (CIVITAI_TOKEN, HF_TOKEN)
PROXY_VARS = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy")


def assert_no_tokens(*texts: str | bytes | None, where: str = "output") -> None:
    for text in texts:
        if text is None:
            continue
        blob = text.encode() if isinstance(text, str) else text
        for token in PLANTED:
            assert token.encode() not in blob, f"a planted token leaked into the {where}"


def assert_no_tokens_in_tree(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink() and p.stat().st_size < 50_000_000:
            assert_no_tokens(p.read_bytes(), where=f"file {p}")


def catalog_toml(entries: list[dict[str, Any]]) -> str:
    """A user models.toml; each dict is one [[model]] with an optional 'files' list of dicts."""
    out = []
    for e in entries:
        out.append("[[model]]")
        for k, v in e.items():
            if k == "files":
                continue
            out.append(f"{k} = {_toml(v)}")
        for f in e.get("files", []):
            out.append("[[model.files]]")
            out += [f"{k} = {_toml(v)}" for k, v in f.items()]
        out.append("")
    return "\n".join(out)


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def make_runner(
    base_env: dict[str, str], tmp_path: Path, extra_env: dict[str, str]
) -> Callable[..., subprocess.CompletedProcess]:
    def run(
        *args: str,
        env: dict[str, str] | None = None,
        drop_env: tuple[str, ...] = (),
        timeout: float = 120,
        preexec_fn: Callable[[], None] | None = None,
    ) -> subprocess.CompletedProcess:
        full = {**base_env, **extra_env, **(env or {})}
        for k in (*drop_env, *PROXY_VARS):  # the servers are on loopback: never through a proxy
            full.pop(k, None)
        full["NO_PROXY"] = full["no_proxy"] = "127.0.0.1,localhost"
        proc = subprocess.run(
            [otdoctor_exe(), *args],
            env=full,
            cwd=str(tmp_path),
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=preexec_fn,
        )
        assert_no_tokens(proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    return run


# Property tests -----------------------------------------------------------------------------------
# Any JSON value, small: what a damaged or hand-edited file may hold where an object was expected.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=10,
)


def timed_verify(verifier: Any, path: Path) -> Any:
    """The verdict on one path, asserting it came within the calm time bound."""
    started = time.monotonic()
    verdict = verifier.verify([(path, None, None, "")])[0]
    assert time.monotonic() - started < TIME_LIMIT_S
    return verdict
