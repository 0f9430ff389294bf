"""Strings from the machine and from files (names, paths, command lines), made safe to print on one line.

A component name in model_index.json, a shard in an index file, a file name on disk or a catalog
title may hold a newline, a tab, an ANSI escape or another control or format character; printed
as is, it splits a finding over two lines or restyles the terminal. Each such character is shown
as its Python escape (`\\n`, `\\x1b`, `\\u202e`); printable text, non-ASCII letters included, is
unchanged. Commands to paste quote such a path with bash's `$'...'`, which turns the escapes back
into the very characters, so the command still names the real file.
"""

from __future__ import annotations

import unicodedata
from shlex import quote


def _escaped(ch: str) -> str:
    return ch if ch.isprintable() else repr(ch)[1:-1]


def one_line(text: str) -> str:
    """TEXT with every non-printable character (newline, tab, escape, lone surrogate...) escaped."""
    if text.isprintable():  # the common case, at C speed
        return text
    return "".join(map(_escaped, text))


def no_controls(text: str) -> str:
    """TEXT with every control and format character (ESC, BEL, CR, a bidi override) shown as a
    JSON-style `\\uXXXX` escape, its newlines, tabs and spaces kept: for a whole block of output
    whose line breaks are its own. The escape is valid inside a JSON string too, where such a
    character can only stand, so a JSON document stays the same document."""
    if text.replace("\n", "").replace("\t", "").isprintable():  # the common case, at C speed
        return text
    return "".join(ch if ch.isprintable() or ch in "\n\t" or _is_space(ch) else _json_escape(ch) for ch in text)


def _is_space(ch: str) -> bool:
    return unicodedata.category(ch) == "Zs"  # a no-break or thin space: shown as a space, harmless


def _json_escape(ch: str) -> str:
    units = ch.encode("utf-16-le", "surrogatepass")
    return "".join(f"\\u{int.from_bytes(units[i : i + 2], 'little'):04x}" for i in range(0, len(units), 2))


def shell_quote(text: str) -> str:
    """TEXT as one shell word that prints on one line: shlex.quote, or bash's $'...' when it holds
    a non-printable character (a file name with a newline stays the same file when pasted)."""
    if text.isprintable():
        return quote(text)
    body = "".join(_ansi_c(ch) for ch in text)
    return f"$'{body}'"


def _ansi_c(ch: str) -> str:
    """One character inside bash's $'...': backslash and quote escaped, the rest as in `one_line`
    (bash reads `\\n`, `\\t`, `\\xHH`, `\\uHHHH` and `\\UHHHHHHHH` the same way Python writes them)."""
    if ch in "\\'":
        return "\\" + ch
    if ch.isprintable():
        return ch
    if 0xD800 <= ord(ch) <= 0xDFFF:  # a lone surrogate (an undecodable byte of a file name)
        return f"\\x{ord(ch) - 0xDC00:02x}" if ord(ch) >= 0xDC80 else f"\\u{ord(ch):04x}"
    return repr(ch)[1:-1]
