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

import os
import re
import string
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import AnyStr


def _compile(pattern: AnyStr, flags: int = 0) -> re.Pattern[AnyStr]:
    """Possessive quantifiers keep the patterns linear on Python 3.11+; Python 3.10's `re` lacks them,
    so there they are read as plain greedy ones (same matches, weaker time bound)."""
    if sys.version_info < (3, 11):
        text = pattern.decode("latin-1") if isinstance(pattern, bytes) else pattern
        text = re.sub(r"(?<!\\)([+*?}])\+", r"\1", text)
        return re.compile(text.encode("latin-1") if isinstance(pattern, bytes) else text, flags)
    return re.compile(pattern, flags)


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
# `pwd` only after a separator (`MY_PWD`, `db_pwd`): alone, PWD and OLDPWD are the shell's folders.
_PWD = r"pwd(?<=[a-z0-9][_.-]pwd)"
_SECRET_NAME = _compile(rf"(?:(?:{_STRONG})(?:[_.-][a-z0-9_.-]{{0,40}}+)?|(?:{_WEAK})|{_PWD}){_NOT_SECRET}$")
# `--pw X` too, and `--db-pwd X` (not `--pwd DIR`: a working directory).
_FLAG_WORDS = ("key", "token", "secret", "password", "passwd", "pass", "auth", "credential", "credentials", "pw")
_FLAG_NAME_ENDS = "|".join([f"(?<={w})" for w in _FLAG_WORDS] + ["(?<=[a-z0-9][_.-]pwd)"])

_Q = r"\\?[\"']"  # a quote, maybe escaped (a command line inside a JSON string)
_BARE = r"[^\s\"'\\&#]++"  # an unquoted value ends at a space, a quote, or the next URL query part
_QUOTED = r"[^\"'\\\n]++"

# Names are matched on the lower-cased text (same length, so spans carry over). Each pattern starts
# with its own literal word: an alternation of words would be tried at every position of the text.
_FLAG = _compile(
    # --wandb-key X, --password=Y, "--hf-token", "X" (an argv list in JSON), --token 'X'
    r"--(?<![a-z0-9_-]--)[a-z0-9][a-z0-9_.-]{0,60}+(?:" + _FLAG_NAME_ENDS + ")"
    rf"(?<!askpass)(?:{_Q})?(?:=|\s*+,\s*+|[ \t]++)(?:{_Q})?(?!--)(?P<v>[^\s\"'\\]++)"
)
# OT_CUSTOM_PASS=x, "hf_token": "x", token = 'x', ?access_token=x&..., and for the strong words
# also YAML or a log's `password: x` (a weak `key: x` is too often no secret at all).
_KEYED_VALUE = rf"(?:{_Q})?[ \t]*+(?:=[ \t]*+(?:{_Q}(?P<v>{_QUOTED})|(?P<b>{_BARE}))|:[ \t]*+{_Q}(?P<q>{_QUOTED})"
_KEYED = tuple(
    _compile(word + rest + _NOT_SECRET + _KEYED_VALUE + colon_bare + ")")
    for words, rest, colon_bare in (
        (_STRONG, r"(?:[_.-][a-z0-9_.-]{0,40}+)?", rf"|:[ \t]++(?P<c>{_BARE})"),
        (_WEAK, "", ""),
        (_PWD, "", rf"|:[ \t]++(?P<c>{_BARE})"),
    )
    for word in words.split("|")
)
# Options that mean a password only for one program: curl's `-u user:pass` (rsync's -u is no user),
# the password stuck to mysql's `-p` (`mysql -p db` prompts for it). Each is looked for in the
# _COMMAND_REACH characters after the program's name.
_COMMAND_REACH = 300
_ARG_GAP = rf"(?:[ \t]|{_Q},\s*+{_Q})"  # between two words, also of an argv list in JSON
_COMMAND_OPTIONS = (
    ("curl", _compile(rf"{_ARG_GAP}-(?:u|-user)(?:{_ARG_GAP}++|=)?+(?:{_Q})?[^\s:\"'\\]{{1,64}}+:(?P<v>{_BARE})")),
    ("mysql", _compile(rf"{_ARG_GAP}-p(?:'(?P<s>[^'\n]++)'|\"(?P<d>[^\"\n]++)\"|(?P<v>[^\s'\"\\]++))")),
)
_TOKEN_REST = _compile(r"[^\s'\"]*+")
# Authorization: Bearer x, X-Api-Key: x, "authorization": "token x"
_HEADERS = tuple(
    _compile(rf"{name}(?:{_Q})?[ \t]*+[:=][ \t]*+(?:{_Q})?(?:(?:bearer|token|basic)[ \t]++)?(?P<v>[^\s\"',}}\\]++)")
    for name in ("authorization", "api-key", "private-token")
)
_BEARER = _compile(r"bearer[ \t]++(?P<v>[a-z0-9._~+/=-]{8,}+)")
_LOWER_PATTERNS = (_FLAG, *_KEYED, *_HEADERS, _BEARER)
# Values a secret-named setting takes that are no secret (`use_auth=false`, `max_token_length=77`),
# the placeholders help texts and usage errors show (`--config-value KEY=VALUE`, `--token X`), and
# the type in a traceback's `def login(token: str)`.
_PLAIN_VALUE = _compile(r"true|false|none|null|yes|no|on|off|[0-9]{1,4}|\*\*\*|value|x|str|<[a-z_]{1,20}>")

# Shapes are case-sensitive and matched on the text itself.
_SHAPE_PATTERNS = (
    _compile(r"hf_(?<![A-Za-z0-9]hf_)[A-Za-z0-9]{20,}+"),
    _compile(r"gh[pousr]_(?<![A-Za-z0-9]gh._)[A-Za-z0-9]{20,}+"),
    _compile(r"github_pat_[A-Za-z0-9_]{20,}+"),
    _compile(r"sk-(?<![A-Za-z0-9_-]sk-)[A-Za-z0-9_-]{20,}+"),
    _compile(r"(?:AKIA|ASIA)(?<![A-Za-z0-9]....)[A-Z0-9]{16}(?![A-Za-z0-9])"),
    _compile(r"xox[abposr]-[A-Za-z0-9-]{10,}+"),
    _compile(r"eyJ[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]{8,}+"),
    # scheme://user:password@host, https://TOKEN@github.com (git remotes)
    _compile(r"://(?P<v>[^/\s@'\"]{1,256}+)@"),
)
_PRIVATE_KEY = _compile(r"-----BEGIN (?:[A-Z0-9]{1,20} ){0,3}PRIVATE KEY-----")  # bounded: linear
_PRIVATE_KEY_END = "-----END"
# Runs of key characters long enough to be a key are found on a byte copy where each such character
# is "a" (`bytes.translate` and `bytes.find` are far faster than a regex that starts with a class);
# which runs are random enough to be a key is decided by `_random_run`.
_RUN_CHARS = bytes.maketrans(
    (string.ascii_letters + string.digits + "+_-").encode(), b"a" * (len(string.ascii_letters + string.digits) + 3)
)
_MIN_RUN = 32
_RUN_END = _compile(rb"a*+")
_HEX = _compile(rb"[0-9a-fA-F]++")
# A UUID names a device or an object (`GPU-…` in CUDA_VISIBLE_DEVICES), not a credential.
_UUID = _compile(rb"(?:[A-Za-z]{1,8}-)?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Hex of these lengths is a digest (git commit: 40, sha256: 64, sha512: 128), shown on purpose.
_DIGEST_HEX_LENGTHS = (40, 64, 128)
# A random mixed-case run switches between upper case, lower case and digits at about 6 of 10
# characters; names (`TextEncoderLoRA_v2_Epoch10`, `ponyDiffusionV6XL`) stay in words and switch at
# most 0.44 of the time. The threshold keeps those names and catches about 98 of 100 random keys.
_CLASSES = bytes.maketrans(
    (string.ascii_uppercase + string.ascii_lowercase + string.digits + "+").encode(),
    b"U" * 26 + b"l" * 26 + b"d" * 10 + b"l",
)
_SWITCHES = (b"Ul", b"lU", b"Ud", b"dU", b"ld", b"dl")
_MIN_SWITCH_RATE = 0.45


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


def _random_run(run: bytes) -> bool:
    """A key (hex of a key's length, or a mixed-case run with digits), not a name or a digest."""
    if _HEX.fullmatch(run):
        return len(run) not in _DIGEST_HEX_LENGTHS
    if _UUID.fullmatch(run):
        return False
    classes = run.translate(_CLASSES, b"_-")
    if b"U" not in classes or b"l" not in classes or b"d" not in classes or len(classes) < 2:
        return False
    return sum(classes.count(s) for s in _SWITCHES) >= _MIN_SWITCH_RATE * (len(classes) - 1)


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


def _reach_end(text: str, program: str, at: int) -> int:
    """Where the search for PROGRAM's options (its name at AT) ends: _COMMAND_REACH characters
    after the last of its names that follow each other within reach (an argv list in JSON spans
    lines, so a line's end is no limit)."""
    while True:
        end = at + len(program) + _COMMAND_REACH
        last = text.rfind(program, at + 1, end)  # jump to the last name in reach, not to each
        if last < 0:
            return end
        at = last


def _command_option_spans(text: str) -> Iterator[tuple[int, int]]:
    """The values of _COMMAND_OPTIONS, each stretch of text searched once: linear time."""
    for program, option in _COMMAND_OPTIONS:
        at = text.find(program)
        while at >= 0:
            end = _reach_end(text, program, at)
            for m in option.finditer(text, at + len(program), end):
                start, stop = m.span(m.lastgroup or 0)
                # a value cut off by the end of the reach is masked to its end
                yield start, (_TOKEN_REST.match(text, stop).end() if stop == end else stop)  # type: ignore[union-attr]
            at = text.find(program, max(end - len(program) + 1, at + 1))


def _spans(text: str) -> list[tuple[int, int]]:
    """Where the secrets are. For each match, its value: the one named group that matched (v, b
    or q), else the whole match."""
    ascii_text = _ascii(text)
    low = ascii_text.lower().decode("ascii")  # names in any case; non-ASCII characters are never part of one
    found: list[tuple[int, int]] = []
    for pattern in _LOWER_PATTERNS:
        spans = (m.span(m.lastgroup or 0) for m in pattern.finditer(low))
        found += [(start, end) for start, end in spans if not _PLAIN_VALUE.fullmatch(low, start, end)]
    found += [(start, end) for start, end in _command_option_spans(low) if not _PLAIN_VALUE.fullmatch(low, start, end)]
    for pattern in _SHAPE_PATTERNS:
        found += [m.span(m.lastgroup or 0) for m in pattern.finditer(text)]
    found += [(start, end) for start, end in _runs(ascii_text) if _random_run(ascii_text[start:end])]
    found += _private_key_spans(text)
    return found


def _mask(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """TEXT with each span replaced by one MASK; spans that overlap or touch share one."""
    out: list[str] = []
    kept_from = 0  # where the text after the last mask starts
    masking = False
    for start, end in sorted(spans):
        if masking and start <= kept_from:  # overlaps or touches the last mask: widen it
            if end > kept_from:
                kept_from = end
            continue
        if start < end:
            out.append(text[kept_from:start])
            out.append(MASK)
            kept_from = end
            masking = True
    out.append(text[kept_from:])
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
