"""TrainingRun as a task graph: each task returns what it produced (the shape a cluster
runner needs), and training reports progress through logging, never print."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from parley.data.importer import TrainingDataImporter
from parley.engine.cache import TrainingCache
from parley.engine.runner import SequentialRunner
from parley.recipe import build_recipe
from parley.starter import create_starter_project
from parley.training.plan import make_plan
from parley.training.request import TrainingRequest
from parley.training.run import TrainingRun


@pytest.fixture
def training_run(tmp_path: Path) -> TrainingRun:
    create_starter_project(tmp_path)
    importer = TrainingDataImporter(tmp_path / "domain.yml", tmp_path / "config.yml",
                                    [tmp_path / "data"])
    recipe = build_recipe(importer.config, "both")
    cache = TrainingCache(tmp_path / "cache")
    request = TrainingRequest("both", tmp_path / "models")
    plan = make_plan(importer, recipe, cache, request)
    return TrainingRun(request, importer, recipe, plan.statuses, plan.model_fingerprint, cache)


def test_tasks_should_return_their_folders_and_share_nothing(training_run, tmp_path):
    results = SequentialRunner().run(training_run.tasks(tmp_path / "work"))
    nlu = results["nlu"]
    assert list(nlu) == [n.name for n in training_run.recipe.nlu]
    for node in training_run.recipe.policies:
        assert isinstance(results[node.name], Path) and results[node.name].is_dir()
    assert all(folder.is_dir() for folder in nlu.values())
    assert training_run.node_dirs(tmp_path / "again", SequentialRunner()).keys() == {
        n.name for n in training_run.recipe.nodes}


def test_progress_should_go_to_logging_not_stdout(training_run, tmp_path, caplog, capsys):
    with caplog.at_level(logging.INFO, logger="parley.training"):
        training_run.node_dirs(tmp_path / "work", SequentialRunner())
    assert capsys.readouterr().out == ""
    lines = [r.getMessage() for r in caplog.records if r.name == "parley.training.run"]
    assert len(lines) == len(training_run.recipe.nodes)
    assert all(" trained in " in line for line in lines)


@pytest.mark.parametrize(("kind", "alone"), [("both", False), ("nlu", True)])
def test_a_training_may_fork_its_second_lane_only_where_the_run_trains_one_model_at_a_time(
        tmp_path, monkeypatch, kind, alone):
    """parley/ml/lane_process.py: an NLU pipeline alone trains one model at a time; a bot's
    NLU and policies train side by side, sharing the cores already."""
    from contextlib import contextmanager

    from parley.training import run as run_module

    granted = []
    real = run_module.lanes_in_processes

    @contextmanager
    def spy(allowed=True):
        granted.append(allowed)
        with real(allowed):
            yield

    monkeypatch.setattr(run_module, "lanes_in_processes", spy)
    create_starter_project(tmp_path)
    importer = TrainingDataImporter(tmp_path / "domain.yml", tmp_path / "config.yml",
                                    [tmp_path / "data"])
    recipe = build_recipe(importer.config, kind)
    cache = TrainingCache(tmp_path / "cache")
    request = TrainingRequest(kind, tmp_path / "models")
    plan = make_plan(importer, recipe, cache, request)
    run = TrainingRun(request, importer, recipe, plan.statuses, plan.model_fingerprint, cache)
    run.node_dirs(tmp_path / "work", SequentialRunner())
    assert granted == [alone]
