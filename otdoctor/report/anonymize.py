"""Making text safe to share in a public bug report: secrets out, personal names replaced.

`otdoctor.redact.redact` already removes secrets from every text that leaves the program (known
values, secret-named options, keys and variables, credentials in URLs, token shapes). A report
that a user pastes into a public GitHub issue needs more:

- every value that *could* be a secret is registered with `redact.register_secret`, so it is
  masked wherever it shows up (an install log, pip freeze, a config): the values of secret-named
  environment variables; every string in OneTrainer's `secrets.json`; the Hugging Face token file;
  git credentials;
- the card's identity: a GPU's UUID becomes `GPU-<uuid>`;
- the home folder becomes `~`, the user name `<user>`, the host name `<host>`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otdoctor.redact import redact, register_env_secrets, register_secret

_MAX_SECRETS_FILE_CHARS = 1_000_000  # token files and secrets.json are a few hundred bytes

USER_MASK = "<user>"
HOST_MASK = "<host>"

# A GPU's UUID identifies one physical card (kept replayable: still a string in the snapshot).
_GPU_UUID = re.compile(r"\bGPU-[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")

# Names that identify nobody (and would mangle ordinary words if replaced); a one-letter name too.
_MIN_NAME_LEN = 2
_COMMON_NAMES = {"localhost", "root", "user", "admin", "ubuntu", "debian", "runner", "home"}


def _strings(value: Any) -> Iterable[str]:
    """Every string inside a JSON value (secrets.json may nest)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def register_file_secrets(path: Path) -> bool:
    """Register every string in a secrets file (JSON) or every word of a token file. True when read."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would block the report forever
            return False
        with path.open(encoding="utf-8", errors="replace") as fh:
            text = fh.read(_MAX_SECRETS_FILE_CHARS)
    except OSError:
        return False
    try:
        values = list(_strings(json.loads(text)))
    except (ValueError, RecursionError):
        values = text.split()
    for value in values:
        register_secret(value)
    # The raw text too: a secrets file with a JSON error still must not leak line by line.
    for line in text.splitlines():
        m = re.search(r":\s*\"([^\"]{6,})\"", line)
        if m:
            register_secret(m.group(1))
    return True


def _git_credentials(text: str) -> Iterable[str]:
    for m in re.finditer(r"://([^:@/\s]+):([^@/\s]+)@", text):
        yield m.group(2)


@dataclass(frozen=True)
class Anonymizer:
    """Callable: text in, shareable text out."""

    homes: tuple[str, ...]
    users: tuple[str, ...]
    hosts: tuple[str, ...]

    def __call__(self, text: str) -> str:
        if not text:
            return text
        text = _GPU_UUID.sub("GPU-<uuid>", redact(text))
        for home in self.homes:  # longest first, so /home/a/b is not cut at /home/a
            text = re.sub(re.escape(home) + r"(?=/|\\|\b|$)", "~", text)
        for name in self.users:
            text = _replace_word(text, name, USER_MASK)
        for name in self.hosts:
            text = _replace_word(text, name, HOST_MASK)
        return text

    def value(self, value: Any) -> Any:
        """Anonymise every string in a JSON-like value (keys too: paths can be keys)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {self(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value


def _replace_word(text: str, name: str, mask: str) -> str:
    # A name counts where it is not part of a longer word: `alice` in /home/alice and alice@box,
    # never inside `malice`. Case-insensitive, because host names are.
    return re.sub(r"(?i)(?<![A-Za-z0-9])" + re.escape(name) + r"(?![A-Za-z0-9])", mask, text)


def _register_machine_secrets(
    env: Mapping[str, str], home: Path, ot_dir: Path | None, secret_files: Iterable[Path]
) -> None:
    register_env_secrets(env)
    files = list(secret_files)
    if ot_dir is not None:
        files.append(ot_dir / "secrets.json")
    hf_home = Path(env.get("HF_HOME") or home / ".cache" / "huggingface")
    files += [Path(env["HF_TOKEN_PATH"])] if env.get("HF_TOKEN_PATH") else []
    files += [hf_home / "token", home / ".huggingface" / "token"]
    for f in files:
        register_file_secrets(f)  # a missing or unreadable file has no secret to learn
    for cred in (home / ".git-credentials",):
        try:
            for secret in _git_credentials(cred.read_text(errors="replace")):
                register_secret(secret)
        except OSError:
            pass


def _home_paths(home: Path) -> set[str]:
    homes = {str(home)}
    with contextlib.suppress(OSError):
        homes.add(str(home.resolve()))
    return {h.rstrip("/") for h in homes if h and h.rstrip("/")}


def _user_names(env: Mapping[str, str], home: Path) -> set[str]:
    users: set[str] = {home.name}
    for var in ("USER", "LOGNAME", "USERNAME", "SUDO_USER"):
        if env.get(var):
            users.add(env[var])
    try:
        import pwd

        users.add(pwd.getpwuid(os.getuid()).pw_name)
    except (ImportError, KeyError, OSError):
        pass
    return users


def _host_names(env: Mapping[str, str]) -> set[str]:
    hosts: set[str] = set()
    for var in ("OTDOCTOR_HOSTNAME", "HOSTNAME", "COMPUTERNAME"):
        if env.get(var):
            hosts.add(env[var])
    with contextlib.suppress(OSError):
        hosts.add(socket.gethostname())  # never getfqdn(): that asks DNS, and --offline means offline
    for h in list(hosts):
        hosts.add(h.split(".")[0])
    return hosts


def _keep(names: set[str]) -> tuple[str, ...]:
    ok = {n for n in names if len(n) >= _MIN_NAME_LEN and n.lower() not in _COMMON_NAMES}
    return tuple(sorted(ok, key=len, reverse=True))


def for_machine(
    env: Mapping[str, str],
    home: Path,
    ot_dir: Path | None = None,
    secret_files: Iterable[Path] = (),
) -> Anonymizer:
    """Register this machine's secrets and learn its personal names."""
    _register_machine_secrets(env, home, ot_dir, secret_files)
    homes = _home_paths(home)
    return Anonymizer(
        tuple(sorted(homes, key=len, reverse=True)), _keep(_user_names(env, home)), _keep(_host_names(env))
    )
