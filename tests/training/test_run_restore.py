"""Restoring what the plan promised, when the world changed since (issue 18): an evicted
cache entry, a tampered component in the newest model, a damaged newest model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from parley.data.importer import TrainingDataImporter
from parley.engine.archive import extract_archive, pack_archive, read_archive_member
from parley.engine.cache import TrainingCache
from parley.errors import ParleyWarning
from parley.recipe import build_recipe
from parley.serving.agent import load
from parley.starter import create_starter_project
from parley.training.plan import extract_previous, make_plan, previous_model
from parley.training.request import TrainingRequest
from parley.training.run import CACHED, IN_MODEL, TRAIN, TrainingRun

LR = "nlu_6_LogisticRegressionClassifier"


def train_once(root: Path, cache: TrainingCache, name: str) -> tuple[TrainingRun, Path]:
    """Plan and run one training of the starter project in ``root``."""
    importer = TrainingDataImporter(root / "domain.yml", root / "config.yml", [root / "data"])
    importer.load_all()
    recipe = build_recipe(importer.config, "both")
    request = TrainingRequest("both", root / "models")
    plan = make_plan(importer, recipe, cache, request)
    holder = extract_previous(plan)
    try:
        run = TrainingRun(request, importer, recipe, plan.statuses, plan.model_fingerprint,
                          cache, Path(holder.name) / "model" if holder else None)
        return run, run.pack(root / "models" / f"{name}.tar.gz", name)
    finally:
        if holder is not None:
            holder.cleanup()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    create_starter_project(tmp_path)
    return tmp_path


def test_an_entry_evicted_between_plan_and_run_should_be_trained_again(project: Path) -> None:
    cache = TrainingCache(project / "cache")
    train_once(project, cache, "first")
    importer = TrainingDataImporter(project / "domain.yml", project / "config.yml",
                                    [project / "data"])
    importer.load_all()
    recipe = build_recipe(importer.config, "both")
    request = TrainingRequest("both", project / "other-models")
    plan = make_plan(importer, recipe, cache, request)
    assert {s.status for s in plan.statuses} == {CACHED}
    cache.clear()  # another training evicts everything between this plan and its run
    run = TrainingRun(request, importer, recipe, plan.statuses, plan.model_fingerprint, cache)
    with pytest.warns(ParleyWarning, match="cache entry is gone.*training it again"):
        archive = run.pack(project / "other-models" / "second.tar.gz", "second")
    assert {s.status for s in run.statuses} == {TRAIN}
    assert load(archive).parse("hello")["intent"]["name"] == "greet"


def test_a_tampered_component_in_the_newest_model_should_not_be_reused(project: Path) -> None:
    no_cache = TrainingCache(project / "cache", max_size_bytes=0)
    _run, first = train_once(project, no_cache, "first")
    # Edit one component's state inside the newest model, keeping its metadata.
    model = extract_archive(first, project / "x" / "model")
    state = model / "components" / LR / "state.json"
    state.write_text(state.read_text().replace('"greet"', '"evil"'))
    pack_archive(model, first)
    with pytest.warns(ParleyWarning, match=f"{LR}.*do not match their recorded digest"):
        run, second = train_once(project, no_cache, "second")
    statuses = {s.node.name: s.status for s in run.statuses}
    assert statuses[LR] == TRAIN
    assert statuses["nlu_0_WhitespaceTokenizer"] == IN_MODEL  # the rest is still reused
    shipped = read_archive_member(second, f"components/{LR}/state.json")
    assert b'"evil"' not in shipped and b'"greet"' in shipped
    meta = json.loads(read_archive_member(second, "metadata.json"))
    assert set(meta["component_digests"]) == set(statuses)


@pytest.mark.parametrize("damage", ["truncated", "crc", "not a tar"])
def test_a_damaged_newest_model_should_be_skipped_with_a_warning(project: Path,
                                                                 damage: str) -> None:
    no_cache = TrainingCache(project / "cache", max_size_bytes=0)
    _run, good = train_once(project, no_cache, "good")
    newest = project / "models" / "newest.tar.gz"
    data = bytearray(good.read_bytes())
    if damage == "truncated":
        data = data[: len(data) * 2 // 3]
    elif damage == "crc":
        data[-12] ^= 0xFF  # inside the last deflate block: the checksum catches it
    else:
        data = bytearray(b"just some text, not an archive")
    newest.write_bytes(bytes(data))
    shutil.copystat(good, newest)
    import os

    os.utime(newest, (good.stat().st_mtime + 10, good.stat().st_mtime + 10))
    with pytest.warns(ParleyWarning, match="not reusing anything from .*newest.tar.gz"):
        found, meta = previous_model(project / "models", "both")
    assert found == good and meta is not None
    with pytest.warns(ParleyWarning, match="newest.tar.gz"):
        run, _third = train_once(project, no_cache, "third")
    assert {s.status for s in run.statuses} == {IN_MODEL}
