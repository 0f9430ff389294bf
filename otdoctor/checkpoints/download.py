"""Downloading catalog models: Hugging Face through huggingface_hub, Civitai through requests.

A Civitai download streams into `NAME.part` next to the final file. An interrupted run leaves the
`.part`; the next run asks for the rest with a `Range` request. The file gets its final name only
after its size, safetensors structure, architecture and sha256 match, so a half or wrong download
never sits under a model's name. The token goes only into the `Authorization` header of the request
to Civitai itself (requests drops it when a redirect leaves that host), and every message that
leaves this module is passed through `redact`.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otdoctor.checkpoints.catalog import CatalogEntry, KnownFile, civitai_url
from otdoctor.checkpoints.hashing import VerifyCache, sha256_file
from otdoctor.checkpoints.safetensors import HeaderError, detect_architecture, read_header, sniff
from otdoctor.errors import UserError
from otdoctor.redact import redact, register_secret

CHUNK_BYTES = 256 * 1024  # small enough that a dropped connection loses little
CONNECT_TIMEOUT_S = 15.0
READ_TIMEOUT_S = 60.0
FREE_MARGIN_BYTES = 64 * 1024 * 1024  # leave the filesystem some room after the download
TOKEN_HELP = (
    "create an API key at https://civitai.com/user/account (API Keys), then run again with "
    "CIVITAI_TOKEN set or --token-file FILE"
)

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


@dataclass(frozen=True)
class Downloaded:
    path: Path
    sha256: str
    size_bytes: int
    already_there: bool = False
    resumed_from_bytes: int = 0


def read_token(env: Mapping[str, str], token_file: Path | None) -> str | None:
    if token_file is not None:
        try:
            token = token_file.expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UserError(f"cannot read the token file {token_file}: {exc.strerror or exc}", exit_code=2) from None
        except UnicodeDecodeError:  # a binary file given by mistake; say nothing of its bytes
            raise UserError(
                f"the token file {token_file} is not text; it should hold only your Civitai API key", exit_code=2
            ) from None
        if not token:
            raise UserError(f"the token file {token_file} is empty", exit_code=2)
    else:
        token = (env.get("CIVITAI_TOKEN") or env.get("CIVITAI_API_KEY") or "").strip() or None
    register_secret(token)
    return token


def _safe_name(name: str, fallback: str) -> str:
    base = os.path.basename(name.replace("\\", "/")).strip()
    return base if base and base not in (".", "..") else fallback


def check_free_space(dest: Path, need_bytes: int | None, what: str) -> None:
    if not need_bytes or need_bytes <= 0:
        return
    try:
        free = shutil.disk_usage(dest).free
    except OSError:
        return
    if free < need_bytes + FREE_MARGIN_BYTES:
        raise UserError(
            f"not enough free disk space in {dest} for {what}: it needs {need_bytes} bytes "
            f"(plus {FREE_MARGIN_BYTES} bytes of headroom), {free} bytes are free",
            hint="free some space or choose another folder with --dest",
        )


def _disk_error(exc: OSError, part: Path, written: int) -> UserError:
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        reason = {
            errno.ENOSPC: "the disk is full",
            errno.EFBIG: "the file size limit was reached",
            errno.EDQUOT: "the disk quota is exhausted",
        }[exc.errno]
        return UserError(
            f"cannot write {part}: {reason} after {written} bytes",
            hint=f"free some space (or pick another --dest); the partial file {part.name} resumes on the next run",
        )
    return UserError(f"cannot write {part}: {exc.strerror or exc}")


# Civitai -----------------------------------------------------------------------------------------
def civitai_expected(entry: CatalogEntry, env: Mapping[str, str], session: Any, offline: bool) -> Expected:
    catalog_shas = tuple(f.sha256 for f in entry.files if f.sha256)
    if offline:
        exact = {f.size_bytes for f in entry.files if f.size_bytes}
        return Expected(
            entry.filename,
            catalog_shas,
            exact.pop() if len(exact) == 1 and len(entry.files) == 1 else None,
            entry.max_size_bytes,
            "catalog",
        )
    import requests

    url = f"{civitai_url(env)}/api/v1/model-versions/{entry.civitai_version_id}"
    try:
        r = session.get(url, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
    except requests.RequestException as exc:
        raise UserError(
            redact(f"cannot reach Civitai's API ({type(exc).__name__}: {exc})"),
            hint="--offline downloads with the sizes and hashes from otdoctor's catalog",
        ) from None
    if r.status_code == 404:
        raise UserError(f"Civitai has no model version {entry.civitai_version_id} (404 from {url})")
    if r.status_code != 200:
        raise UserError(
            redact(f"Civitai's API answered {r.status_code} for model version {entry.civitai_version_id}"),
            hint="--offline downloads with the sizes and hashes from otdoctor's catalog",
        )
    try:
        info = r.json()
        files = [f for f in info.get("files", []) if isinstance(f, dict)]
    except (ValueError, AttributeError):
        raise UserError(
            f"Civitai's API answer for model version {entry.civitai_version_id} is not the expected JSON"
        ) from None
    primary = next((f for f in files if f.get("primary")), files[0] if files else None)
    if primary is None:
        raise UserError(f"Civitai lists no files for model version {entry.civitai_version_id}")
    sha = str((primary.get("hashes") or {}).get("SHA256") or "").lower() or None
    known = entry.known_by_sha(sha) if sha else None
    approx = int(float(primary.get("sizeKB") or 0) * 1024) or entry.max_size_bytes
    return Expected(
        _safe_name(str(primary.get("name") or ""), entry.filename),
        (sha,) if sha else catalog_shas,
        known.size_bytes if known else None,
        approx,
        "Civitai API",
    )


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


def _explain_response(r: Any, token: str | None, first: bytes = b"") -> UserError | None:
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


def download_civitai(
    entry: CatalogEntry,
    dest: Path,
    env: Mapping[str, str],
    token: str | None,
    offline: bool = False,
    retries: int = 2,
    on_start: StartFn | None = None,
    on_bytes: BytesFn | None = None,
    note: NoteFn | None = None,
    cache: VerifyCache | None = None,
) -> Downloaded:
    import requests

    register_secret(token)
    session = requests.Session()
    session.headers["User-Agent"] = "otdoctor"
    try:
        expected = civitai_expected(entry, env, session, offline)
        dest.mkdir(parents=True, exist_ok=True)
        final = dest / expected.filename
        part = dest / (expected.filename + ".part")
        if final.exists():
            st = final.stat()
            facts = cache.get(st) if cache is not None else None
            sha = (facts or {}).get("sha256") or sha256_file(final)
            if sha in expected.sha256s:
                return Downloaded(final, sha, final.stat().st_size, already_there=True)
            raise UserError(
                f"{final} already exists and its sha256 does not match {entry.title}",
                hint=f"move it away (mv '{final}' '{final}.bad') and run again",
            )
        have = part.stat().st_size if part.exists() else 0
        need = (expected.size_bytes or expected.approx_bytes or 0) - have
        check_free_space(dest, need, f"{entry.title} ({expected.filename})")
        url = f"{civitai_url(env)}/api/download/models/{entry.civitai_version_id}"
        digest, have = _hash_existing(part)
        resumed_from = have
        total: int | None = None
        attempt = 0
        while True:
            try:
                total, digest, have = _fetch(session, url, token, part, digest, have, expected, on_start, on_bytes)
                break
            except _Dropped as exc:
                attempt += 1
                if attempt > retries:
                    raise UserError(
                        f"the connection to Civitai dropped after {exc.have} of {exc.total or 'unknown'} bytes "
                        f"({exc.reason}); the partial file {part.name} is kept",
                        hint="run the same command again to resume",
                    ) from None
                if note:
                    note(f"connection dropped after {exc.have} bytes; resuming ({attempt}/{retries})")
                digest, have = exc.digest, exc.have
        size = part.stat().st_size
        sha = digest.hexdigest()
        problem = None
        if total is not None and size != total:
            problem = f"the download has {size} bytes, the server announced {total}"
        elif expected.size_bytes is not None and size != expected.size_bytes:
            problem = f"the download has {size} bytes, {expected.source} says {expected.size_bytes}"
        elif expected.sha256s and sha not in expected.sha256s:
            problem = f"its sha256 {sha} does not match {expected.source}'s {', '.join(expected.sha256s)}"
        else:
            problem = _structure_problem(part, entry)
        if problem:
            part.unlink(missing_ok=True)  # resuming a wrong file would only fail again
            raise UserError(f"the downloaded file was rejected: {problem}; nothing was saved under {final.name}")
        st = part.stat()
        os.replace(part, final)  # same inode and mtime: the cache entry below stays valid
        if cache is not None:
            _remember(cache, st, final, sha)
        return Downloaded(final, sha, size, resumed_from_bytes=resumed_from)
    finally:
        session.close()


def _structure_problem(path: Path, entry: CatalogEntry) -> str | None:
    try:
        header = read_header(path)
    except HeaderError as exc:
        return str(exc)
    if not header.complete:
        return f"the safetensors data is incomplete ({header.missing_bytes} bytes missing)"
    arch = detect_architecture(header.tensors)
    if arch != entry.architecture:
        return f"its tensors are {arch}, but {entry.title} is {entry.architecture}"
    return None


def _remember(cache: VerifyCache, st: os.stat_result, path: Path, sha: str) -> None:
    try:
        header = read_header(path)
        cache.put(
            st,
            {
                "kind": "safetensors",
                "missing_bytes": header.missing_bytes,
                "tensors": len(header.tensors),
                "architecture": detect_architecture(header.tensors),
                "sha256": sha,
            },
        )
        cache.save()
    except (HeaderError, OSError):
        pass


class _Dropped(Exception):
    def __init__(self, reason: str, have: int, total: int | None, digest: Any) -> None:
        super().__init__(reason)
        self.reason, self.have, self.total, self.digest = reason, have, total, digest


def _fetch(
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
    import requests

    headers = {"Accept-Encoding": "identity"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        r = session.get(
            url, headers=headers, stream=True, allow_redirects=True, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S)
        )
    except requests.RequestException as exc:
        raise _Dropped(redact(f"{type(exc).__name__}"), have, None, digest) from None
    with r:
        if r.status_code == 416 and have:
            return have, digest, have  # the part already holds the whole file
        err = _explain_response(r, token)
        if err is not None:
            raise err
        length = int(r.headers["Content-Length"]) if r.headers.get("Content-Length", "").isdigit() else None
        mode = "ab"
        if have and r.status_code == 206:
            start = _range_start(r.headers.get("Content-Range", ""))
            if start != have:
                raise UserError(redact(f"the server resumed at byte {start}, not {have}; delete {part} and run again"))
        elif have:  # the server ignored Range: start over
            have, digest, mode = 0, hashlib.sha256(), "wb"
        total = have + length if length is not None else expected.size_bytes
        if on_start:
            on_start(total, have)
        chunks = r.iter_content(CHUNK_BYTES)
        try:
            first = next(chunks, b"")
        except (requests.RequestException, OSError) as exc:
            raise _Dropped(type(exc).__name__, have, total, digest) from None
        if not have:
            what = sniff(first[:512]) if first else None
            if what and "pickle" not in what and "zip" not in what:
                raise UserError(f"Civitai sent {what} instead of the model; nothing was saved", hint=TOKEN_HELP)
        try:
            with open(part, mode) as fh:
                try:
                    for chunk in _chain(first, chunks):
                        try:
                            fh.write(chunk)
                        except OSError as exc:
                            raise _disk_error(exc, part, have) from None
                        digest.update(chunk)
                        have += len(chunk)
                        if on_bytes:
                            on_bytes(len(chunk))
                    fh.flush()
                except (requests.RequestException, ConnectionError, TimeoutError) as exc:
                    fh.flush()
                    raise _Dropped(type(exc).__name__, have, total, digest) from None
        except OSError as exc:
            if isinstance(exc, (ConnectionError, TimeoutError)):
                raise
            raise _disk_error(exc, part, have) from None
        if total is not None and have < total:
            raise _Dropped("the server closed the connection early", have, total, digest)
        return total, digest, have


def _chain(first: bytes, rest: Any) -> Any:
    if first:
        yield first
    yield from rest


def _range_start(content_range: str) -> int | None:
    # "bytes 100-199/200"
    try:
        return int(content_range.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


# Hugging Face ------------------------------------------------------------------------------------
def hf_expected_file(entry: CatalogEntry, offline: bool) -> KnownFile | None:
    """The file's size and sha256: from the catalog, else from the Hub's paths-info API (its LFS sha256)."""
    known = next((f for f in entry.files if f.name == entry.filename and f.sha256), None)
    if known is not None or offline:
        return known
    from huggingface_hub import HfApi

    try:
        infos = HfApi().get_paths_info(entry.repo or "", [entry.filename], revision=entry.revision)
    except Exception as exc:  # the hash is a bonus here: the download itself reports real failures
        raise UserError(
            redact(
                f"cannot ask Hugging Face for the sha256 of {entry.repo}/{entry.filename}: "
                f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            )
        ) from None
    for info in infos:
        lfs = getattr(info, "lfs", None)
        if getattr(info, "path", None) == entry.filename and lfs is not None:
            return KnownFile(entry.filename, str(lfs.sha256).lower(), int(lfs.size), label="Hub's paths-info")
    return None


def download_hf(
    entry: CatalogEntry, dest: Path | None, env: Mapping[str, str], home: Path, offline: bool = False
) -> Path:
    """hf_hub_download with its own progress bar, into `dest` or the Hugging Face cache."""
    from otdoctor.checkpoints.locate import hf_hub_cache

    target = dest if dest is not None else hf_hub_cache(env, home)
    target.mkdir(parents=True, exist_ok=True)
    if dest is not None and (dest / entry.filename).exists():
        return dest / entry.filename  # verified by the caller
    if not offline:
        check_free_space(target, entry.max_size_bytes, f"{entry.title} ({entry.filename})")
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(
            repo_id=entry.repo or "",
            filename=entry.filename,
            revision=entry.revision,
            local_dir=str(dest) if dest is not None else None,
            local_files_only=offline,
        )
    except KeyboardInterrupt:
        raise
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            raise _disk_error(exc, target / entry.filename, 0) from None
        raise UserError(redact(f"the Hugging Face download of {entry.repo}/{entry.filename} failed: {exc}")) from None
    except Exception as exc:  # huggingface_hub raises its own HTTP and repo errors
        name = type(exc).__name__
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else name
        hint = None
        if "Gated" in name or "401" in first or "403" in first:
            hint = "accept the model's licence on huggingface.co and set HF_TOKEN (or `hf auth login`)"
        elif offline or "LocalEntryNotFound" in name:
            hint = "run without --offline to download it"
        raise UserError(
            redact(f"the Hugging Face download of {entry.repo}/{entry.filename} failed: {name}: {first}"), hint=hint
        ) from None
    return Path(path)
