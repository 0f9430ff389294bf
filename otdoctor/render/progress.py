"""Progress for long work inside checks and fixes (image scans, padding a dataset).

Checks and fixes never import rich: they call `ctx.options.extra["progress"](what, done, total)`
when it is there. The CLI puts one of these callables there:
- `BarReporter(console)`: a rich progress bar on a terminal, nothing otherwise; it starts on the
  first call and goes away when `done == total`, so questions asked between two jobs stay readable.
- `status_reporter(status)`: updates the text of the `otdoctor check` spinner.
`collecting_status` is `otdoctor report`'s spinner while it collects.
`smoke_status` is `otdoctor smoke`'s one-line live status.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from otdoctor.redact import redact


class BarReporter:
    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress: Progress | None = None
        self._task: Any = None
        self._what: str | None = None
        self._lock = threading.Lock()

    def __call__(self, what: str, done: int, total: int) -> None:
        if not self.console.is_terminal or total <= 0:
            return
        with self._lock:
            if self._progress is None or what != self._what:
                self._finish()
                self._progress = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeRemainingColumn(),
                    console=self.console,
                    transient=True,
                )
                self._progress.start()
                self._task = self._progress.add_task(escape(what), total=total)
                self._what = what
            self._progress.update(self._task, completed=done, total=total)
            if done >= total:
                self._finish()

    def _finish(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        self._progress = None
        self._what = None

    def close(self) -> None:
        with self._lock:
            self._finish()


@contextlib.contextmanager
def checking_spinner(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """`otdoctor check`'s spinner on a terminal, yielding its progress reporter (None when off)."""
    if not enabled:
        yield None
        return
    from otdoctor.render.text import console

    with console().status("Checking…") as status:
        yield status_reporter(status)


@contextlib.contextmanager
def collecting_status(enabled: bool) -> Iterator[Callable[[str], None] | None]:
    """`otdoctor report`'s spinner on stderr (a terminal only), yielding its step reporter."""
    if not enabled:
        yield None
        return
    with Console(stderr=True).status("Collecting the report…") as status:
        yield lambda m: status.update(f"Report: {m}…")


def status_reporter(status: Any, base: str = "Checking…") -> Callable[[str, int, int], None]:
    def report(what: str, done: int, total: int) -> None:
        status.update(f"{base} {escape(what)}: {done}/{total}" if done < total else base)

    return report


def smoke_status(enabled: bool) -> Callable[..., None] | None:
    """A one-line live status on stderr (TTY only): phase, bar and rate as OneTrainer draws them."""
    if not enabled:
        return None
    state = {"last": 0.0}

    def show(msg: str, bar: Any = None) -> None:
        now = time.monotonic()
        if bar is not None:
            if now - state["last"] < 0.2:
                return
            total = f"/{bar.total:.0f}" if bar.total else ""
            rate = f" {bar.rate_its:.2f} it/s" if bar.rate_its else ""
            msg = f"{bar.desc} {bar.n:.0f}{total}{rate}"
        state["last"] = now
        sys.stderr.write("\r\x1b[2K" + redact(msg)[:150])
        if bar is None:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def clear_status_line() -> None:
    sys.stderr.write("\r\x1b[2K")
