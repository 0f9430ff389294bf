"""The checkpoint catalog: built-in entries (`otdoctor/data/models.toml`) plus the user's own.

The user's file is `<config dir>/models.toml` (`~/.config/otdoctor/models.toml`), same format; an
entry with the same name replaces the built-in one. Where the models are downloaded from is a
setting so that tests (and mirrors) can point otdoctor at another server: Hugging Face through
huggingface_hub's own `HF_ENDPOINT`, Civitai through `OTDOCTOR_CIVITAI_URL`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otdoctor.checkpoints.safetensors import EMBEDDING, LORA, SD2, SD15, SDXL
from otdoctor.data import data_file
from otdoctor.errors import UserError
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
        return f"otdoctor models download {self.name}"

    @property
    def where(self) -> str:
        if self.source == "huggingface":
            return f"huggingface.co/{self.repo}"
        return f"civitai.com model version {self.civitai_version_id}"


def civitai_url(env: Mapping[str, str]) -> str:
    return (env.get("OTDOCTOR_CIVITAI_URL") or DEFAULT_CIVITAI_URL).rstrip("/")


def user_catalog_path(env: Mapping[str, str] | None = None) -> Path:
    return config_dir(env) / "models.toml"


def _need(raw: Mapping[str, Any], key: str, origin: str) -> Any:
    if key not in raw or raw[key] in ("", None):
        raise UserError(f"{origin}: model {raw.get('name', '?')!r} has no {key!r}", exit_code=2)
    return raw[key]


def _one_of(raw: Mapping[str, Any], key: str, allowed: tuple[str, ...], origin: str, name: str) -> str:
    value = str(_need(raw, key, origin))
    if value not in allowed:
        raise UserError(f"{origin}: model {name!r}: {key} {value!r} is not one of {', '.join(allowed)}", exit_code=2)
    return value


def _int_or_none(value: Any) -> int | None:
    return int(value) if value is not None else None


def _known_file(f: Any, origin: str, name: str) -> KnownFile:
    if not isinstance(f, Mapping) or not f.get("name"):
        raise UserError(f"{origin}: model {name!r}: every [[model.files]] needs a name", exit_code=2)
    sha = f.get("sha256")
    if sha is not None and (len(str(sha)) != 64 or any(c not in "0123456789abcdefABCDEF" for c in str(sha))):
        raise UserError(f"{origin}: model {name!r}: sha256 {sha!r} is not 64 hex digits", exit_code=2)
    return KnownFile(
        name=str(f["name"]),
        sha256=str(sha).lower() if sha else None,
        size_bytes=_int_or_none(f.get("size_bytes")),
        size_bytes_approx=_int_or_none(f.get("size_bytes_approx")),
        label=str(f.get("label", "")),
    )


def _entry(raw: Mapping[str, Any], origin: str) -> CatalogEntry:
    name = str(_need(raw, "name", origin))
    arch = _one_of(raw, "architecture", ARCHITECTURES, origin, name)
    source = _one_of(raw, "source", SOURCES, origin, name)
    files = [_known_file(f, origin, name) for f in raw.get("files") or ()]
    filename = str(raw.get("filename") or (files[0].name if files else ""))
    if not filename:
        raise UserError(f"{origin}: model {name!r} has no 'filename'", exit_code=2)
    _need(raw, "repo" if source == "huggingface" else "civitai_version_id", origin)
    return CatalogEntry(
        name=name,
        title=str(raw.get("title") or name),
        architecture=arch,
        source=source,
        filename=filename,
        files=tuple(files),
        aliases=tuple(str(a) for a in raw.get("aliases") or ()),
        repo=str(raw["repo"]) if raw.get("repo") else None,
        revision=str(raw.get("revision") or "main"),
        civitai_version_id=_int_or_none(raw.get("civitai_version_id")),
        origin=origin,
    )


def _load(path: Path, origin: str) -> list[CatalogEntry]:
    """The entries of one catalog file, built-in or the user's: the user's file can be missing or broken,
    so this reads it with errors that name it (`data.load_table` is for otdoctor's own tables)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the model catalog {path}: {exc}", exit_code=2) from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"the model catalog {path} is not valid TOML: {exc}", exit_code=2) from None
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
