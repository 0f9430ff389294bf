"""Reading a config or concept file as JSON without trusting it: a regular file of bounded size,
UTF-8, nesting bounded (json.loads itself dies of RecursionError on 100,000 nested `[`), every string
printable (a JSON `"\\ud800"` escape is a lone surrogate that no UTF-8 output can encode).

Any problem is a one-line UserError naming the file; the caller decides whether it is a finding
(`otdoctor check`) or a usage error (`otdoctor estimate`).
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from otdoctor.data import load_table
from otdoctor.errors import UserError

_LIMITS = load_table("onetrainer_config.toml")["limits"]


class _TooDeep(Exception):
    pass


def _read_json_text(path: Path, what: str) -> str:
    """The file's text, refusing what no config is: a FIFO or device (reading one blocks or never
    ends), a folder, a file over the size limit, bytes that are not UTF-8."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise UserError(f"{what} not found: {path}", exit_code=2) from None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {what} {path}: {getattr(exc, 'strerror', None) or exc}", exit_code=2) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UserError(f"{what} {path} is not a regular file", exit_code=2)
    with os.fdopen(fd, "rb") as f:
        data = f.read(_LIMITS["json_bytes"] + 1)
    if len(data) > _LIMITS["json_bytes"]:
        raise UserError(f"{what} {path} is larger than {_LIMITS['json_bytes']:,} bytes: not a config", exit_code=2)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} {path} is not UTF-8 text (byte {exc.start})", exit_code=2) from None


def _printable(text: str) -> str:
    """Text every output can encode: a lone surrogate (JSON's "\\ud800") is kept as its escape."""
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode("utf-8")


def _clean(value: Any, max_depth: int) -> Any:
    """VALUE (fresh from json.loads, changed in place) with printable strings; nesting bounded."""
    if isinstance(value, str):
        return _printable(value)
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise _TooDeep
        if isinstance(node, dict):
            if not all(k.isascii() for k in node):
                items = [(_printable(k), v) for k, v in node.items()]
                node.clear()
                node.update(items)
            keys: Iterable[Any] = list(node)
        elif isinstance(node, list):
            keys = range(len(node))
        else:
            continue
        for k in keys:
            child = node[k]
            if isinstance(child, str):
                node[k] = _printable(child)
            elif isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return value


def parse_json(path: Path, what: str) -> Any:
    """The JSON value in PATH (WHAT names it in errors: "config", "concept file")."""
    text = _read_json_text(path, what)
    depth = _LIMITS["json_depth"]
    try:
        return _clean(json.loads(text), depth)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{what} {path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}", exit_code=2
        ) from None
    except (RecursionError, _TooDeep):
        raise UserError(f"{what} {path} nests deeper than {depth} levels: not a config", exit_code=2) from None
    except ValueError:  # the only other ValueError: an integer beyond sys.get_int_max_str_digits()
        raise UserError(
            f"{what} {path} holds an integer of more than {sys.get_int_max_str_digits():,} digits: not a config",
            exit_code=2,
        ) from None
