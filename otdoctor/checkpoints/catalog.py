"""The checkpoint catalog: built-in entries (`otdoctor/data/models.toml`) plus the user's own.

The user's file is `<config dir>/models.toml` (`~/.config/otdoctor/models.toml`), same format; an
entry with the same name replaces the built-in one. Where the models are downloaded from is a
setting so that tests (and mirrors) can point otdoctor at another server: Hugging Face through
huggingface_hub's own `HF_ENDPOINT`, Civitai through `OTDOCTOR_CIVITAI_URL`.
"""

from __future__ import annotations

import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otdoctor.checkpoints.safetensors import EMBEDDING, LORA, SD2, SD15, SDXL
from otdoctor.data import data_file
from otdoctor.errors import UserError
from otdoctor.oneline import shell_quote
from otdoctor.probe.files import config_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised by the 3.10 pass
    import tomli as tomllib

BUILTIN_CATALOG = data_file("models.toml")
DEFAULT_CIVITAI_URL = "https://civitai.com"
DEFAULT_HF_ENDPOINT = "https://huggingface.co"
ARCHITECTURES = (SDXL, SD15, SD2, LORA, EMBEDDING)
SOURCES = ("huggingface", "civitai")


@dataclass(frozen=True)
class KnownFile:
    name: str
    sha256: str | None = None
    size_bytes: int | None = None  # exact, when known
    size_bytes_approx: int | None = None  # for the free-disk estimate when the exact size is unknown
    label: str = ""

    @property
    def any_size_bytes(self) -> int | None:
        return self.size_bytes or self.size_bytes_approx


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    title: str
    architecture: str
    source: str
    filename: str
    files: tuple[KnownFile, ...] = ()
    aliases: tuple[str, ...] = ()
    repo: str | None = None
    revision: str = "main"
    civitai_version_id: int | None = None
    origin: str = "built-in"  # or the user's catalog path

    @property
    def file_names(self) -> set[str]:
        return {self.filename, *(f.name for f in self.files)}

    @property
    def max_size_bytes(self) -> int | None:
        sizes = [f.any_size_bytes for f in self.files if f.any_size_bytes]
        return max(sizes) if sizes else None

    def matches_name(self, text: str) -> bool:
        t = text.strip().lower()
        return t in {self.name.lower(), self.title.lower(), *(a.lower() for a in self.aliases)}

    def known_by_sha(self, sha256: str) -> KnownFile | None:
        for f in self.files:
            if f.sha256 and f.sha256.lower() == sha256.lower():
                return f
        return None

    @property
    def download_command(self) -> str:
        return f"otdoctor models download {shell_quote(self.name)}"

    @property
    def where(self) -> str:
        if self.source == "huggingface":
            return f"huggingface.co/{self.repo}"
        return f"civitai.com model version {self.civitai_version_id}"


def civitai_url(env: Mapping[str, str]) -> str:
    return (env.get("OTDOCTOR_CIVITAI_URL") or DEFAULT_CIVITAI_URL).rstrip("/")


def user_catalog_path(env: Mapping[str, str] | None = None) -> Path:
    return config_dir(env) / "models.toml"


def _bad(origin: str, name: str, what: str) -> UserError:
    return UserError(f"{origin}: model {name!r}: {what}", exit_code=2)


def _need(raw: Mapping[str, Any], key: str, origin: str) -> Any:
    if key not in raw or raw[key] in ("", None):
        raise UserError(f"{origin}: model {str(raw.get('name', '?'))!r} has no {key!r}", exit_code=2)
    return raw[key]


def _text(raw: Mapping[str, Any], key: str, origin: str, name: str, default: str = "") -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise _bad(origin, name, f"{key} must be a string, not {type(value).__name__}")
    return value


def _one_of(raw: Mapping[str, Any], key: str, allowed: tuple[str, ...], origin: str, name: str) -> str:
    value = _need(raw, key, origin)
    if value not in allowed:
        raise _bad(origin, name, f"{key} {value!r} is not one of {', '.join(allowed)}")
    return str(value)


def _count(raw: Mapping[str, Any], key: str, origin: str, name: str, unit: str = "of bytes") -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise _bad(origin, name, f"{key} must be a whole number {unit}, not {str(value)[:40]!r}")
    return value


def is_file_name(text: str) -> bool:
    """A plain file name: joined to a folder, it stays in that folder (no separator, `..`, root or control
    character), so a catalog or index file cannot make otdoctor write or read elsewhere."""
    return text not in ("", ".", "..") and text.isprintable() and Path(text).name == text and "\\" not in text


def _file_name(text: str, key: str, origin: str, name: str) -> str:
    if not is_file_name(text):
        raise _bad(origin, name, f"{key} {text[:80]!r} is not a plain file name (no folder, '..' or control character)")
    return text


def _known_file(f: Any, origin: str, name: str) -> KnownFile:
    if not isinstance(f, Mapping) or not isinstance(f.get("name"), str) or not f["name"]:
        raise _bad(origin, name, "every [[model.files]] needs a name (a string)")
    sha = f.get("sha256")
    if sha is not None and (
        not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdefABCDEF" for c in sha)
    ):
        raise _bad(origin, name, f"sha256 {str(sha)[:80]!r} is not 64 hex digits")
    return KnownFile(
        name=_file_name(f["name"], "[[model.files]] name", origin, name),
        sha256=sha.lower() if sha else None,
        size_bytes=_count(f, "size_bytes", origin, name),
        size_bytes_approx=_count(f, "size_bytes_approx", origin, name),
        label=_text(f, "label", origin, name),
    )


def _list(raw: Mapping[str, Any], key: str, origin: str, name: str) -> list[Any]:
    value = raw.get(key) or []
    if not isinstance(value, list):
        raise _bad(origin, name, f"{key} must be a list")
    return value


def _entry(raw: Any, origin: str) -> CatalogEntry:
    if not isinstance(raw, Mapping):
        raise UserError(f"{origin}: every [[model]] must be a table, not {str(raw)[:40]!r}", exit_code=2)
    if not isinstance(_need(raw, "name", origin), str):
        raise UserError(f"{origin}: a model's name must be a string, not {str(raw['name'])[:40]!r}", exit_code=2)
    name = raw["name"]
    arch = _one_of(raw, "architecture", ARCHITECTURES, origin, name)
    source = _one_of(raw, "source", SOURCES, origin, name)
    files = [_known_file(f, origin, name) for f in _list(raw, "files", origin, name)]
    filename = _text(raw, "filename", origin, name) or (files[0].name if files else "")
    if not filename:
        raise UserError(f"{origin}: model {name!r} has no 'filename'", exit_code=2)
    _file_name(filename, "filename", origin, name)
    _need(raw, "repo" if source == "huggingface" else "civitai_version_id", origin)
    aliases = _list(raw, "aliases", origin, name)
    if not all(isinstance(a, str) for a in aliases):
        raise _bad(origin, name, "aliases must be strings")
    return CatalogEntry(
        name=name,
        title=_text(raw, "title", origin, name) or name,
        architecture=arch,
        source=source,
        filename=filename,
        files=tuple(files),
        aliases=tuple(aliases),
        repo=_text(raw, "repo", origin, name) or None,
        revision=_text(raw, "revision", origin, name) or "main",
        civitai_version_id=_count(raw, "civitai_version_id", origin, name, "(a Civitai model version id)"),
        origin=origin,
    )


def _load(path: Path, origin: str) -> list[CatalogEntry]:
    """The entries of one catalog file, built-in or the user's: the user's file can be missing or broken,
    so this reads it with errors that name it (`data.load_table` is for otdoctor's own tables)."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would block the read forever
            raise UserError(f"the model catalog {path} is not a regular file", exit_code=2)
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the model catalog {path}: {exc}", exit_code=2) from None
    except ValueError as exc:  # TOMLDecodeError, or a number longer than Python converts
        raise UserError(f"the model catalog {path} is not valid TOML: {str(exc)[:200]}", exit_code=2) from None
    except RecursionError:
        raise UserError(f"the model catalog {path} nests too deeply to read", exit_code=2) from None
    models = data.get("model", [])
    if not isinstance(models, list):
        raise UserError(f"the model catalog {path} must hold [[model]] tables", exit_code=2)
    return [_entry(m, origin) for m in models]


def load_catalog(env: Mapping[str, str] | None = None) -> list[CatalogEntry]:
    """Built-in entries, then the user's; the user's replace built-in ones with the same name."""
    entries = {e.name: e for e in _load(BUILTIN_CATALOG, "built-in")}
    user = user_catalog_path(env)
    for e in _load(user, str(user)):
        entries[e.name] = e
    return list(entries.values())


def find_entry(catalog: list[CatalogEntry], name: str) -> CatalogEntry:
    for e in catalog:
        if e.matches_name(name):
            return e
    known = ", ".join(e.name for e in catalog)
    raise UserError(
        f"no model named {name!r} in the catalog; known: {known}",
        exit_code=2,
        hint="add your own in ~/.config/otdoctor/models.toml (see README: Checkpoints)",
    )


def entry_for_file(catalog: list[CatalogEntry], path: Path) -> CatalogEntry | None:
    """The catalog entry a file on disk is a copy of, judged by its file name."""
    for e in catalog:
        if path.name in e.file_names:
            return e
    return None
