"""Find the known problems in a log in time linear in its length, whatever the log holds.

The patterns are RE2 expressions (Google's regular-expression engine: automata, no backtracking,
so no input can make a search slow). One RE2 set scans the whole log once and says which problems
occur at all; only those are searched again on their own for the first position. The set also
holds a pattern that matches only at the very end of the log: RE2 gives up on a set scan whose
automaton outgrows its memory, and a scan that reached the end reports that pattern, so a
missing one means "gave up" and every problem is searched on its own instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import re2

from otdoctor.explain.table import KnownProblem, known_problems

_FLAGS = "(?im)"  # case-insensitive; ^ and $ at line boundaries
_MAX_MEM = 64 << 20  # the automata's cache budget, per expression


@dataclass(frozen=True)
class _Compiled:
    searches: tuple[re2._Regexp, ...]  # one per problem: its patterns as one alternation
    screen: re2.Set  # every problem's alternation, then the end-of-log sentinel
    sentinel: int


def _options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = _MAX_MEM
    return options


def alternation(problem: KnownProblem) -> bytes:
    """The problem's patterns as one RE2 expression."""
    return (_FLAGS + "|".join(f"(?:{p})" for p in problem.patterns)).encode()


@lru_cache(maxsize=1)
def _compiled() -> _Compiled:
    options = _options()
    patterns = [alternation(p) for p in known_problems()]
    screen = re2.Set.SearchSet(options)
    for pattern in patterns:
        screen.Add(pattern)
    sentinel = screen.Add(rb"\z")
    screen.Compile()
    return _Compiled(tuple(re2.compile(p, options) for p in patterns), screen, sentinel)


def candidates(data: bytes) -> Sequence[int]:
    """Indexes of the problems whose patterns may occur in DATA (all of them if the scan gave up)."""
    compiled = _compiled()
    hits = compiled.screen.Match(data) or []
    if compiled.sentinel not in hits:
        return range(len(compiled.searches))
    return sorted(i for i in hits if i != compiled.sentinel)


def _first_matches(data: bytes, indexes: Sequence[int]) -> list[tuple[int, int]]:
    searches = _compiled().searches
    found = []
    for index in indexes:
        match = searches[index].search(data)
        if match is not None:
            found.append((index, match.start()))
    return found


def first_positions(data: bytes) -> list[tuple[int, int]]:
    """(problem index, byte offset of its first match) for every problem found in DATA."""
    return _first_matches(data, candidates(data))


def brute_force_positions(data: bytes) -> list[tuple[int, int]]:
    """The same answer without the screening scan: each problem searched on its own (for tests)."""
    return _first_matches(data, range(len(_compiled().searches)))
