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


TED_CONFIG = """recipe: default.v1
language: en
pipeline:
  - name: WhitespaceTokenizer
  - name: CountVectorsFeaturizer
  - name: DIETClassifier
    epochs: 1
policies:
  - name: MemoizationPolicy
  - name: TEDPolicy
    epochs: 1
  - name: RulePolicy
"""


@pytest.mark.parametrize(("kind", "ted", "policy_process", "alone"), [
    ("both", False, "1", True),  # memoization and rules learn no epochs: DIET alone
    ("both", True, "0", False),  # DIET and TED on threads side by side
    ("both", True, "1", True),  # TED in a process of its own: DIET alone here
    ("nlu", True, "1", True),
])
def test_a_training_may_fork_its_second_lane_only_where_the_run_trains_one_model_at_a_time(
        tmp_path, monkeypatch, kind, ted, policy_process, alone):
    """parley/ml/lane_process.py: an NLU pipeline alone trains one model at a time; a bot's
    NLU and TED train side by side, sharing the cores already — unless TED trains in a
    process of its own (parley/training/policy_process.py)."""
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
    monkeypatch.setenv("PARLEY_POLICY_PROCESS", policy_process)
    monkeypatch.setenv("PARLEY_TORCH_THREADS", "2")
    create_starter_project(tmp_path)
    if ted:
        (tmp_path / "config.yml").write_text(TED_CONFIG)
    importer = TrainingDataImporter(tmp_path / "domain.yml", tmp_path / "config.yml",
                                    [tmp_path / "data"])
    recipe = build_recipe(importer.config, kind)
    cache = TrainingCache(tmp_path / "cache")
    request = TrainingRequest(kind, tmp_path / "models")
    plan = make_plan(importer, recipe, cache, request)
    run = TrainingRun(request, importer, recipe, plan.statuses, plan.model_fingerprint, cache)
    run.node_dirs(tmp_path / "work", SequentialRunner())
    assert granted == [alone]
