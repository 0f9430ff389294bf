"""`otdoctor explain`: recognise known problems in OneTrainer's output.

The table lives in `otdoctor/data/known_problems.toml` (one entry per common problem in
ONETRAINER.md): regular expressions, a diagnosis, a fix with commands, and the otdoctor command
that applies or checks it. `explain_text(text)` is the whole engine; other commands (the smoke
test) call it on OneTrainer's output.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from otdoctor.data import load_table
from otdoctor.errors import UserError

# Logs of a failed install can be large; the interesting part is near the end.
MAX_BYTES = 8 * 1024 * 1024
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass(frozen=True)
class KnownProblem:
    id: str
    title: str
    patterns: tuple[re.Pattern[str], ...]
    diagnosis: str
    fix: str
    commands: tuple[str, ...]
    otdoctor: str


@dataclass(frozen=True)
class Match:
    problem: KnownProblem
    line_no: int  # 1-based line of the first evidence
    evidence: str  # the matching text (first line of it)

    def as_dict(self) -> dict[str, object]:
        p = self.problem
        return {
            "id": p.id,
            "title": p.title,
            "line": self.line_no,
            "evidence": self.evidence,
            "diagnosis": p.diagnosis,
            "fix": p.fix,
            "commands": list(p.commands),
            "otdoctor": p.otdoctor,
        }


@lru_cache(maxsize=1)
def known_problems() -> tuple[KnownProblem, ...]:
    data = load_table("known_problems.toml")
    return tuple(
        KnownProblem(
            id=e["id"],
            title=e["title"],
            patterns=tuple(re.compile(p, re.I | re.M) for p in e["patterns"]),
            diagnosis=e["diagnosis"],
            fix=e["fix"],
            commands=tuple(e.get("commands", ())),
            otdoctor=e.get("otdoctor", ""),
        )
        for e in data["problem"]
    )


def normalise(text: str) -> str:
    """Terminal output as lines: colours removed, tqdm's carriage-return redraws split into lines."""
    return _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")


def explain_text(text: str) -> list[Match]:
    """Every known problem found in `text`, in the order it first appears. Empty: nothing known."""
    text = normalise(text)
    found: list[Match] = []
    for problem in known_problems():
        best: re.Match[str] | None = None
        for pattern in problem.patterns:
            m = pattern.search(text)
            if m and (best is None or m.start() < best.start()):
                best = m
        if best is not None:
            line_no = text.count("\n", 0, best.start()) + 1
            line_start = text.rfind("\n", 0, best.start()) + 1
            line_end = text.find("\n", best.start())
            evidence = text[line_start : line_end if line_end != -1 else len(text)].strip()
            found.append(Match(problem, line_no, evidence[:300]))
    found.sort(key=lambda m: m.line_no)
    return found


def last_error_line(text: str) -> str | None:
    """The last line that looks like an error (an exception line ends a Python traceback)."""
    lines = [line.strip() for line in normalise(text).splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r"^([A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b|error:|ERROR:|fatal:|RuntimeError)", line):
            return line[:300]
    return None


def read_input(source: str) -> str:
    """A log file's text (its last MAX_BYTES), or stdin for `-`."""
    if source == "-":
        data = sys.stdin.buffer.read()
    else:
        path = Path(source).expanduser()
        if path.is_dir():
            raise UserError(f"{path} is a folder; give the log file inside it", exit_code=2)
        if not path.is_file():
            raise UserError(f"log file not found: {path}", exit_code=2)
        try:
            with open(path, "rb") as fh:
                size = path.stat().st_size
                if size > MAX_BYTES:
                    fh.seek(size - MAX_BYTES)
                data = fh.read()
        except OSError as exc:
            raise UserError(f"cannot read {path}: {exc.strerror or exc}", exit_code=2) from None
    name = "stdin" if source == "-" else str(Path(source).expanduser())
    if not data.strip():
        raise UserError(f"{name} is empty: nothing to explain", exit_code=2)
    data = data[-MAX_BYTES:]
    if data[:2] == b"\xfe\xff":
        text = data[2:].decode("utf-16-be", errors="replace")
    elif data[:2] == b"\xff\xfe" or data[1::2].count(0) > len(data) // 4:
        # PowerShell's `>` writes UTF-16LE (the BOM is gone when only the tail was read).
        start = 2 if data[:2] == b"\xff\xfe" else len(data) % 2
        text = data[start:].decode("utf-16-le", errors="replace")
    else:
        text = data.decode("utf-8", errors="replace")
    # A model, image or archive passed by mistake would otherwise read as "no known problem".
    if "\x00" in text or text.count("\ufffd") > len(text) // 10:
        raise UserError(
            f"{name} is binary data, not a text log",
            exit_code=2,
            hint="give the terminal output of OneTrainer, e.g. `./start-ui.sh 2>&1 | tee ot.log`",
        )
    return text
