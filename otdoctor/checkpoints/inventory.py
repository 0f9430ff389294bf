"""The checkpoints on this machine: catalog models found, the config's base model, and their state.

Shared by `otdoctor check` (the `models.checkpoints` check) and `otdoctor models list|verify`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from otdoctor.checkpoints.catalog import CatalogEntry, entry_for_file, load_catalog
from otdoctor.checkpoints.hashing import ProgressFn, VerifyCache
from otdoctor.checkpoints.locate import (
    BaseModel,
    Found,
    Place,
    find_catalog_models,
    hf_caches,
    resolve_base_model,
    search_places,
)
from otdoctor.checkpoints.safetensors import architecture_of_model_type
from otdoctor.checkpoints.verdict import Verdict
from otdoctor.checkpoints.verify import Verifier
from otdoctor.oneline import one_line, shell_quote
from otdoctor.probe.files import denied


@dataclass
class Inventory:
    catalog: list[CatalogEntry]
    places: list[Place]
    caches: list[Place]
    found: dict[str, list[Found]]
    others: list[Found]
    base: BaseModel | None = None
    model_type: str | None = None  # the config's
    expected_arch: str | None = None  # what the config's model_type needs
    config_error: str | None = None
    verdicts: dict[Path, Verdict] = field(default_factory=dict)
    partials: dict[str, list[Found]] = field(default_factory=dict)  # interrupted downloads
    closed: list[str] = field(default_factory=list)  # folders this user may not read

    @property
    def unreadable(self) -> list[str]:
        """One "cannot read X (permission denied)" per closed folder, in the order found."""
        return [denied(one_line(p)) for p in dict.fromkeys(self.closed)]

    def resume_command(self, name: str) -> str | None:
        parts = self.partials.get(name)
        if not parts:
            return None
        entry = next(e for e in self.catalog if e.name == name)
        return f"{entry.download_command} --dest {shell_quote(str(parts[0].path.parent))}"

    @property
    def base_entry(self) -> CatalogEntry | None:
        if self.base is None:
            return None
        if self.base.path is not None:
            hit = entry_for_file(self.catalog, self.base.path)
            if hit is not None:
                return hit
        return next((e for e in self.catalog if e.repo and e.repo == self.base.repo_id), None)

    def targets(self, include_others: bool = False) -> list[tuple[Path, CatalogEntry | None, str | None, str]]:
        """What to verify: every catalog copy found, the config's base model, optionally the rest."""
        why = f"the config's model_type {self.model_type}"
        # Keyed by the resolved path: the config may name a file the folder scan found too.
        out: dict[Path, tuple[Path, CatalogEntry | None, str | None, str]] = {}
        base_path = self.base.path if self.base is not None else None
        base_key = base_path.resolve() if base_path is not None else None
        for copies in self.found.values():
            for f in copies:
                arch = self.expected_arch if f.path.resolve() == base_key else None
                out[f.path.resolve()] = (f.path, f.entry, arch, why)
        if base_path is not None and base_key not in out:
            entry = entry_for_file(self.catalog, base_path) if base_path.is_file() else self.base_entry
            out[base_key] = (base_path, entry, self.expected_arch, why)  # type: ignore[index]
        if include_others:
            for f in self.others:
                out.setdefault(f.path.resolve(), (f.path, None, None, why))
        return list(out.values())


def take_inventory(
    env: Mapping[str, str],
    home: Path,
    models_dirs: Iterable[Path] = (),
    ot_dir: Path | None = None,
    config_path: Path | None = None,
) -> Inventory:
    from otdoctor.errors import UserError

    catalog = load_catalog(env)
    base_value = ""
    model_type = None
    extra_caches: list[Path] = []
    config_error = None
    if config_path is not None:
        from otdoctor.onetrainer.config import load_config

        try:
            cfg = load_config(config_path, ot_dir)
        except UserError as exc:
            config_error = exc.message
        else:
            base_value = cfg.base_model_name
            model_type = cfg.model_type
            hf_dir = cfg.get("huggingface_cache_dir", "") or ""
            if hf_dir:
                extra_caches.append(cfg.resolve(str(hf_dir), ot_dir))
    caches = hf_caches(env, home, extra_caches)
    places = search_places(models_dirs, ot_dir)
    partials: dict[str, list[Found]] = {}
    closed: list[str] = []
    found, others = find_catalog_models(catalog, places, caches, partials, closed)
    base = resolve_base_model(base_value, ot_dir, caches) if base_value else None
    return Inventory(
        catalog,
        places,
        caches,
        found,
        others,
        base,
        model_type,
        architecture_of_model_type(model_type) if model_type else None,
        config_error,
        partials=partials,
        closed=closed,
    )


def verify_inventory(
    inv: Inventory,
    cache: VerifyCache | None,
    do_hash: bool = True,
    include_others: bool = False,
    on_hash_start: Callable[[int], None] | None = None,
    on_bytes: ProgressFn | None = None,
) -> dict[Path, Verdict]:
    verifier = Verifier(inv.catalog, cache, do_hash=do_hash)
    verdicts = verifier.verify(inv.targets(include_others), on_hash_start, on_bytes)
    inv.verdicts = {v.path: v for v in verdicts}
    return inv.verdicts
