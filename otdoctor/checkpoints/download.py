"""Downloading catalog models: Hugging Face through huggingface_hub, Civitai through requests.

A Civitai download streams into `NAME.part` next to the final file. An interrupted run leaves the
`.part`; the next run asks for the rest with a `Range` request. The file gets its final name only
after its size, safetensors structure, architecture and sha256 match, so a half or wrong download
never sits under a model's name. The `.part` file is the download's own temporary file (it must
survive an interrupted run to be resumed), so it is renamed in place rather than written through
`probe.files.atomic_path`. The token goes only into the `Authorization` header of the request to
Civitai itself (see `civitai`), and every message that leaves this module is passed through `redact`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from otdoctor.checkpoints.catalog import CatalogEntry, KnownFile, civitai_url, find_entry, load_catalog
from otdoctor.checkpoints.civitai import BytesFn, Expected, NoteFn, StartFn, Transfer, civitai_expected
from otdoctor.checkpoints.disk import check_free_space, disk_error, disk_full
from otdoctor.checkpoints.hashing import VerifyCache, sha256_file
from otdoctor.checkpoints.safetensors import HeaderError, detect_architecture, read_header
from otdoctor.checkpoints.tokens import hf_access_help
from otdoctor.checkpoints.verdict import file_facts
from otdoctor.checkpoints.verify import Verdict, Verifier
from otdoctor.errors import UserError
from otdoctor.probe.locks import Busy, exclusive
from otdoctor.redact import redact, register_secret

if TYPE_CHECKING:
    from otdoctor.probe import Probe

HashStartFn = Callable[[int], None]


@dataclass(frozen=True)
class Downloaded:
    path: Path
    sha256: str
    size_bytes: int
    already_there: bool = False
    resumed_from_bytes: int = 0


def read_token(env: Mapping[str, str], token_file: Path | None) -> str | None:
    token: str | None
    if token_file is not None:
        try:
            if not stat.S_ISREG(token_file.expanduser().stat().st_mode):  # a FIFO would block the read
                raise UserError(f"the token file {token_file} is not a regular file", exit_code=2)
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


# Civitai -----------------------------------------------------------------------------------------
def _already_there(final: Path, expected: Expected, entry: CatalogEntry, cache: VerifyCache | None) -> Downloaded:
    st = final.stat()
    facts = cache.get(st) if cache is not None else None
    sha = (facts or {}).get("sha256") or sha256_file(final)
    if sha in expected.sha256s:
        return Downloaded(final, sha, final.stat().st_size, already_there=True)
    raise UserError(
        f"{final} already exists and its sha256 does not match {entry.title}",
        hint=f"move it away (mv '{final}' '{final}.bad') and run again",
    )


def _rejection(part: Path, entry: CatalogEntry, expected: Expected, total: int | None, sha: str) -> str | None:
    size = part.stat().st_size
    if total is not None and size != total:
        return f"the download has {size} bytes, the server announced {total}"
    if expected.size_bytes is not None and size != expected.size_bytes:
        return f"the download has {size} bytes, {expected.source} says {expected.size_bytes}"
    if expected.sha256s and sha not in expected.sha256s:
        return f"its sha256 {sha} does not match {expected.source}'s {', '.join(expected.sha256s)}"
    return _structure_problem(part, entry)


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
        with download_lock(lock_file(dest, final.name), f"downloading {final}"):
            if final.exists():
                return _already_there(final, expected, entry, cache)
            part = dest / (expected.filename + ".part")
            have = part.stat().st_size if part.exists() else 0
            need = (expected.size_bytes or expected.approx_bytes or 0) - have
            check_free_space(dest, need, f"{entry.title} ({expected.filename})")
            url = f"{civitai_url(env)}/api/download/models/{entry.civitai_version_id}"
            transfer = Transfer(session, url, token, part, expected, on_start, on_bytes)
            total, digest, resumed_from = transfer.run(retries, note)
            size = part.stat().st_size
            sha = digest.hexdigest()
            problem = _rejection(part, entry, expected, total, sha)
            if problem:
                part.unlink(missing_ok=True)  # resuming a wrong file would only fail again
                raise UserError(f"the downloaded file was rejected: {problem}; nothing was saved under {final.name}")
            os.replace(part, final)
            if cache is not None:
                _remember(cache, final, sha)
            return Downloaded(final, sha, size, resumed_from_bytes=resumed_from)
    finally:
        session.close()


LOCK_SUFFIX = ".otdoctor-lock"


def lock_file(folder: Path, name: str) -> Path:
    """The hidden lock file for NAME in FOLDER (a name with `/` is a file in a repo's subfolder)."""
    return folder / f".{name.replace('/', '--')}{LOCK_SUFFIX}"


@contextlib.contextmanager
def download_lock(lock: Path, what: str) -> Iterator[None]:
    """One download per destination file: a second otdoctor stops at once instead of appending to the
    same `.part`. The lock sits beside the destination, so runs with different cache folders (or as
    different users) see each other; after a success it is removed while still held, so a run that
    opens it afterwards finds the finished file."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(exclusive(lock, what))
        except Busy:
            raise
        except UserError:
            raise UserError(
                f"cannot create a file in {lock.parent} (permission denied or read-only)",
                hint="choose a folder you can write to with --dest",
            ) from None
        yield
        lock.unlink(missing_ok=True)


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


def _remember(cache: VerifyCache, path: Path, sha: str) -> None:
    """Cache what the download verified, keyed on the file as it is now (a rename changes its ctime)."""
    try:
        st = path.stat()
    except OSError:
        return
    cache.put(st, {**file_facts(path, st.st_size), "sha256": sha})
    cache.save()


# Hugging Face ------------------------------------------------------------------------------------
def hf_expected_file(entry: CatalogEntry, offline: bool) -> KnownFile | None:
    """The file's size and sha256: from the catalog, else from the Hub's paths-info API (its LFS sha256)."""
    known = next((f for f in entry.files if f.name == entry.filename and f.sha256), None)
    if known is not None or offline:
        return known
    from huggingface_hub import HfApi

    try:
        infos = HfApi().get_paths_info(entry.repo or "", [entry.filename], revision=entry.revision)
    except Exception as exc:  # huggingface_hub raises its own HTTP and repo errors
        what, hint = _hf_cause(exc, entry, offline)
        raise UserError(
            redact(f"cannot ask Hugging Face for the sha256 of {entry.repo}/{entry.filename}: {what}"), hint=hint
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
        with _hf_lock(entry, dest, target):
            path = hf_hub_download(
                repo_id=entry.repo or "",
                filename=entry.filename,
                revision=entry.revision,
                local_dir=str(dest) if dest is not None else None,
                local_files_only=offline,
            )
    except (KeyboardInterrupt, UserError):
        raise
    except Exception as exc:  # huggingface_hub raises its own HTTP and repo errors
        raise _hf_failure(exc, entry, target, offline) from None
    return Path(path)


def _hf_lock(entry: CatalogEntry, dest: Path | None, cache: Path) -> AbstractContextManager[None]:
    """The download lock of a Hugging Face file: beside it in --dest, or in its repo's cache folder."""
    if dest is not None:
        final = dest / entry.filename
        return download_lock(lock_file(final.parent, final.name), f"downloading {final}")
    repo_dir = cache / ("models--" + (entry.repo or "").replace("/", "--"))
    return download_lock(lock_file(repo_dir, entry.filename), f"downloading {entry.repo}/{entry.filename} into {cache}")


def _hf_failure(exc: Exception, entry: CatalogEntry, target: Path, offline: bool) -> UserError:
    if isinstance(exc, OSError) and disk_full(exc):
        return disk_error(exc, target / entry.filename, 0)
    what, hint = _hf_cause(exc, entry, offline)
    return UserError(redact(f"the Hugging Face download of {entry.repo}/{entry.filename} failed: {what}"), hint=hint)


def _hf_cause(exc: Exception, entry: CatalogEntry, offline: bool) -> tuple[str, str | None]:
    """What went wrong, in the words of the HTTP status huggingface_hub saw, and what to do about it."""
    name = type(exc).__name__
    if "LocalEntryNotFound" in name and not offline and isinstance(exc.__cause__, Exception):
        return _hf_cause(exc.__cause__, entry, offline)  # "not in the cache" hides what the Hub answered
    status = getattr(getattr(exc, "response", None), "status_code", None)
    answered = _hf_refusal(name, status, entry)
    if answered is not None:
        return answered
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else name
    hint = "run without --offline to download it" if offline else None
    return f"{name}: {first}", hint


def _hf_refusal(name: str, status: int | None, entry: CatalogEntry) -> tuple[str, str] | None:
    """A gated, missing or private repo, or a missing file: what the Hub said and what to do."""
    repo, rev = entry.repo or "", entry.revision or "main"
    if "Gated" in name or (status in (401, 403) and "RepositoryNotFound" not in name):
        sent = "no valid token was sent" if status == 401 else "this token has no access to it yet"
        said = f"Hugging Face answered {status}" if status else "Hugging Face refused it"
        return f"{said}: {repo} is gated and {sent}", hf_access_help(entry)
    if "RepositoryNotFound" in name:
        return (
            f"Hugging Face answered {status}: there is no repository {repo}, or it is private",
            "check the repo id in the catalog (otdoctor models list); for a private repo log in with "
            "`hf auth login` or set HF_TOKEN",
        )
    if "RemoteEntryNotFound" in name or status == 404:
        return f"Hugging Face answered 404: {repo} has no file {entry.filename} at revision {rev}", (
            f"check the filename and revision in the catalog against https://huggingface.co/{repo}/tree/{rev}"
        )
    return None


# `otdoctor models download` ----------------------------------------------------------------------
class DownloadUI(Protocol):
    """What the front end shows while a catalog model downloads: each context yields (on_start, on_bytes)."""

    def transfer(self, filename: str) -> AbstractContextManager[tuple[StartFn | None, BytesFn | None]]: ...
    def hashing(self) -> AbstractContextManager[tuple[HashStartFn | None, BytesFn | None]]: ...
    def note(self, message: str) -> None: ...
    def interrupted(self, part: Path) -> None: ...


@dataclass(frozen=True)
class DownloadRequest:
    name: str
    dest: Path | None = None
    token_file: Path | None = None
    offline: bool = False
    retries: int = 2
    ot_dir: Path | None = None


@dataclass(frozen=True)
class ModelDownload:
    """A Civitai file (verified while it streamed), or a Hugging Face file and its verdict."""

    entry: CatalogEntry
    civitai: Downloaded | None = None
    path: Path | None = None
    verdict: Verdict | None = None

    def mismatch(self) -> UserError | None:
        """The error to end with when the downloaded file does not match the catalog."""
        if self.verdict is None or not self.verdict.problems:
            return None
        return UserError(
            f"{self.path} was downloaded but does not match the catalog",
            hint=f"move it away and download again: mv '{self.path}' '{self.path}.bad'",
        )


def download_model(probe: Probe, req: DownloadRequest, ui: DownloadUI) -> ModelDownload:
    """Download a catalog model from where the catalog says it lives, and verify it."""
    entry = find_entry(load_catalog(probe.env), req.name)
    cache = VerifyCache(env=probe.env)
    if entry.source == "civitai":
        dest = req.dest if req.dest is not None else _civitai_dest(probe, req.ot_dir, entry)
        return ModelDownload(entry, civitai=_from_civitai(probe, entry, cache, dest, req, ui))
    known = hf_expected_file(entry, req.offline)
    if known is not None and known not in entry.files:
        entry = dataclasses.replace(entry, files=(*entry.files, known))
    path = download_hf(entry, req.dest.expanduser() if req.dest else None, probe.env, probe.home, req.offline)
    with ui.hashing() as (on_start, on_bytes):
        verdict = Verifier([entry], cache).verify([(path, entry, None, "")], on_start, on_bytes)[0]
    return ModelDownload(entry, path=path, verdict=verdict)


def _civitai_dest(probe: Probe, ot_dir: Path | None, entry: CatalogEntry) -> Path:
    """Without --dest a Civitai model goes into the OneTrainer checkout's models/ folder."""
    from otdoctor.onetrainer.checkout import find_checkout

    located = find_checkout(probe, ot_dir)
    if located.path is None:
        raise UserError(
            "no --dest given and no OneTrainer checkout found to put it in models/",
            exit_code=2,
            hint=f"otdoctor models download {entry.name} --dest /path/to/models",
        )
    return located.path / "models"


def _from_civitai(
    probe: Probe, entry: CatalogEntry, cache: VerifyCache, dest: Path, req: DownloadRequest, ui: DownloadUI
) -> Downloaded:
    """Into `dest`, resuming a .part file; an interrupted run says the .part is kept."""
    token = read_token(probe.env, req.token_file)
    part_hint = dest / (entry.filename + ".part")
    try:
        with ui.transfer(entry.filename) as (on_start, on_bytes):
            return download_civitai(
                entry,
                dest.expanduser(),
                probe.env,
                token,
                req.offline,
                req.retries,
                on_start,
                on_bytes,
                note=ui.note,
                cache=cache,
            )
    except KeyboardInterrupt:
        if part_hint.is_file() and part_hint.stat().st_size:  # say "kept" only of bytes that are there
            ui.interrupted(part_hint)
        raise
