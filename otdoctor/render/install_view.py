"""What `otdoctor install` and `otdoctor fix` show while they work.

On a terminal: one line per finished phase, and below it a live panel with a spinner and the last
lines of pip's (or git's) output. Elsewhere (CI, a pipe): the phase lines only; the full output is
in the log file either way.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner
from rich.text import Text

from otdoctor.redact import redact


class InstallView:
    def __init__(self, out: Console, confirm: Any, total_phases: int | None = None, live_lines: int = 8) -> None:
        self.out = out
        self._confirm = confirm
        self.total = total_phases
        self.index = 0
        self.tty = out.is_terminal
        self._lines: deque[str] = deque(maxlen=live_lines)
        self._live: Live | None = None
        self._title = ""

    # InstallUI -----------------------------------------------------------------------------------
    def phase(self, name: str, title: str) -> None:
        self._stop()
        self.index += 1
        self._title = f"[{self.index}/{self.total}] {title}" if self.total else title
        self._lines.clear()
        if self.tty:
            self._live = Live(self._render(), console=self.out, refresh_per_second=8, transient=True)
            self._live.start()
        else:
            self.out.print(f"==> {escape(self._title)}")

    def done(self, name: str, detail: str) -> None:
        self._stop()
        if self.tty:
            self.out.print(f"[green]✓[/] {escape(self._title)}: {escape(redact(detail))}")
        else:
            self.out.print(f"    done: {escape(redact(detail))}")

    def output(self, line: str) -> None:
        self._lines.append(redact(line))
        if self._live is not None:
            self._live.update(self._render())

    def message(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(f"    {escape(redact(text))}")
        else:
            self.out.print(f"    {escape(redact(text))}")

    def confirm(self, question: str) -> bool:
        self._stop()
        return bool(self._confirm(redact(question)))

    def fail(self) -> None:
        self._stop()

    # -----------------------------------------------------------------------------------------------
    def _render(self) -> Group:
        width = max(20, self.out.width - 6)
        body = [Text("    " + line[:width], style="dim") for line in self._lines]
        return Group(Spinner("dots", text=Text(self._title)), *body)

    def _stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
