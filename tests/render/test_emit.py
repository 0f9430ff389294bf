"""`emit`: one view, every format it offers, to stdout or to --output; and the unit formatting."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from otdoctor.errors import UserError
from otdoctor.render import human_bytes as reexported_bytes
from otdoctor.render.emit import Destination, Draw, emit
from otdoctor.render.units import human_bytes, human_duration


@dataclass(frozen=True)
class Greeting:
    name: str

    def formats(self) -> Mapping[str, Draw]:
        return {"text": self._text, "json": self._json}

    def _text(self, dest: Destination) -> None:
        dest.console().print(f"[bold]hello[/] {self.name}")

    def _json(self, dest: Destination) -> None:
        dest.write(f'{{"hello": "{self.name}"}}\n')


def test_string_formats_go_to_stdout(capsys):
    emit(Greeting("world"), "json")
    assert capsys.readouterr().out == '{"hello": "world"}\n'


def test_rich_formats_go_to_the_output_file_without_colour(tmp_path: Path):
    out = tmp_path / "report.txt"
    emit(Greeting("world"), "text", out)
    assert out.read_text(encoding="utf-8") == "hello world\n"
    emit(Greeting("again"), "json", out)
    assert out.read_text(encoding="utf-8") == '{"hello": "again"}\n'


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_an_output_that_cannot_be_written_is_a_usage_error(tmp_path: Path, fmt):
    target = tmp_path / "missing-folder" / "x.txt"
    with pytest.raises(UserError) as err:
        emit(Greeting("world"), fmt, target)
    assert err.value.exit_code == 2
    assert err.value.message.startswith(f"cannot write --output {target}: ")
    assert not target.parent.exists()


def test_units():
    assert [human_bytes(n) for n in (None, 0, 1023, 1024, 5 * 1024**3, 3 * 1024**5)] == [
        "unknown",
        "0 B",
        "1023 B",
        "1.0 KiB",
        "5.0 GiB",
        "3072.0 TiB",
    ]
    assert [human_duration(s) for s in (None, 0.25, 1.4, 60, 3 * 3600 + 32 * 60 + 23)] == [
        "unknown",
        "250 ms",
        "1.4 s",
        "1 min 0 s",
        "3 h 32 min 23 s",
    ]
    assert reexported_bytes is human_bytes
