"""Removing secrets from text at the one place where text leaves the program.

Every renderer, log writer and report passes its text through `redact`. Three kinds of evidence
mark a secret, and each gives the span of text to mask:

- known values: the tokens otdoctor itself read (secret-named environment variables, token files,
  secrets.json) are registered with `register_secret` and masked wherever they appear;
- structure: the value after a secret-named option (`--wandb-key X`, `--password=Y`, also as a JSON
  list `"--hf-token", "X"`), a secret-named key or variable (`OT_CUSTOM_PASS=...`, `"hf_token": "..."`,
  `?token=...`), an Authorization header or bearer token, and the `user:pass@` of a URL;
- shape: Hugging Face (`hf_`), GitHub (`ghp_`, `github_pat_`), OpenAI (`sk-`), AWS (`AKIA`), Slack
  and JWT tokens, private key blocks, and long random runs (hex of a key's length, mixed-case
  base64 with digits).

Text can be megabytes on one line (a log, a report), so every pattern runs in linear time: each
starts with a literal or a cheap class, its quantifiers are possessive or bounded, and names are
matched on a lower-cased copy instead of with `re.IGNORECASE` (which disables the fast literal
search). Case-insensitive names are therefore written in lower case below.
"""

from __future__ import annotations

import math
import os
import re
import string
import threading
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping

MASK = "***"

_known: set[str] = set()
_lock = threading.Lock()

# Environment variables otdoctor itself reads tokens from (docs/commands name them).
SECRET_ENV_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_TOKEN", "CIVITAI_TOKEN", "CIVITAI_API_KEY")

# A name is secret-like when it contains a strong word followed by at most a suffix (`MY_PASSWORD_2`,
# `hf_token`) or ends with a weak word (`OT_CUSTOM_PASS`, `--wandb-key`), unless its tail says it
# holds a path, a switch or a program (`HF_TOKEN_PATH`, `SSH_AUTH_SOCK`, `GIT_ASKPASS`).
_STRONG = r"password|passwd|secret|token|credentials?|api_?key|access_?key|private_?key"  # literal first
_WEAK = r"key|pass|auth"
_NOT_SECRET_TAILS = ("path", "file", "dir", "url", "home", "sock", "endpoint", "askpass", "back_pass")
_NOT_SECRET = "".join(f"(?<!{t})" for t in _NOT_SECRET_TAILS)
_SECRET_NAME = re.compile(rf"(?:(?:{_STRONG})(?:[_.-][a-z0-9_.-]{{0,40}}+)?|(?:{_WEAK})){_NOT_SECRET}$")
_FLAG_WORDS = ("key", "token", "secret", "password", "passwd", "pass", "auth", "credential", "credentials")

_Q = r"\\?[\"']"  # a quote, maybe escaped (a command line inside a JSON string)
_BARE = r"[^\s\"'\\&#]++"  # an unquoted value ends at a space, a quote, or the next URL query part
_QUOTED = r"[^\"'\\\n]++"

# Names are matched on the lower-cased text (same length, so spans carry over). Each pattern starts
# with its own literal word: an alternation of words would be tried at every position of the text.
_FLAG = re.compile(
    # --wandb-key X, --password=Y, "--hf-token", "X" (an argv list in JSON), --token 'X'
    r"--(?<![a-z0-9_-]--)[a-z0-9][a-z0-9_.-]{0,60}+(?:" + "|".join(f"(?<={w})" for w in _FLAG_WORDS) + ")"
    rf"(?<!askpass)(?:{_Q})?(?:=|[ \t]*+,[ \t]*+|[ \t]++)(?:{_Q})?(?!--)(?P<v>[^\s\"'\\]++)"
)
# OT_CUSTOM_PASS=x, "hf_token": "x", token = 'x', ?access_token=x&...
_KEYED_VALUE = rf"(?:{_Q})?[ \t]*+(?:=[ \t]*+(?:{_Q}(?P<v>{_QUOTED})|(?P<b>{_BARE}))|:[ \t]*+{_Q}(?P<q>{_QUOTED}))"
_KEYED = tuple(
    re.compile(word + rest + _NOT_SECRET + _KEYED_VALUE)
    for words, rest in ((_STRONG, r"(?:[_.-][a-z0-9_.-]{0,40}+)?"), (_WEAK, ""))
    for word in words.split("|")
)
# Authorization: Bearer x, X-Api-Key: x, "authorization": "token x"
_HEADERS = tuple(
    re.compile(rf"{name}(?:{_Q})?[ \t]*+[:=][ \t]*+(?:{_Q})?(?:(?:bearer|token|basic)[ \t]++)?(?P<v>[^\s\"',}}\\]++)")
    for name in ("authorization", "api-key", "private-token")
)
_BEARER = re.compile(r"bearer[ \t]++(?P<v>[a-z0-9._~+/=-]{8,}+)")
_LOWER_PATTERNS = (_FLAG, *_KEYED, *_HEADERS, _BEARER)

# Shapes are case-sensitive and matched on the text itself.
_SHAPE_PATTERNS = (
    re.compile(r"hf_(?<![A-Za-z0-9]hf_)[A-Za-z0-9]{20,}+"),
    re.compile(r"gh[pousr]_(?<![A-Za-z0-9]gh._)[A-Za-z0-9]{20,}+"),
    re.compile(r"github_pat_[A-Za-z0-9_]{20,}+"),
    re.compile(r"sk-(?<![A-Za-z0-9_-]sk-)[A-Za-z0-9_-]{20,}+"),
    re.compile(r"(?:AKIA|ASIA)(?<![A-Za-z0-9]....)[A-Z0-9]{16}(?![A-Za-z0-9])"),
    re.compile(r"xox[abposr]-[A-Za-z0-9-]{10,}+"),
    re.compile(r"eyJ[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]{8,}+"),
    # scheme://user:password@host, https://TOKEN@github.com (git remotes)
    re.compile(r"://(?P<v>[^/\s@'\"]{1,256}+)@"),
)
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]{0,40}+PRIVATE KEY-----")
_PRIVATE_KEY_END = "-----END"
# Runs of key characters long enough to be a key are found on a byte copy where each such character
# is "a" (`bytes.translate` and `bytes.find` are far faster than a regex that starts with a class);
# which runs are random enough to be a key is decided by `_random_run`.
_RUN_CHARS = bytes.maketrans(
    (string.ascii_letters + string.digits + "+_-").encode(), b"a" * (len(string.ascii_letters + string.digits) + 3)
)
_MIN_RUN = 32
_RUN_END = re.compile(rb"a*+")
_HEX = re.compile(r"[0-9a-fA-F]++")
_RUN_PIECES = re.compile(r"[_-]")
_UPPER = re.compile(r"[A-Z]")
_LOWER = re.compile(r"[a-z]")
_TWO_DIGITS = re.compile(r"[0-9][^0-9]*+[0-9]")
# Hex of these lengths is a digest (git commit: 40, sha256: 64, sha512: 128), shown on purpose.
_DIGEST_HEX_LENGTHS = (40, 64, 128)
_MIN_PIECE = 24
_MIN_ENTROPY_BITS = 3.8


def is_secret_name(name: str) -> bool:
    """Does NAME (an environment variable, a JSON key, an option) say its value is a secret?"""
    return bool(_SECRET_NAME.search(name.lower()[-120:]))


def register_secret(value: str | None) -> None:
    """Remember a secret value so that it is masked wherever it shows up later."""
    value = (value or "").strip()
    if len(value) >= 6 and value.strip("*"):
        with _lock:
            _known.add(value)


def register_env_secrets(env: Mapping[str, str] | None = None) -> None:
    """Register the value of every secret-named environment variable (HF_TOKEN, OT_CUSTOM_PASS...)."""
    env = os.environ if env is None else env
    for name, value in env.items():
        if name in SECRET_ENV_VARS or is_secret_name(name):
            register_secret(value)


def _entropy_bits(text: str) -> float:
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def _random_piece(piece: str) -> bool:
    return (
        len(piece) >= _MIN_PIECE
        and _UPPER.search(piece) is not None
        and _LOWER.search(piece) is not None
        and _TWO_DIGITS.search(piece) is not None
        and _entropy_bits(piece) >= _MIN_ENTROPY_BITS
    )


def _random_run(run: str) -> bool:
    """A key (hex of a key's length, or mixed-case base64 with digits), not a name or a digest."""
    if _HEX.fullmatch(run):
        return len(run) not in _DIGEST_HEX_LENGTHS
    return any(_random_piece(p) for p in _RUN_PIECES.split(run))


def _value_span(m: re.Match[str]) -> tuple[int, int]:
    """The value's span: the one named group that matched (v, b or q), else the whole match."""
    return m.span(m.lastgroup or 0)


def _ascii(text: str) -> bytes:
    """TEXT with one byte per character (`?` for any non-ASCII one), so positions carry over."""
    return text.encode("ascii", "replace")


def _runs(ascii_text: bytes) -> Iterator[tuple[int, int]]:
    marked = ascii_text.translate(_RUN_CHARS)
    seed = b"a" * _MIN_RUN
    start = marked.find(seed)
    while start >= 0:
        end = _RUN_END.match(marked, start).end()  # type: ignore[union-attr]  # a*+ always matches
        yield start, end
        start = marked.find(seed, end)


def _private_key_spans(text: str) -> Iterator[tuple[int, int]]:
    for m in _PRIVATE_KEY.finditer(text):
        end = text.find(_PRIVATE_KEY_END, m.end())
        yield m.end(), (len(text) if end < 0 else end)


def _spans(text: str) -> Iterator[tuple[int, int]]:
    ascii_text = _ascii(text)
    low = ascii_text.lower().decode("ascii")  # names in any case; non-ASCII characters are never part of one
    for pattern in _LOWER_PATTERNS:
        yield from (_value_span(m) for m in pattern.finditer(low))
    for pattern in _SHAPE_PATTERNS:
        yield from (_value_span(m) for m in pattern.finditer(text))
    yield from ((start, end) for start, end in _runs(ascii_text) if _random_run(text[start:end]))
    yield from _private_key_spans(text)


def _mask(text: str, spans: Iterable[tuple[int, int]]) -> str:
    out: list[str] = []
    done = 0
    for start, end in sorted(spans):
        if end <= done or start == end:
            continue
        if start >= done:
            out.append(text[done:start])
            out.append(MASK)
        done = end  # a span overlapping the last one extends its mask
    out.append(text[done:])
    return "".join(out)


def redact(text: str) -> str:
    """TEXT with every secret value replaced by `***`; everything else kept as it was."""
    if not text:
        return text
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    return _mask(text, _spans(text))
