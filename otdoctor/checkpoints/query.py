"""`otdoctor models list|verify` as functions: take the inventory, then list it or verify files.

The hash progress bar belongs to the caller: `verify_models` enters `progress()` only around the
hashing, after the inventory is taken, so a usage error never appears under a bar.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from otdoctor.checkpoints.catalog import CatalogEntry
from otdoctor.checkpoints.hashing import ProgressFn, VerifyCache
from otdoctor.checkpoints.hf_cache import HfCacheRepo, cached_model_repos
from otdoctor.checkpoints.inventory import Inventory, take_inventory, verify_inventory
from otdoctor.checkpoints.locate import scan
from otdoctor.checkpoints.verdict import Verdict
from otdoctor.checkpoints.verify import Verifier
from otdoctor.errors import UserError
from otdoctor.onetrainer.checkout import find_checkout
from otdoctor.probe import Probe

Target = tuple[Path, CatalogEntry | None, str | None, str]
HashCallbacks = tuple[Callable[[int], None] | None, ProgressFn | None]
HashProgress = Callable[[], AbstractContextManager[HashCallbacks]]


@dataclass(frozen=True)
class ModelsQuery:
    """Where to look: the OneTrainer checkout, its training config, and extra model folders."""

    ot_dir: Path | None = None
    config: Path | None = None
    models_dirs: tuple[Path, ...] = ()


def inventory_for(probe: Probe, query: ModelsQuery) -> Inventory:
    for folder in query.models_dirs:
        if not folder.expanduser().is_dir():  # a typo would otherwise read as "no checkpoints found"
            raise UserError(f"--models-dir {folder} is not a folder", exit_code=2)
    located = find_checkout(probe, query.ot_dir)
    return take_inventory(probe.env, probe.home, query.models_dirs, located.path, query.config)


def list_models(probe: Probe, query: ModelsQuery, all_repos: bool) -> tuple[Inventory, list[HfCacheRepo] | None]:
    """The inventory with each file's state from the verify cache (no file read whole), and with
    `all_repos` every model repository in the Hugging Face caches."""
    inv = inventory_for(probe, query)
    verify_inventory(inv, VerifyCache(env=probe.env), do_hash=False, include_others=True)
    return inv, cached_model_repos(inv.caches) if all_repos else None


def named_targets(paths: Iterable[Path], inv: Inventory) -> list[Target]:
    """The files named on the command line; a folder stands for the model files in it."""
    paths = list(paths)
    targets: list[Target] = []
    for p in paths:
        p = p.expanduser()
        if p.is_dir() and not (p / "model_index.json").is_file():
            targets += [(f, None, inv.expected_arch, "the config's model_type") for f in scan(p)]
        else:
            targets.append((p, None, inv.expected_arch, "the config's model_type"))
    if not targets:
        raise UserError(f"no model files (.safetensors, .ckpt, diffusers folders) under {', '.join(map(str, paths))}")
    return targets


def _no_progress() -> AbstractContextManager[HashCallbacks]:
    from contextlib import nullcontext

    return nullcontext((None, None))


def verify_models(
    probe: Probe,
    query: ModelsQuery,
    paths: Iterable[Path] = (),
    do_hash: bool = True,
    progress: HashProgress = _no_progress,
) -> tuple[Inventory, list[Verdict]]:
    """Verify the named files (a folder: the model files in it), or else every checkpoint found."""
    paths = list(paths)
    inv = inventory_for(probe, query)
    cache = VerifyCache(env=probe.env)
    with progress() as (on_start, on_bytes):
        if paths:
            return inv, Verifier(inv.catalog, cache, do_hash=do_hash).verify(
                named_targets(paths, inv), on_start, on_bytes
            )
        verdicts = list(verify_inventory(inv, cache, do_hash, True, on_start, on_bytes).values())
    if not verdicts:
        raise UserError(
            "no checkpoints found; name files, or use --models-dir / --config",
            hint="otdoctor models list shows where otdoctor looked",
        )
    return inv, verdicts
