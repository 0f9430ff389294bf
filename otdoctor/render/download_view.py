"""What `otdoctor models download` shows: bars and notes on stderr, the result on stdout."""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from rich.console import Console

from otdoctor.checkpoints.catalog import CatalogEntry
from otdoctor.checkpoints.download import Downloaded, ModelDownload
from otdoctor.oneline import one_line
from otdoctor.redact import redact
from otdoctor.render.models import download_progress, hash_progress, render_verdicts


def civitai_line(entry: CatalogEntry, result: Downloaded) -> str:
    """What happened to a Civitai download, in one line."""
    state = "already there, sha256 verified" if result.already_there else "downloaded, size and sha256 verified"
    if result.resumed_from_bytes:
        state += f"; resumed at byte {result.resumed_from_bytes}"
    return redact(one_line(f"{entry.title}: {result.path} ({state})"))


class DownloadView:
    """The download's `DownloadUI`; bars only when stderr is a terminal."""

    def __init__(self, out: Console, tty: bool) -> None:
        self.out = out
        self.tty = tty

    def transfer(self, filename: str) -> AbstractContextManager[tuple[Any, Any]]:
        return download_progress(self.tty, filename)

    def hashing(self) -> AbstractContextManager[tuple[Any, Any]]:
        return hash_progress(self.tty)

    def note(self, message: str) -> None:
        sys.stderr.write(redact(one_line(f"otdoctor: {message}")) + "\n")

    def interrupted(self, part: Path) -> None:
        sys.stderr.write(f"\notdoctor: interrupted; {one_line(str(part))} is kept and the same command resumes it\n")

    def show(self, done: ModelDownload) -> None:
        if done.civitai is not None:
            self.out.print(civitai_line(done.entry, done.civitai), markup=False, highlight=False)
        elif done.verdict is not None:
            render_verdicts([done.verdict], self.out)
