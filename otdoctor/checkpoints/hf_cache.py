"""Every model repository in the Hugging Face caches (`otdoctor models list --all`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from otdoctor.checkpoints.locate import Place


@dataclass(frozen=True)
class HfCacheRepo:
    repo_id: str
    size_on_disk: int
    nb_files: int
    repo_path: Path


def cached_model_repos(caches: Iterable[Place]) -> list[HfCacheRepo]:
    """The model repositories huggingface_hub finds in each cache folder, in its order."""
    repos: list[HfCacheRepo] = []
    for place in caches:
        if not place.path.is_dir():
            continue
        from huggingface_hub import scan_cache_dir  # slow import: only here

        try:
            info = scan_cache_dir(place.path)
        except Exception:  # a cache folder huggingface_hub does not recognise is not an error here
            continue
        repos += [
            HfCacheRepo(r.repo_id, r.size_on_disk, r.nb_files, r.repo_path)
            for r in info.repos
            if r.repo_type == "model"
        ]
    return repos
