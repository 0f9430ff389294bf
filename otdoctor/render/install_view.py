"""What `otdoctor install` and `otdoctor fix` show while they work.

On a terminal: one line per finished phase, and below it a live panel with a spinner and the last
lines of pip's (or git's) output. Elsewhere (CI, a pipe): the phase lines only; the full output is
in the log file either way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner
from rich.text import Text

from otdoctor.redact import redact

if TYPE_CHECKING:
    from otdoctor.engine.results import Report
    from otdoctor.install.installer import Installer
    from otdoctor.install.run import InstallResult


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

    # What `otdoctor install` says around the phases ----------------------------------------------
    def show_intro(self, inst: Installer, ref: str | None, warnings: Sequence[str]) -> None:
        assert inst.platform is not None
        out = self.out
        out.print(f"[bold]OneTrainer install[/] into {escape(str(inst.dir))}")
        out.print(f"  from {escape(redact(inst.repo_url))}" + (f" at {escape(ref)}" if ref else ""))
        out.print(
            f"  Python {escape(inst.python_request)} through pyenv; requirements-global.txt + "
            f"{escape(inst.platform.file)} ({escape(inst.platform.reason)})"
        )
        for w in warnings:
            out.print(f"  [yellow]![/] {escape(redact(w))}")

    def show_plan(self, steps: Sequence[Any], ot_dir: Path) -> None:
        out = self.out
        out.print()
        out.print("[bold]Plan[/]")
        for step in steps:
            mark = "[green]✓[/]" if step.done else "[cyan]•[/]"
            out.print(f"  {mark} {step.phase}: {escape(redact(step.summary))}")
            for cmd in step.commands:
                out.print(f"      {escape(redact(cmd))}")
        out.print(f"  [cyan]•[/] check: otdoctor check --ot-dir {escape(str(ot_dir))}")
        out.print()

    def show_result(self, result: InstallResult) -> None:
        """What follows the plan: the dry run's last line, or the final check (a declined install says nothing)."""
        if result.dry_run:
            self.out.print("dry run: nothing was changed")
        elif result.report is not None:
            self.show_installed(result.report, result.dir)

    def show_installed(self, report: Report, ot_dir: Path) -> None:
        """The final check's report, and where to go from here."""
        from otdoctor.render import text

        counts = report.counts()
        self.done("check", ", ".join(f"{n} {k}" for k, n in counts.items() if n))
        out = self.out
        out.print()
        text.render(report, out)
        where = escape(str(ot_dir))
        out.print(
            f"OneTrainer is installed in {where}; start it with: cd {where} && ./start-ui.sh"
            if report.exit_code() == 0
            else "OneTrainer is installed, but otdoctor check found problems (above); "
            "`otdoctor fix` repairs what it can"
        )
        out.print(
            "[dim]training setup (config, dataset, checkpoints): "
            f"otdoctor check --ot-dir {where} --config CONFIG.json[/]"
        )

    # -----------------------------------------------------------------------------------------------
    def _render(self) -> Group:
        width = max(20, self.out.width - 6)
        body = [Text("    " + line[:width], style="dim") for line in self._lines]
        return Group(Spinner("dots", text=Text(self._title)), *body)

    def _stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
