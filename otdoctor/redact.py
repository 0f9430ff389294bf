"""Removing secrets from text at the one place where text leaves the program.

Every renderer, log writer and report passes its text through `redact`. Known secret values (the
tokens otdoctor itself read from the environment, token files or secrets.json) are registered with
`register_secret` and replaced wherever they appear; patterns catch the rest (Hugging Face tokens,
`?token=` in URLs, Authorization headers).
"""

from __future__ import annotations

import re
import threading

MASK = "***"

_known: set[str] = set()
_lock = threading.Lock()

# Environment variables whose values are secrets (read at start-up by `register_env_secrets`).
SECRET_ENV_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_TOKEN", "CIVITAI_TOKEN", "CIVITAI_API_KEY")

_PATTERNS = [
    # Hugging Face user access tokens.
    (re.compile(r"\bhf_[A-Za-z0-9]{20,}\b"), MASK),
    # token=..., api_key=..., key=... in URLs and query strings.
    (re.compile(r"(?i)([?&;](?:token|api_key|apikey|access_token|key)=)[^&\s\"'#]+"), r"\1" + MASK),
    # Authorization / X-Api-Key headers, in any quoting.
    (re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?(?:bearer|token|basic)?\s*)[^\s\"',}]+"), r"\1" + MASK),
    # "huggingface_token": "..." and similar keys in JSON or TOML.
    (
        re.compile(r"(?i)([\"']?[a-z_]*(?:token|api_key|apikey|secret|password)[\"']?\s*[:=]\s*[\"'])[^\"']+([\"'])"),
        r"\1" + MASK + r"\2",
    ),
    # VAR=value for the known secret variables (env dumps, shell lines).
    (re.compile(r"\b((?:" + "|".join(SECRET_ENV_VARS) + r")=)\S+"), r"\1" + MASK),
    # Credentials in URLs (`https://user:password@host`, `https://TOKEN@github.com`: git remotes).
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@'\"]+@"), r"\1" + MASK + "@"),
    # GitHub tokens (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_).
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})\b"), MASK),
]


def register_secret(value: str | None) -> None:
    """Remember a secret value so that it is masked wherever it shows up later."""
    if value and len(value.strip()) >= 6:
        with _lock:
            _known.add(value.strip())


def register_env_secrets(env: dict[str, str] | None = None) -> None:
    import os

    env = dict(os.environ) if env is None else env
    for name in SECRET_ENV_VARS:
        register_secret(env.get(name))


def redact(text: str) -> str:
    if not text:
        return text
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text
