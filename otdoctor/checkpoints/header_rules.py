"""The safetensors format's rules for a header, as the reference implementation enforces them.

The header is UTF-8 JSON: one object whose `__metadata__` (optional) maps strings to strings and
whose other members are tensors `{"dtype": D, "shape": [n, ...], "data_offsets": [begin, end]}`,
every number a non-negative integer below 2**64. Sorted by their offsets, the tensors must tile the
data region from byte 0 without gap or overlap, each exactly `prod(shape) * bits(dtype) / 8` bytes
long. Each broken rule raises `InvalidHeader` naming the tensor and the rule, so a file the
`safetensors` library would refuse is never called good. Parsing is bounded: the nesting depth is
measured (linear time) before `json.loads` sees the text, and so are numbers too long for 2**64.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from itertools import accumulate
from typing import Any, NamedTuple

from otdoctor.data import load_table

_TABLE = load_table("models.toml")["safetensors"]
DTYPE_BITS: Mapping[str, int] = _TABLE["dtype_bits"]
MAX_HEADER_BYTES: int = _TABLE["max_header_bytes"]
MAX_NESTING: int = _TABLE["max_nesting"]
_U64 = 2**64
_MAX_DIGITS = len(str(_U64))  # 20: more digits cannot fit the format's unsigned 64-bit numbers

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)  # unrolled loop: one way to match, linear
_LONG_NUMBER = re.compile(rb"[0-9]{%d,}" % (_MAX_DIGITS + 1))
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_BRACKETS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[{]}"))


class HeaderError(ValueError):
    """The file is not a readable safetensors file; the message says what it is instead."""


class InvalidHeader(HeaderError):
    """A safetensors header that breaks the format's rules: the message names the rule."""


class Tensor(NamedTuple):  # a tuple: a header holds thousands, each built once
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def shown(value: Any, limit: int = 60) -> str:
    """A value from the file, quoted and cut short, safe to put in a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# Parsing ------------------------------------------------------------------------------------------
def nesting_depth(bare: bytes) -> int:
    """How deeply `[`/`{` nest in JSON whose strings were taken out; C-speed passes only, except for
    a header that nests in an odd pattern, which costs one pass in Python."""
    marks = bare.translate(_BRACKETS, _NOT_BRACKETS)
    if b"\x01" * (MAX_NESTING + 1) in marks:  # the usual attack: a long run of `[`
        return MAX_NESTING + 1
    return max(accumulate(memoryview(marks).cast("b")), default=0)


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:  # Python keeps the last, the format's parser refuses: refuse
            raise InvalidHeader(f"the name {shown(key)} appears twice in one object")
        out[key] = value
    return out


def _constant(name: str) -> Any:
    raise InvalidHeader(f"{name} is not a JSON number")


def parse_json(raw: bytes) -> Any:
    """The header's JSON value. ValueError when it is not UTF-8 JSON at all; InvalidHeader when its
    nesting, numbers, names or strings break the format. Each bound is checked before parsing."""
    text = raw.decode("utf-8")
    bare = _STRING.sub(b"", raw)
    if nesting_depth(bare) > MAX_NESTING:
        raise InvalidHeader(f"the JSON nests deeper than {MAX_NESTING} levels")
    long_number = _LONG_NUMBER.search(bare)
    if long_number:
        digits = long_number.end() - long_number.start()
        raise InvalidHeader(f"a number of {digits} digits (the format's numbers are below 2**64)")
    obj = json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant)
    if _SURROGATE_ESCAPE.search(raw):  # `\ud800` alone is valid to Python, not to the format's UTF-8
        try:
            json.dumps(obj, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidHeader("a string holds a lone surrogate escape (not valid UTF-8)") from None
    return obj


# Validation ---------------------------------------------------------------------------------------
def _count(value: Any, what: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _U64:
        raise InvalidHeader(f"tensor {shown(name)}: {what} {shown(value)} is not a non-negative integer")
    return value


def _tensor(name: str, info: Any) -> Tensor:
    if not isinstance(info, dict):
        raise InvalidHeader(f"tensor {shown(name)} is {shown(info)}, not an object with dtype, shape, data_offsets")
    missing = [k for k in ("dtype", "shape", "data_offsets") if k not in info]
    if missing:
        raise InvalidHeader(f"tensor {shown(name)} has no {', '.join(missing)}")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        known = ", ".join(DTYPE_BITS)
        raise InvalidHeader(f"tensor {shown(name)}: unknown dtype {shown(dtype)} (the format defines {known})")
    if not isinstance(shape, list):
        raise InvalidHeader(f"tensor {shown(name)}: shape {shown(shape)} is not a list of integers")
    if not isinstance(offsets, list) or len(offsets) != 2:
        raise InvalidHeader(f"tensor {shown(name)}: data_offsets {shown(offsets)} is not [begin, end]")
    dims = tuple(_count(n, "shape entry", name) for n in shape)
    begin, end = (_count(n, "data offset", name) for n in offsets)
    return Tensor(name, dtype, dims, begin, end)


def _metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidHeader(f"__metadata__ is {shown(value)}, not an object of strings")
    return value


def _byte_size(t: Tensor) -> int:
    elements = 1
    for n in t.shape:
        elements *= n
        if elements >= _U64:
            raise InvalidHeader(f"tensor {shown(t.name)}: shape {shown(list(t.shape))} is too large")
    bits = elements * DTYPE_BITS[t.dtype]
    if bits >= _U64:
        raise InvalidHeader(f"tensor {shown(t.name)}: shape {shown(list(t.shape))} is too large")
    if bits % 8:
        raise InvalidHeader(f"tensor {shown(t.name)}: {elements} x {t.dtype} is not a whole number of bytes")
    return bits // 8


def _offset_problem(t: Tensor, start: int, previous: str | None) -> str:
    where = f"tensor {shown(t.name)}: data_offsets [{t.begin}, {t.end}]"
    if t.end < t.begin:
        return f"{where} end before they begin"
    if t.begin < start:
        return f"{where} overlap tensor {shown(previous)} (bytes {t.begin}..{start})"
    return f"{where} leave bytes {start}..{t.begin} of the data unused"


def check_layout(tensors: list[Tensor]) -> int:
    """The tensors tile the data region from 0 without gap or overlap, each as long as its shape; its length."""
    start, previous = 0, None
    for t in sorted(tensors, key=lambda t: (t.begin, t.end)):
        if t.begin != start or t.end < t.begin:
            raise InvalidHeader(_offset_problem(t, start, previous))
        size = _byte_size(t)
        if t.end - t.begin != size:
            where = f"tensor {shown(t.name)}: data_offsets [{t.begin}, {t.end}]"
            raise InvalidHeader(f"{where} hold {t.end - t.begin} bytes; shape {list(t.shape)} of {t.dtype} is {size}")
        start, previous = t.end, t.name
    return start


def validate(obj: Any) -> tuple[dict[str, Tensor], dict[str, str], int]:
    """(tensors by name, metadata, length of the data region) of a parsed header, or InvalidHeader."""
    if not isinstance(obj, dict):
        raise InvalidHeader("the header is not a JSON object")
    metadata = _metadata(obj.get("__metadata__"))
    tensors = {name: _tensor(name, info) for name, info in obj.items() if name != "__metadata__"}
    return tensors, metadata, check_layout(list(tensors.values()))
