"""Disk space for a download: the check before it starts, and the message when the disk fills up."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from otdoctor.errors import UserError

FREE_MARGIN_BYTES = 64 * 1024 * 1024  # leave the filesystem some room after the download
_FULL_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EFBIG: "the file size limit was reached",
    errno.EDQUOT: "the disk quota is exhausted",
}


def disk_full(exc: OSError) -> bool:
    return exc.errno in _FULL_REASONS


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


def disk_error(exc: OSError, part: Path, written: int) -> UserError:
    """The error for a failed write of `part`; a full disk says how to resume."""
    if exc.errno in _FULL_REASONS:
        kept = f"the partial file {part.name} resumes on the next run" if written else "then run it again"
        return UserError(
            f"cannot write {part}: {_FULL_REASONS[exc.errno]} after {written} bytes",
            hint=f"free some space (or pick another --dest); {kept}",
        )
    return UserError(f"cannot write {part}: {exc.strerror or exc}")
