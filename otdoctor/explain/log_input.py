"""The log `otdoctor explain` reads: a regular file's tail, or stdin's; decoded the way it was written."""

from __future__ import annotations

import sys
from pathlib import Path

from otdoctor.errors import UserError
from otdoctor.probe.files import NotRegularFile, read_regular_tail

# Logs of a failed install can be large; the interesting part is near the end.
MAX_BYTES = 8 * 1024 * 1024
_CHUNK = 1 << 20


def _stdin_tail(limit: int) -> bytes:
    """The last LIMIT bytes of stdin, read in chunks so an endless pipe never fills memory."""
    kept = bytearray()
    while chunk := sys.stdin.buffer.read(_CHUNK):
        kept += chunk
        if len(kept) > 2 * limit:
            del kept[:-limit]
    return bytes(kept[-limit:])


def _file_tail(path: Path, limit: int) -> bytes:
    try:
        return read_regular_tail(path, limit)
    except IsADirectoryError:
        raise UserError(f"{path} is a folder; give the log file inside it", exit_code=2) from None
    except FileNotFoundError:
        raise UserError(f"log file not found: {path}", exit_code=2) from None
    except NotRegularFile as exc:
        # One line: a pipe or a device given as the log (save the output to a file, or pipe it to `-`).
        raise UserError(f"cannot read {path}: {exc.strerror}; give a log file or - for stdin", exit_code=2) from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}", exit_code=2) from None


def decode(data: bytes) -> str:
    """Text from a log's bytes: UTF-8, or the UTF-16 that PowerShell's `>` writes (BOM or not)."""
    if data[:2] == b"\xfe\xff":
        return data[2:].decode("utf-16-be", errors="replace")
    if data[:2] == b"\xff\xfe" or data[1::2].count(0) > len(data) // 4:
        # Only the tail may have been read: the BOM is gone and the first byte may be half a unit.
        start = 2 if data[:2] == b"\xff\xfe" else len(data) % 2
        return data[start:].decode("utf-16-le", errors="replace")
    return data.decode("utf-8", errors="replace")


def read_input(source: str, limit: int = MAX_BYTES) -> str:
    """A log's text (its last LIMIT bytes): the file SOURCE, or stdin for `-`."""
    if source == "-":
        name, data = "stdin", _stdin_tail(limit)
    else:
        path = Path(source).expanduser()
        name, data = str(path), _file_tail(path, limit)
    if not data.strip():
        raise UserError(f"{name} is empty: nothing to explain", exit_code=2)
    text = decode(data)
    # A model, image or archive passed by mistake would otherwise read as "no known problem".
    if "\x00" in text or text.count("\ufffd") > len(text) // 10:
        raise UserError(
            f"{name} is binary data, not a text log",
            exit_code=2,
            hint="give the terminal output of OneTrainer, e.g. `./start-ui.sh 2>&1 | tee ot.log`",
        )
    return text
