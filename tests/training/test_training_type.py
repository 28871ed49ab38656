"""``train`` decides what to train from the data, as Rasa 3.6 does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parley.engine.archive import read_archive_member
from parley.errors import DataError
from parley.model_training import train, train_core, train_nlu
from parley.starter import create_starter_project


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    create_starter_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PARLEY_CACHE_DIR", raising=False)
    return tmp_path


def _train(project: Path, *files: str):
    return train("domain.yml", "config.yml", [str(project / "data" / f) for f in files],
                 str(project / "models"))


def _type(model: str) -> str:
    return json.loads(read_archive_member(Path(model), "metadata.json"))["training_type"]


def test_no_stories_or_rules_should_train_nlu_only(project):
    with pytest.warns(UserWarning, match="only an NLU model is trained"):
        result = _train(project, "nlu.yml")
    assert Path(result.model).name.startswith("nlu-")
    assert _type(result.model) == "nlu"


def test_no_nlu_data_should_train_core_only(project):
    with pytest.warns(UserWarning, match="only a Core model is trained"):
        result = _train(project, "stories.yml", "rules.yml")
    assert Path(result.model).name.startswith("core-")
    assert _type(result.model) == "core"


def test_no_data_at_all_should_be_a_clear_error(project):
    (project / "empty").mkdir()
    with pytest.raises(DataError, match="no training data given: .*empty holds no NLU "
                                        "examples and no stories or rules"):
        train("domain.yml", "config.yml", [str(project / "empty")], str(project / "models"))


def test_train_nlu_without_nlu_data_should_be_a_clear_error(project):
    with pytest.raises(DataError, match="no NLU training data"):
        train_nlu("config.yml", str(project / "data" / "stories.yml"), str(project / "models"))


def test_train_core_without_stories_should_be_a_clear_error(project):
    with pytest.raises(DataError, match="no stories or rules"):
        train_core("domain.yml", "config.yml", str(project / "data" / "nlu.yml"),
                   str(project / "models"))
