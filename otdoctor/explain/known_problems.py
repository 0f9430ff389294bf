"""`otdoctor explain`: recognise known problems in OneTrainer's output.

The table lives in `otdoctor/data/known_problems.toml`: one entry per problem users reported on
OneTrainer's tracker (each cites its issues), with RE2 patterns, a diagnosis, a fix with commands,
and the otdoctor command that applies or checks it. `explain_text(text)` is the whole engine;
other commands (the smoke test) call it on OneTrainer's output. Matching is linear in the length
of the log whatever it holds (`otdoctor.explain.matcher`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import re2

from otdoctor.explain.log_input import MAX_BYTES, read_input
from otdoctor.explain.matcher import first_positions
from otdoctor.explain.table import KnownProblem, known_problems

__all__ = ["MAX_BYTES", "KnownProblem", "Match", "explain_text", "known_problems", "last_error_line", "read_input"]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # one run of parameter bytes per escape: linear
EVIDENCE_CHARS = 300
_BEFORE_MATCH = 60  # context kept before a match found deep inside a very long line
# The line that ends a Python traceback or a failed command. Searched from the end in blocks, so a
# long log costs one pass and only the last block's hits are ever looked at.
_ERROR_LINE = re2.compile(
    rb"(?m)^[ \t]*(?:[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)\b|error:|ERROR:|fatal:)[^\n]*"
)
_BLOCK = 256 * 1024


@dataclass(frozen=True)
class Match:
    problem: KnownProblem
    line_no: int  # 1-based line of the first evidence
    evidence: str  # the matching line (at most EVIDENCE_CHARS of it)

    def as_dict(self) -> dict[str, object]:
        return {**self.problem.as_dict(), "line": self.line_no, "evidence": self.evidence}


def normalise(text: str) -> str:
    """Terminal output as lines: colours removed, tqdm's carriage-return redraws split into lines."""
    return _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")


def log_bytes(text: str) -> bytes:
    """The normalised log as UTF-8 bytes, what the patterns are matched against."""
    return normalise(text).encode("utf-8", errors="replace")  # a lone surrogate becomes "?"


def _evidence(data: bytes, pos: int) -> tuple[int, str]:
    """The 1-based line number at byte POS and that line (around POS when the line is very long)."""
    start = data.rfind(b"\n", 0, pos) + 1
    end = data.find(b"\n", pos)
    end = len(data) if end == -1 else end
    if pos - start > EVIDENCE_CHARS - _BEFORE_MATCH:
        start = pos - _BEFORE_MATCH
    line = data[start : min(end, start + 4 * EVIDENCE_CHARS)].decode("utf-8", errors="replace")
    return data.count(b"\n", 0, pos) + 1, line.strip()[:EVIDENCE_CHARS]


def explain_text(text: str) -> list[Match]:
    """Every known problem found in `text`, in the order it first appears. Empty: nothing known."""
    data = log_bytes(text)
    problems = known_problems()
    found = []
    for index, pos in first_positions(data):
        line_no, evidence = _evidence(data, pos)
        found.append((pos, Match(problems[index], line_no, evidence)))
    return [m for _, m in sorted(found, key=lambda f: f[0])]


def _block_start(data: bytes, cut: int, end: int) -> int | None:
    """Where the first whole line in data[cut:end] begins (0 at the top); None when none begins there."""
    if cut == 0:
        return 0
    newline = data.find(b"\n", cut - 1, end)
    return None if newline == -1 else newline + 1


def last_error_line(text: str) -> str | None:
    """The last line that looks like an error (an exception line ends a Python traceback)."""
    data = log_bytes(text)
    end = len(data)
    while end > 0:
        cut = max(0, end - _BLOCK)
        start = _block_start(data, cut, end)
        if start is not None:
            hits = list(_ERROR_LINE.finditer(data, start, end))
            if hits:
                return hits[-1].group(0).decode("utf-8", errors="replace").strip()[:EVIDENCE_CHARS]
        end = cut
    return None
