"""The one way a command's result leaves the program: `emit(view, fmt, output)`.

A view is a small object from `otdoctor.render` that knows how to draw one kind of result in each
format it offers (`view.formats()`, format name to drawing function). `emit` picks the drawing,
opens the destination (stdout, or the file given with --output) and closes it afterwards.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

from otdoctor.oneline import no_controls

if TYPE_CHECKING:
    from rich.console import Console


class Destination:
    """stdout, or the --output file: whole strings go through `write`, rich drawings through `console()`."""

    def __init__(self, output: Path | None = None) -> None:
        self.output = output
        self._file: IO[str] | None = None
        self._console: Console | None = None

    def write(self, text: str) -> None:
        text = no_controls(text)  # text from the machine never drives the terminal; see safe_text
        if self.output is None:
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        try:
            self.output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise output_error(self.output, exc) from None

    def console(self) -> Console:
        from otdoctor.render.text import console

        if self._console is None:
            if self.output is None:
                self._console = console()
            else:
                try:
                    self._file = open(self.output, "w", encoding="utf-8")  # noqa: SIM115 -- closed by close()
                except OSError as exc:
                    raise output_error(self.output, exc) from None
                self._console = console(file=self._file, force_color=False)
        return self._console

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def output_error(output: Path, exc: OSError) -> Exception:
    from otdoctor.errors import UserError

    # --output into a missing folder, onto a folder (-o ''), a read-only place: the user's to fix
    return UserError(f"cannot write --output {output}: {exc.strerror or exc}", exit_code=2)


Draw = Callable[[Destination], None]


class View(Protocol):
    def formats(self) -> Mapping[str, Draw]: ...


def emit(view: View, fmt: str, output: Path | None = None) -> None:
    """Draw `view` in format `fmt` on stdout, or into `output`."""
    draw = view.formats()[fmt]
    dest = Destination(output)
    try:
        draw(dest)
    finally:
        dest.close()
