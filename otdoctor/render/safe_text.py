"""Text output that cannot drive the terminal.

Command lines of other users' processes, NVML device names, file names and config values reach
the text formats; an ESC sequence among them would recolour the terminal or set its title, a
carriage return or a bidi override would make a line read as something else. Each field is made
one line where it is formatted (`one_line`); `SafeConsole` is the net under all of them: every
character rich is asked to print, other than a line break or a tab, is shown escaped if it is not
printable. Rich's own colours are control segments of their own and pass unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.segment import Segment

from otdoctor.oneline import no_controls, one_line
from otdoctor.redact import redact

if TYPE_CHECKING:
    from rich.console import ConsoleOptions, RenderableType

__all__ = ["SafeConsole", "field", "no_controls", "one_line"]


def field(text: str) -> str:
    """A string from the machine or a file, ready for rich markup: secrets masked, on one line,
    and its square brackets shown as they are instead of read as styles."""
    return escape(redact(one_line(text)))


class SafeConsole(Console):
    """A rich Console whose printed text never holds a raw control or format character."""

    def render(self, renderable: RenderableType, options: ConsoleOptions | None = None) -> Iterable[Segment]:
        for segment in super().render(renderable, options):
            if segment.control or segment.text.isprintable():
                yield segment
            else:
                yield Segment(no_controls(segment.text), segment.style, segment.control)
