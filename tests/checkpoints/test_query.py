"""`models list|verify` as functions: the inventory, the named files, and the hash bar's place."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from otdoctor.checkpoints.query import ModelsQuery, list_models, named_targets, verify_models
from otdoctor.errors import UserError
from otdoctor.probe import Probe
from tests.support.modelfiles import write_checkpoint


@pytest.fixture
def probe(base_env: dict[str, str], home: Path, tmp_path: Path) -> Probe:
    return Probe(env=base_env, home=home, cwd=tmp_path)


class _Bar:
    """A hash progress that records when it is entered and what it is told."""

    def __init__(self) -> None:
        self.entered = 0
        self.totals: list[int] = []

    @contextmanager
    def __call__(self) -> Iterator[tuple[object, object]]:
        self.entered += 1
        yield self.totals.append, lambda _n: None


def test_named_file_is_verified_under_the_bar(probe: Probe, tmp_path: Path):
    ckpt = write_checkpoint(tmp_path / "mine.safetensors", "sdxl", pad_bytes=10_000)
    bar = _Bar()
    inv, verdicts = verify_models(probe, ModelsQuery(), [ckpt], do_hash=True, progress=bar)
    assert [v.path for v in verdicts] == [ckpt]
    assert bar.entered == 1
    assert inv.expected_arch is None  # no config: nothing expected


def test_folder_stands_for_its_model_files(probe: Probe, tmp_path: Path):
    a = write_checkpoint(tmp_path / "models" / "a.safetensors", "sd15")
    b = write_checkpoint(tmp_path / "models" / "sub" / "b.safetensors", "sd15")
    inv, _ = list_models(probe, ModelsQuery(), all_repos=False)
    assert sorted(t[0] for t in named_targets([tmp_path / "models"], inv)) == sorted([a, b])


def test_empty_folder_names_no_model_files(probe: Probe, tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError) as err:
        verify_models(probe, ModelsQuery(), [empty])
    assert err.value.message == f"no model files (.safetensors, .ckpt, diffusers folders) under {empty}"


def test_nothing_found_says_where_to_look(probe: Probe):
    with pytest.raises(UserError) as err:
        verify_models(probe, ModelsQuery())
    assert err.value.message == "no checkpoints found; name files, or use --models-dir / --config"
    assert err.value.hint == "otdoctor models list shows where otdoctor looked"


def test_mistyped_models_dir_fails_before_the_bar(probe: Probe, tmp_path: Path):
    bar = _Bar()
    with pytest.raises(UserError) as err:
        verify_models(probe, ModelsQuery(models_dirs=(tmp_path / "modles",)), progress=bar)
    assert err.value.exit_code == 2
    assert bar.entered == 0


def test_list_all_adds_the_hf_cache_repos(probe: Probe):
    _, repos = list_models(probe, ModelsQuery(), all_repos=True)
    assert repos == []
    _, repos = list_models(probe, ModelsQuery(), all_repos=False)
    assert repos is None
