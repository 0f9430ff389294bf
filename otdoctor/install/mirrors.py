"""Installing without GitHub: git mirrors and pip's index options, handed to git and pip by environment.

`otdoctor install` and `otdoctor fix` clone OneTrainer and let pip clone the git requirements
OneTrainer names (`-e git+https://github.com/huggingface/diffusers.git@1ffa423#egg=diffusers`). On an
air-gapped machine every one of those URLs must be read from a mirror. Rewriting the requirement
files would change the user's checkout, so the rewrite happens in git itself: each mirror becomes a
`url.<mirror>.insteadOf <original>` setting passed in the environment (`GIT_CONFIG_COUNT`,
`GIT_CONFIG_KEY_n`, `GIT_CONFIG_VALUE_n`, git >= 2.31), which every git that pip starts inherits.
The checkout keeps `https://github.com/...` as its origin, so it stays a checkout of upstream.

pip's own options travel the same way: `--pip-arg=--index-url=URL` becomes `PIP_INDEX_URL=URL`,
the environment variable pip reads for that option, so the pip upgrade, the requirements and every
repair use them alike.

A mirror that is itself a partial clone (`git clone --filter=...`) lacks objects; asked for one,
git would fetch it from the mirror's own origin, which the rewrite points back at the mirror: a
loop. Such a mirror, a mirror that is not a repository, and a mirror without the commit a
requirement pins are refused up front with what to do instead.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from otdoctor.errors import UserError
from otdoctor.onetrainer import requirements as reqs
from otdoctor.probe import Probe
from otdoctor.redact import redact, register_secret

GITHUB = "https://github.com/"
# `owner/name`: GitHub's shorthand, for the repositories OneTrainer names.
_SHORTHAND = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_PIP_OPTION = re.compile(r"^--([a-z][a-z0-9-]*)(?:[= ](.*))?$", re.S)
# The variables the command line's mirrors and pip options set, by name.
PASSED = "OTDOCTOR_SOURCES_ENV"


@dataclass(frozen=True)
class Mirror:
    """Read `source` (a URL prefix) from `target` (a URL or a local path) instead."""

    source: str
    target: str

    @property
    def local_path(self) -> Path | None:
        return local_path(self.target)

    @property
    def whole_repository(self) -> bool:
        """A mirror of one repository, not of a prefix (`https://github.com/` for a folder of mirrors)."""
        return not self.source.endswith(("/", ":"))


def local_path(url: str) -> Path | None:
    """The folder a git URL names on this machine, or None for a remote one."""
    if url.startswith("file://"):
        return Path(urlsplit(url).path)
    if "://" in url or re.match(r"^[\w.-]+@[\w.-]+:", url):
        return None
    return Path(url)


@dataclass(frozen=True)
class Sources:
    """Where an install reads from: git mirrors and pip options, as the user gave them."""

    mirrors: tuple[Mirror, ...] = ()
    pip_args: tuple[str, ...] = ()

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        """BASE (the user's environment) plus the settings that make git and pip read from here."""
        ours = {**git_env(self.mirrors, base), **pip_env(self.pip_args)}
        # Named, so that a printed command line can carry these (the user's own are in their shell already).
        return {**base, **ours, PASSED: " ".join(ours)}


def _sources_of(source: str) -> list[str]:
    """The URL prefixes one mirror stands for: `owner/name` means GitHub's URL with and without `.git`."""
    if _SHORTHAND.match(source):
        name = source.removesuffix(".git")
        return [f"{GITHUB}{name}.git", f"{GITHUB}{name}"]
    if "://" in source or re.match(r"^[\w.-]+@[\w.-]+:", source):
        return [source]
    raise UserError(
        f"--git-mirror {source!r}: name a repository as OWNER/NAME (huggingface/diffusers) or by a URL prefix",
        hint="e.g. --git-mirror huggingface/diffusers=/srv/mirrors/diffusers.git",
    )


def _target(raw: str, cwd: Path) -> str:
    if "://" in raw or re.match(r"^[\w.-]+@[\w.-]+:", raw):
        parts = urlsplit(raw)
        register_secret(parts.password)
        return raw
    path = Path(raw).expanduser()
    return str(path if path.is_absolute() else (cwd / path).resolve())


def parse_mirror(spec: str, cwd: Path) -> list[Mirror]:
    """`NAME=URL` from the command line: one mirror per URL form NAME stands for."""
    source, sep, target = spec.partition("=")
    if not sep or not source.strip() or not target.strip():
        raise UserError(
            f"--git-mirror {redact(spec)!r} is not NAME=URL",
            hint="e.g. --git-mirror huggingface/diffusers=/srv/mirrors/diffusers.git",
        )
    to = _target(target.strip(), cwd)
    return [Mirror(s, to) for s in _sources_of(source.strip())]


def read_mirrors_file(path: Path, cwd: Path) -> Sources:
    """A TOML file: `[git]` maps NAME to URL (as --git-mirror), `[pip] args` lists pip options."""
    try:
        data = tomllib.loads(path.expanduser().read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read the mirrors file {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"the mirrors file {path} is not valid TOML: {exc}") from None
    git = data.get("git", {})
    pip_args = data.get("pip", {}).get("args", [])
    if not isinstance(git, dict) or not all(isinstance(v, str) for v in git.values()):
        raise UserError(f'the mirrors file {path}: [git] must map NAME = "URL or path"')
    if not isinstance(pip_args, list) or not all(isinstance(a, str) for a in pip_args):
        raise UserError(f"the mirrors file {path}: [pip] args must be a list of strings")
    base = path.expanduser().resolve().parent  # relative mirror paths are relative to the file
    mirrors = [m for name, url in git.items() for m in parse_mirror(f"{name}={url}", base)]
    return Sources(tuple(mirrors), tuple(pip_args))


def gather(specs: Sequence[str], files: Sequence[Path], pip_args: Sequence[str], cwd: Path) -> Sources:
    """The command line's --git-mirror, --mirrors and --pip-arg as one `Sources` (the command line last, so it wins)."""
    mirrors: list[Mirror] = []
    args: list[str] = []
    for f in files:
        got = read_mirrors_file(f, cwd)
        mirrors.extend(got.mirrors)
        args.extend(got.pip_args)
    for spec in specs:
        mirrors.extend(parse_mirror(spec, cwd))
    args.extend(pip_args)
    pip_env(args)  # refuse a malformed option now, before anything runs
    return Sources(tuple(mirrors), tuple(args))


def git_env(mirrors: Iterable[Mirror], base: Mapping[str, str]) -> dict[str, str]:
    """`url.<target>.insteadOf=<source>` for each mirror, appended to any GIT_CONFIG_* already set."""
    mirrors = list(mirrors)
    if not mirrors:
        return {}
    try:
        start = int(base.get("GIT_CONFIG_COUNT") or 0)
    except ValueError:
        start = 0
    env = {"GIT_CONFIG_COUNT": str(start + len(mirrors)), "GIT_NO_LAZY_FETCH": "1"}
    for i, m in enumerate(mirrors, start):
        env[f"GIT_CONFIG_KEY_{i}"] = f"url.{m.target}.insteadOf"
        env[f"GIT_CONFIG_VALUE_{i}"] = m.source
    return env


def pip_env(args: Iterable[str]) -> dict[str, str]:
    """pip options as pip's environment variables: `--find-links=DIR` -> PIP_FIND_LINKS=DIR.

    A repeated option (`--extra-index-url`, `--find-links`) gets its values joined by spaces, the
    way pip splits them; a flag (`--no-index`) gets "1".
    """
    env: dict[str, str] = {}
    for arg in args:
        m = _PIP_OPTION.match(arg.strip())
        if not m:
            raise UserError(
                f"--pip-arg {redact(arg)!r}: give pip's long option, as --pip-arg=--index-url=URL",
                hint="short options (-i, -f) have long forms (--index-url, --find-links)",
            )
        name = "PIP_" + m.group(1).upper().replace("-", "_")
        value = (m.group(2) or "1").strip()
        env[name] = f"{env[name]} {value}" if name in env and m.group(2) else value
    return env


def shell_prefix(env: Mapping[str, str], pip: bool = True) -> str:
    """The git (and pip) settings of ENV as `env VAR=... `, so that a printed command line carries them."""
    from shlex import quote

    keys = [k for k in env.get(PASSED, "").split() if k in env and (pip or not k.startswith("PIP_"))]
    if not keys:
        return ""
    return "env " + " ".join(f"{k}={quote(env[k])}" for k in keys) + " "


def active(env: Mapping[str, str]) -> list[Mirror]:
    """The insteadOf rewrites ENV sets up (ours or the user's own GIT_CONFIG_* settings)."""
    out = []
    for i in range(_count(env)):
        key = env.get(f"GIT_CONFIG_KEY_{i}", "")
        m = re.match(r"^url\.(.+)\.insteadof$", key, re.I)
        if m and env.get(f"GIT_CONFIG_VALUE_{i}"):
            out.append(Mirror(env[f"GIT_CONFIG_VALUE_{i}"], m.group(1)))
    return out


def _count(env: Mapping[str, str]) -> int:
    try:
        return int(env.get("GIT_CONFIG_COUNT") or 0)
    except ValueError:
        return 0


def rewrite(url: str, mirrors: Iterable[Mirror]) -> tuple[str, Mirror | None]:
    """URL as git will fetch it: the longest matching source prefix wins, as in git."""
    best = max((m for m in mirrors if url.startswith(m.source)), key=lambda m: len(m.source), default=None)
    if best is None:
        return url, None
    return best.target + url[len(best.source) :], best


def mirror_problem(probe: Probe, path: Path) -> str | None:
    """Why a local mirror cannot serve clones: missing, not a repository, or a partial clone."""
    if not path.exists():
        return "does not exist"
    git_dir = probe.git(path, "rev-parse", "--git-dir")
    if not git_dir.ok:
        return "is not a git repository"
    config = probe.git(path, "config", "--get-regexp", r"^(extensions\.partialclone|remote\..*\.promisor)$")
    if config.ok and config.stdout.strip():
        return "is a partial clone (objects are missing; git would ask its origin for them)"
    return None


def check_mirrors(probe: Probe, mirrors: Iterable[Mirror]) -> None:
    """Refuse a local mirror that cannot serve a clone, before anything runs."""
    seen: set[str] = set()
    for m in mirrors:
        path = m.local_path
        if path is None or not m.whole_repository or m.target in seen:
            continue
        seen.add(m.target)
        problem = mirror_problem(probe, path)
        if problem:
            raise UserError(
                f"git mirror {redact(m.target)} (for {redact(m.source)}) {problem}",
                hint=_full_mirror_hint(m.target, m.source),
            )


def _full_mirror_hint(target: str, source: str) -> str:
    return f"make a full mirror where GitHub is reachable: git clone --mirror {source} {redact(target)}"


def check_requirement_commits(probe: Probe, files: Sequence[Path]) -> None:
    """Each `git+URL@COMMIT` requirement whose URL a local mirror serves: the mirror has that commit."""
    mirrors = active(probe.env)
    if not mirrors:
        return
    check_mirrors(probe, mirrors)
    for line in reqs.read(files).lines:
        if not line.url or not line.url.startswith("git+") or not line.vcs_ref:
            continue
        repo_url = line.url[4:].split("#", 1)[0].rsplit("@", 1)[0]
        target, mirror = rewrite(repo_url, mirrors)
        path = local_path(target) if mirror else None
        if path is None:
            continue
        problem = mirror_problem(probe, path)
        if problem:
            raise UserError(
                f"git mirror {redact(target)} (for {repo_url}) {problem}", hint=_full_mirror_hint(target, repo_url)
            )
        if probe.git(path, "cat-file", "-e", f"{line.vcs_ref}^{{commit}}").ok:
            continue
        raise UserError(
            f"git mirror {redact(target)} has no commit {line.vcs_ref}, which {line.file.name} pins for {line.name}",
            hint=f"update the mirror where GitHub is reachable: git -C {os.fspath(path)} fetch --all",
        )
