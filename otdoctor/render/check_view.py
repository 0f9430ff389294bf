"""`otdoctor check` results in every format it offers: text, json, junit, github."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from otdoctor.engine.check import Check
from otdoctor.engine.results import Report
from otdoctor.render import FORMATS
from otdoctor.render.emit import Destination, Draw


@dataclass(frozen=True)
class CheckView:
    report: Report
    verbose: bool = False
    strict: bool = False

    def formats(self) -> Mapping[str, Draw]:
        return {"text": self._text, "json": self._json, "junit": self._junit, "github": self._github}

    def _text(self, dest: Destination) -> None:
        from otdoctor.render import text

        text.render(self.report, dest.console(), verbose=self.verbose, strict=self.strict)

    def _json(self, dest: Destination) -> None:
        from otdoctor.render import jsonout

        dest.write(jsonout.render(self.report, self.strict))

    def _junit(self, dest: Destination) -> None:
        from otdoctor.render import junit

        dest.write(junit.render(self.report, self.strict))

    def _github(self, dest: Destination) -> None:
        from otdoctor.render import github

        dest.write(github.render(self.report, self.strict))
        github.append_step_summary(self.report, strict=self.strict)


@dataclass(frozen=True)
class CheckListView:
    """`check --list`: the table of checks, whatever --format says."""

    checks: Sequence[Check]

    def formats(self) -> Mapping[str, Draw]:
        return dict.fromkeys(FORMATS, self._text)

    def _text(self, dest: Destination) -> None:
        from otdoctor.render.text import render_list

        render_list(list(self.checks), dest.console())
