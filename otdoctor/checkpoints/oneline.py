"""Names and paths that come from files, made safe to print on one line.

A component name in model_index.json, a shard in an index file, a file name on disk or a catalog
title may hold a newline, a tab, an ANSI escape or another control or format character; printed
as is, it splits a finding over two lines or restyles the terminal. Each such character is shown
as its Python escape (`\\n`, `\\x1b`, `\\u202e`); printable text, non-ASCII letters included, is
unchanged. Commands to paste quote such a path with bash's `$'...'`, which turns the escapes back
into the very characters, so the command still names the real file.
"""

from __future__ import annotations

from shlex import quote


def _escaped(ch: str) -> str:
    return ch if ch.isprintable() else repr(ch)[1:-1]


def one_line(text: str) -> str:
    """TEXT with every non-printable character (newline, tab, escape, lone surrogate...) escaped."""
    if text.isprintable():  # the common case, at C speed
        return text
    return "".join(map(_escaped, text))


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
