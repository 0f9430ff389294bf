"""Reading pip requirements files and comparing them with what a venv has installed.

OneTrainer's launcher runs `pip install -r requirements-global.txt -r <platform file>`; after a
`git pull` without `./update.sh` the files ask for versions the venv does not have. This module
reads the files the way pip does (the parts OneTrainer uses: `-r`, `-c`, index options, `-e
git+URL@REF#egg=NAME`, `NAME @ URL`, markers, `--hash`, line continuations, comments) and judges
each line against the venv's installed distributions with `packaging`, evaluating markers for
the venv's interpreter (not otdoctor's).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from packaging.markers import InvalidMarker, Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from otdoctor.probe.files import read_regular_bytes

# Options that take a value, as pip's requirements-file parser knows them.
_INDEX_OPTIONS = {
    "-i": "index_urls",
    "--index-url": "index_urls",
    "--extra-index-url": "extra_index_urls",
    "-f": "find_links",
    "--find-links": "find_links",
}
_VALUE_OPTIONS = {
    "--trusted-host",
    "--no-binary",
    "--only-binary",
    "--use-feature",
    "--config-settings",
    "--global-option",
    "--hash",
    "-C",
}
_FLAG_OPTIONS = {"--pre", "--prefer-binary", "--no-index", "--require-hashes"}
# A `#` at the start or after whitespace starts a comment; `--opt` after whitespace ends a
# requirement. One-character lookbehinds keep both linear on any line (`\s+#` was quadratic on a
# long run of spaces).
_COMMENT = re.compile(r"(?:^|(?<=\s))#")
_TRAILING_OPTION = re.compile(r"(?<=\s)--?[a-zA-Z]")
MAX_FILE_BYTES = 4 * 1024 * 1024  # OneTrainer's files are a few KiB
_HEX = re.compile(r"^[0-9a-fA-F]{7,40}$")


@dataclass(frozen=True)
class RequirementLine:
    """One requirement from a file. `name` is canonical; `vcs_ref` is the `@REF` of a git URL."""

    file: Path
    lineno: int
    text: str
    name: str
    requirement: Requirement | None = None  # None for `-e URL#egg=NAME` lines
    editable: bool = False
    url: str | None = None
    vcs_ref: str | None = None
    marker: Marker | None = None
    raw: str = ""  # the line as written, comment included

    @property
    def where(self) -> str:
        return f"{self.file.name}:{self.lineno}"


@dataclass
class RequirementSet:
    """Everything read from a set of files. `problems`: unreadable files and lines pip would reject."""

    files: list[Path] = field(default_factory=list)
    named: list[Path] = field(default_factory=list)  # every file named, readable or not, in pip's order
    lines: list[RequirementLine] = field(default_factory=list)
    index_urls: list[str] = field(default_factory=list)
    extra_index_urls: list[str] = field(default_factory=list)
    find_links: list[str] = field(default_factory=list)
    constraints: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # lines otdoctor cannot judge (local paths...)


def _logical_lines(text: str) -> Iterable[tuple[int, str, str]]:
    """(first line number, line, as written): pip's order: join `\\` continuations, then strip
    comments (a `#` after whitespace)."""
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not buffer:
            start = number
        if raw.endswith("\\") and not _COMMENT.search(raw[:-1]):
            buffer += raw[:-1] + " "
            continue
        line = _uncommented(buffer + raw)
        written = (buffer + raw).strip()
        buffer = ""
        if line:
            yield start, line, written
    if buffer.strip():
        yield start, _uncommented(buffer), buffer.strip()


def _uncommented(line: str) -> str:
    found = _COMMENT.search(line)
    return (line[: found.start()] if found else line).strip()


def _egg_name(url: str) -> str | None:
    m = re.search(r"[#&]egg=([A-Za-z0-9_.\-\[\]]+)", url)
    return m.group(1).split("[")[0] if m else None


def _vcs_ref(url: str) -> str | None:
    """`git+https://host/repo.git@abc123#egg=x` -> "abc123"."""
    if not url.startswith("git+"):
        return None
    try:
        path = urlparse(url[4:].split("#")[0]).path
    except ValueError:  # "Invalid IPv6 URL": pip would refuse it too; nothing to compare
        return None
    return path.rsplit("@", 1)[1] if "@" in path else None


def read(files: Iterable[Path]) -> RequirementSet:
    """Parse requirements files (and what they include with `-r`), each file once."""
    out = RequirementSet()
    seen: set[Path] = set()
    for f in files:
        _read_file(Path(f), out, seen)
    return out


def _read_file(path: Path, out: RequirementSet, seen: set[Path]) -> None:
    try:
        key = path.resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # a NUL byte, a symlink loop
        out.problems.append(f"cannot read {path}: {exc}")
        return
    if key in seen:
        return
    seen.add(key)
    out.named.append(path)
    try:
        text = read_regular_bytes(path, MAX_FILE_BYTES).decode("utf-8", errors="replace")
    except OSError as exc:  # missing, a folder, a pipe (never waited on), too large, no permission
        out.problems.append(f"cannot read {path}: {exc.strerror or exc}")
        return
    out.files.append(path)
    for lineno, line, written in _logical_lines(text):
        _parse_line(path, lineno, line, written, out, seen)


def _parse_line(path: Path, lineno: int, line: str, written: str, out: RequirementSet, seen: set[Path]) -> None:
    where = f"{path.name}:{lineno}"
    if line.startswith("-"):
        _parse_option(path, lineno, line, written, out, seen)
        return
    # Per-requirement options (`--hash=...`) follow the requirement itself.
    option = _TRAILING_OPTION.search(line)
    spec = (line[: option.start()] if option else line).strip()
    if spec.startswith((".", "/")) or re.match(r"^[a-z][a-z0-9+.\-]*://", spec):
        out.skipped.append(f"{where}: {spec} (a path or URL without a name)")
        return
    try:
        req = Requirement(spec)
    except InvalidRequirement as exc:
        out.problems.append(f"{where}: pip cannot read `{spec}` ({exc})")
        return
    ref = _vcs_ref(req.url) if req.url else None
    out.lines.append(
        RequirementLine(
            path,
            lineno,
            line,
            canonicalize_name(req.name),
            req,
            url=req.url,
            vcs_ref=ref,
            marker=req.marker,
            raw=written,
        )
    )


def _parse_option(path: Path, lineno: int, line: str, written: str, out: RequirementSet, seen: set[Path]) -> None:
    try:
        words = shlex.split(line)
    except ValueError:
        words = line.split()
    # `--opt=value` and `--opt value` forms.
    opt, _, inline = words[0].partition("=")
    value = inline or (words[1] if len(words) > 1 else "")
    if opt in ("-r", "--requirement"):
        _read_file(path.parent / value, out, seen)
    elif opt in ("-c", "--constraint"):
        out.constraints.append(path.parent / value)
    elif opt in _INDEX_OPTIONS:
        getattr(out, _INDEX_OPTIONS[opt]).append(value)
    elif opt in ("-e", "--editable"):
        _editable(path, lineno, line, written, value, out)
    elif opt not in _VALUE_OPTIONS and opt not in _FLAG_OPTIONS:  # install-time options are not compared
        out.skipped.append(f"{path.name}:{lineno}: unknown option {opt}")


def _editable(path: Path, lineno: int, line: str, written: str, value: str, out: RequirementSet) -> None:
    where = f"{path.name}:{lineno}"
    url, _, marker_text = value.partition(";")
    name = _egg_name(url)
    if not name:
        out.skipped.append(f"{where}: editable {url} has no #egg=NAME")
        return
    marker = None
    if marker_text.strip():
        try:
            marker = Marker(marker_text.strip())
        except InvalidMarker as exc:
            out.problems.append(f"{where}: bad marker `{marker_text.strip()}` ({exc})")
            return
    out.lines.append(
        RequirementLine(
            path, lineno, line, canonicalize_name(name), None, True, url.strip(), _vcs_ref(url), marker, written
        )
    )


# Judging against a venv -------------------------------------------------------------------------
@dataclass(frozen=True)
class Installed:
    """One installed distribution, as interpreter_script.py reports it."""

    name: str
    version: str
    direct_url: Mapping[str, Any] | None = None
    location: str | None = None

    @property
    def editable(self) -> bool:
        info = (self.direct_url or {}).get("dir_info") or {}
        if info.get("editable"):
            return True
        # Legacy `setup.py develop` installs: an .egg-info beside the source, outside site-packages.
        return bool(self.location) and "site-packages" not in str(self.location) and not self.direct_url

    @property
    def source_dir(self) -> Path | None:
        """Where an editable install's source is (`venv/src/NAME` for `-e git+...`)."""
        url = (self.direct_url or {}).get("url")
        if url and url.startswith("file://"):
            return Path(unquote(urlparse(url).path))
        if self.editable and self.location:
            return Path(self.location)
        return None

    @property
    def vcs_commit(self) -> str | None:
        return ((self.direct_url or {}).get("vcs_info") or {}).get("commit_id")


def installed_from(dists: Iterable[Mapping[str, Any]]) -> dict[str, Installed]:
    out: dict[str, Installed] = {}
    for d in dists:
        name = d.get("name")
        if not name:
            continue
        out.setdefault(
            canonicalize_name(name), Installed(name, str(d.get("version")), d.get("direct_url"), d.get("location"))
        )
    return out


@dataclass(frozen=True)
class Mismatch:
    """A requirement the venv does not satisfy. kind: missing, version, not-editable, commit."""

    line: RequirementLine
    kind: str
    installed: str | None
    message: str


def applies(line: RequirementLine, markers: Mapping[str, str]) -> bool:
    if line.marker is None:
        return True
    env = {"extra": "", **markers}
    try:
        return line.marker.evaluate(env)
    except Exception:  # an unknown marker variable: pip would fail too; judge the line anyway
        return True


def judge(
    req_set: RequirementSet,
    installed: Mapping[str, Installed],
    markers: Mapping[str, str],
    commit_of: Any = None,
) -> tuple[list[Mismatch], int, int]:
    """(mismatches, lines checked, lines not for this platform).

    `commit_of(source_dir, ref) -> (head, wanted) | None` resolves git commits of editable
    checkouts (through the probe); without it commits are not compared.
    """
    mismatches: list[Mismatch] = []
    checked = not_here = 0
    for line in req_set.lines:
        if not applies(line, markers):
            not_here += 1
            continue
        checked += 1
        mismatch = _judge_line(line, installed.get(line.name), commit_of)
        if mismatch is not None:
            mismatches.append(mismatch)
    return mismatches, checked, not_here


def _judge_line(line: RequirementLine, dist: Installed | None, commit_of: Any) -> Mismatch | None:
    if dist is None:
        return Mismatch(line, "missing", None, f"{line.name}: not installed ({line.where} asks for `{_short(line)}`)")
    if line.requirement is not None and line.requirement.specifier:
        try:
            ok = line.requirement.specifier.contains(Version(dist.version), prereleases=True)
        except InvalidVersion:
            ok = False
        if not ok:
            return Mismatch(
                line,
                "version",
                dist.version,
                f"{dist.name}: {dist.version} installed, {line.where} asks for {line.requirement.specifier}",
            )
    if line.editable and not dist.editable:
        return Mismatch(
            line,
            "not-editable",
            dist.version,
            f"{dist.name}: {dist.version} installed from a wheel, "
            f"{line.where} asks for an editable checkout of {line.url}",
        )
    if line.vcs_ref and commit_of is not None:
        return _judge_commit(line, line.vcs_ref, dist, commit_of)
    return None


def _judge_commit(line: RequirementLine, ref: str, dist: Installed, commit_of: Any) -> Mismatch | None:
    source = dist.source_dir if line.editable else None
    head = dist.vcs_commit if not line.editable else None
    resolved = commit_of(source, ref, head)
    if resolved is None:
        return None
    have, want = resolved
    if have and want and have != want:
        return Mismatch(
            line, "commit", have[:10], f"{dist.name}: checkout at {have[:10]}, {line.where} asks for @{ref[:10]}"
        )
    return None


def _short(line: RequirementLine) -> str:
    if line.requirement is not None:
        return str(line.requirement)
    return f"-e {line.url}"


def is_commit(ref: str) -> bool:
    return bool(_HEX.match(ref))
