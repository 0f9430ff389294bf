"""The known problems table (`otdoctor/data/known_problems.toml`) as typed records."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from otdoctor.data import load_table

# A source on OneTrainer's own tracker (upstream) or one of its forks, as opposed to "guide" (the
# setup guide's list).
UPSTREAM_SOURCE_PREFIX = "Nerogar/OneTrainer#"
TRACKER_SOURCE_PREFIXES = (UPSTREAM_SOURCE_PREFIX, "lshqqytiger/OneTrainer#")


@dataclass(frozen=True)
class KnownProblem:
    id: str
    title: str
    sources: tuple[str, ...]
    patterns: tuple[str, ...]  # RE2 syntax, matched case-insensitively
    diagnosis: str
    fix: str
    commands: tuple[str, ...]
    otdoctor: str

    def fix_commands(self) -> tuple[str, ...]:
        """The commands to print under the fix: the table's, then otdoctor's own unless already listed."""
        if self.otdoctor and self.otdoctor not in self.commands:
            return (*self.commands, self.otdoctor)
        return self.commands

    def tracker_sources(self) -> tuple[str, ...]:
        return tuple(s for s in self.sources if s.startswith(TRACKER_SOURCE_PREFIXES))

    def upstream_sources(self) -> tuple[str, ...]:
        """The issues on OneTrainer's own tracker (github.com/Nerogar/OneTrainer), not a fork's."""
        return tuple(s for s in self.sources if s.startswith(UPSTREAM_SOURCE_PREFIX))

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "title": self.title,
            "sources": list(self.sources),
            "diagnosis": self.diagnosis,
            "fix": self.fix,
            "commands": list(self.commands),
            "otdoctor": self.otdoctor,
        }


@lru_cache(maxsize=1)
def known_problems() -> tuple[KnownProblem, ...]:
    """Every known problem, in table order."""
    return tuple(
        KnownProblem(
            id=e["id"],
            title=e["title"],
            sources=tuple(e["sources"]),
            patterns=tuple(e["patterns"]),
            diagnosis=e["diagnosis"],
            fix=e["fix"],
            commands=tuple(e.get("commands", ())),
            otdoctor=e.get("otdoctor", ""),
        )
        for e in load_table("known_problems.toml")["problem"]
    )
