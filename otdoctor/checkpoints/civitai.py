"""Civitai's side of a download: the model version's expected file, and one ranged request into `.part`.

`civitai_expected` asks the API which file a model version is (its name, size and sha256), or takes
the catalog's word with `--offline`. `fetch_range` makes one request from the bytes already in the
`.part` file to the end, appending and hashing as it goes; a dropped connection raises `Dropped`
with what arrived, and `Transfer` retries from there, saying at the end what is left on disk. The
token goes only into the `Authorization` header (requests drops it when a redirect leaves Civitai's
host).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otdoctor.checkpoints.catalog import CatalogEntry, civitai_url
from otdoctor.checkpoints.disk import disk_error
from otdoctor.checkpoints.safetensors import sniff
from otdoctor.checkpoints.tokens import CIVITAI_TOKEN_HELP as TOKEN_HELP
from otdoctor.errors import UserError
from otdoctor.redact import redact

CHUNK_BYTES = 256 * 1024  # small enough that a dropped connection loses little
CONNECT_TIMEOUT_S = 15.0
READ_TIMEOUT_S = 60.0
_OFFLINE_HINT = "--offline downloads with the sizes and hashes from otdoctor's catalog"

StartFn = Callable[[int | None, int], None]  # (total bytes or None, bytes already there)
BytesFn = Callable[[int], None]
NoteFn = Callable[[str], None]


@dataclass(frozen=True)
class Expected:
    filename: str
    sha256s: tuple[str, ...]  # any of these is accepted (offline: every known file of the entry)
    size_bytes: int | None  # exact, when known
    approx_bytes: int | None  # for the free-disk check
    source: str  # "Civitai API" or "catalog"


class Dropped(Exception):
    """The connection ended early; `have` bytes (hashed into `digest`) are in the part file."""

    def __init__(self, reason: str, have: int, total: int | None, digest: Any) -> None:
        super().__init__(reason)
        self.reason, self.have, self.total, self.digest = reason, have, total, digest


def _safe_name(name: str, fallback: str) -> str:
    base = os.path.basename(name.replace("\\", "/")).strip()
    return base if base and base not in (".", "..") else fallback


# The model version's file ------------------------------------------------------------------------
def _offline_expected(entry: CatalogEntry) -> Expected:
    exact = {f.size_bytes for f in entry.files if f.size_bytes}
    return Expected(
        entry.filename,
        tuple(f.sha256 for f in entry.files if f.sha256),
        exact.pop() if len(exact) == 1 and len(entry.files) == 1 else None,
        entry.max_size_bytes,
        "catalog",
    )


def _version_files(entry: CatalogEntry, env: Mapping[str, str], session: Any) -> list[dict[str, Any]]:
    """The `files` of the API's answer for the entry's model version."""
    import requests

    version = entry.civitai_version_id
    url = f"{civitai_url(env)}/api/v1/model-versions/{version}"
    try:
        r = session.get(url, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
    except requests.RequestException as exc:
        raise UserError(
            redact(f"cannot reach Civitai's API ({type(exc).__name__}: {exc})"), hint=_OFFLINE_HINT
        ) from None
    if r.status_code == 404:
        raise UserError(f"Civitai has no model version {version} (404 from {url})")
    if r.status_code != 200:
        raise UserError(
            redact(f"Civitai's API answered {r.status_code} for model version {version}"), hint=_OFFLINE_HINT
        )
    try:
        info = r.json()
        return [f for f in info.get("files", []) if isinstance(f, dict)]
    except (ValueError, AttributeError):
        raise UserError(f"Civitai's API answer for model version {version} is not the expected JSON") from None


def _expected_from(primary: Mapping[str, Any], entry: CatalogEntry) -> Expected:
    sha = str((primary.get("hashes") or {}).get("SHA256") or "").lower() or None
    known = entry.known_by_sha(sha) if sha else None
    approx = int(float(primary.get("sizeKB") or 0) * 1024) or entry.max_size_bytes
    return Expected(
        _safe_name(str(primary.get("name") or ""), entry.filename),
        (sha,) if sha else tuple(f.sha256 for f in entry.files if f.sha256),
        known.size_bytes if known else None,
        approx,
        "Civitai API",
    )


def civitai_expected(entry: CatalogEntry, env: Mapping[str, str], session: Any, offline: bool) -> Expected:
    if offline:
        return _offline_expected(entry)
    files = _version_files(entry, env, session)
    primary = next((f for f in files if f.get("primary")), files[0] if files else None)
    if primary is None:
        raise UserError(f"Civitai lists no files for model version {entry.civitai_version_id}")
    return _expected_from(primary, entry)


# One request -------------------------------------------------------------------------------------
def explain_response(r: Any, token: str | None, first: bytes = b"") -> UserError | None:
    """The error an answer that is not the model means, or None for a good answer."""
    ctype = (r.headers.get("Content-Type") or "").lower()
    if r.status_code in (401, 403):
        what = "no API token was given" if not token else "the API token was refused (invalid or expired)"
        return UserError(f"Civitai answered {r.status_code}: {what}", hint=TOKEN_HELP)
    if r.status_code == 404:
        return UserError("Civitai answered 404: the model file is not there (wrong model version id?)")
    if r.status_code >= 400:
        return UserError(redact(f"the download failed: HTTP {r.status_code} from {r.url}"))
    if "text/html" in ctype or (first and sniff(first) and "HTML" in (sniff(first) or "")):
        what = "without an API token" if not token else "with the API token given (is it valid?)"
        return UserError(
            f"Civitai answered with an HTML page (a login page) instead of the model, {what}; nothing was saved",
            hint=TOKEN_HELP,
        )
    if "application/json" in ctype:
        return UserError(
            "Civitai answered with a JSON message instead of the model; nothing was saved", hint=TOKEN_HELP
        )
    return None


def _request(session: Any, url: str, token: str | None, have: int, digest: Any) -> Any:
    import requests

    headers = {"Accept-Encoding": "identity"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        return session.get(
            url, headers=headers, stream=True, allow_redirects=True, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S)
        )
    except requests.RequestException as exc:
        raise Dropped(redact(f"{type(exc).__name__}"), have, None, digest) from None


def _range_start(content_range: str) -> int | None:
    # "bytes 100-199/200"
    try:
        return int(content_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _resume_point(r: Any, part: Path, have: int, digest: Any) -> tuple[int, Any, str]:
    """(bytes kept, their digest, file mode): append to the part, or start over when Range was ignored."""
    if have and r.status_code == 206:
        start = _range_start(r.headers.get("Content-Range", ""))
        if start != have:
            raise UserError(redact(f"the server resumed at byte {start}, not {have}; delete {part} and run again"))
        return have, digest, "ab"
    if have:  # the server ignored Range: start over
        return 0, hashlib.sha256(), "wb"
    return have, digest, "ab"


def _first_chunk(chunks: Iterator[bytes], have: int, total: int | None, digest: Any) -> bytes:
    """The first chunk; at the start of the file it must not be a page or message instead of the model."""
    import requests

    try:
        first = next(chunks, b"")
    except (requests.RequestException, OSError) as exc:
        raise Dropped(type(exc).__name__, have, total, digest) from None
    if not have:
        what = sniff(first[:512]) if first else None
        if what and "pickle" not in what and "zip" not in what:
            raise UserError(f"Civitai sent {what} instead of the model; nothing was saved", hint=TOKEN_HELP)
    return first


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


@dataclass
class _Progress:
    part: Path
    have: int
    total: int | None
    digest: Any
    on_bytes: BytesFn | None

    def write_all(self, fh: Any, chunks: Iterator[bytes]) -> None:
        import requests

        try:
            for chunk in chunks:
                try:
                    fh.write(chunk)
                except OSError as exc:
                    raise disk_error(exc, self.part, self.have) from None
                self.digest.update(chunk)
                self.have += len(chunk)
                if self.on_bytes:
                    self.on_bytes(len(chunk))
            fh.flush()
        except (requests.RequestException, ConnectionError, TimeoutError) as exc:
            fh.flush()
            raise Dropped(type(exc).__name__, self.have, self.total, self.digest) from None


def _append(progress: _Progress, mode: str, chunks: Iterator[bytes]) -> None:
    try:
        with open(progress.part, mode) as fh:
            progress.write_all(fh, chunks)
    except OSError as exc:
        if isinstance(exc, (ConnectionError, TimeoutError)):
            raise
        raise disk_error(exc, progress.part, progress.have) from None


def fetch_range(
    session: Any,
    url: str,
    token: str | None,
    part: Path,
    digest: Any,
    have: int,
    expected: Expected,
    on_start: StartFn | None,
    on_bytes: BytesFn | None,
) -> tuple[int | None, Any, int]:
    """One request: from `have` to the end. Returns (total, digest, bytes now in the part)."""
    r = _request(session, url, token, have, digest)
    with r:
        if r.status_code == 416 and have:
            return have, digest, have  # the part already holds the whole file
        err = explain_response(r, token)
        if err is not None:
            raise err
        length = int(r.headers["Content-Length"]) if r.headers.get("Content-Length", "").isdigit() else None
        have, digest, mode = _resume_point(r, part, have, digest)
        total = have + length if length is not None else expected.size_bytes
        if on_start:
            on_start(total, have)
        chunks = r.iter_content(CHUNK_BYTES)
        first = _first_chunk(chunks, have, total, digest)
        progress = _Progress(part, have, total, digest, on_bytes)
        _append(progress, mode, _chain(first, chunks))
        have = progress.have
        if total is not None and have < total:
            raise Dropped("the server closed the connection early", have, total, digest)
        return total, digest, have


def _hash_existing(part: Path) -> tuple[Any, int]:
    digest = hashlib.sha256()
    done = 0
    if part.exists():
        with open(part, "rb", buffering=0) as fh:
            while True:
                block = fh.read(8 * 1024 * 1024)
                if not block:
                    break
                digest.update(block)
                done += len(block)
    return digest, done


@dataclass
class Transfer:
    """One file from Civitai into its `.part`, resumed from what is there and after each drop."""

    session: Any
    url: str
    token: str | None
    part: Path
    expected: Expected
    on_start: StartFn | None
    on_bytes: BytesFn | None

    def run(self, retries: int, note: NoteFn | None) -> tuple[int | None, Any, int]:
        """(total bytes or None, sha256 digest of the part, bytes there before this run)."""
        digest, have = _hash_existing(self.part)
        resumed_from = have
        attempt = 0
        while True:
            try:
                total, digest, have = fetch_range(
                    self.session,
                    self.url,
                    self.token,
                    self.part,
                    digest,
                    have,
                    self.expected,
                    self.on_start,
                    self.on_bytes,
                )
                return total, digest, resumed_from
            except Dropped as exc:
                attempt += 1
                if attempt > retries:
                    raise self._gave_up(exc) from None
                if note:
                    note(f"connection dropped after {exc.have} bytes; resuming ({attempt}/{retries})")
                digest, have = exc.digest, exc.have

    def _gave_up(self, exc: Dropped) -> UserError:
        """The error after the last retry, saying what is left on disk: a `.part` only if bytes arrived."""
        kept = self.part.stat().st_size if self.part.exists() else 0
        what = f"the connection to Civitai dropped after {exc.have} of {exc.total or 'unknown'} bytes ({exc.reason})"
        if not kept:
            self.part.unlink(missing_ok=True)  # an empty .part resumes nothing
            return UserError(f"{what}; no data arrived, nothing was saved", hint="run the same command again")
        return UserError(
            f"{what}; the partial file {self.part.name} ({kept} bytes) is kept",
            hint="run the same command again to resume",
        )
