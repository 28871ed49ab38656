"""Loading archives safely and answering with them."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from parley.errors import ModelArchiveError
from parley.model_training import train, train_nlu
from parley.serving.agent import load
from parley.starter import create_starter_project


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("starter")
    create_starter_project(root)
    result = train(str(root / "domain.yml"), str(root / "config.yml"), [str(root / "data")],
                   str(root / "models"))
    return Path(result.model)


def test_parse_should_give_rasas_shape(trained):
    result = load(trained).parse("how often should I water my cactus?")
    assert set(result) >= {"text", "intent", "entities", "intent_ranking"}
    assert result["intent"]["name"] == "ask_watering"
    assert result["intent_ranking"][0] == result["intent"]
    assert [(e["entity"], e["value"]) for e in result["entities"]] == [("plant", "cactus")]


def test_parse_should_map_synonyms(trained):
    entities = load(trained).parse("tips for phalaenopsis please")["entities"]
    assert [(e["entity"], e["value"]) for e in entities] == [("plant", "orchid")]


def test_predict_next_actions_should_follow_the_stories(trained):
    agent = load(trained)
    events = [{"event": "action", "name": "action_listen"},
              {"event": "user", "text": "hello",
               "parse_data": {"intent": {"name": "greet", "confidence": 1.0}, "entities": []}}]
    actions = [a["action"] for a in agent.predict_next_actions(events)]
    assert actions == ["utter_greet", "action_listen"]


def test_rules_should_answer_anywhere(trained):
    events = [{"event": "action", "name": "action_listen"},
              {"event": "user", "text": "are you a bot?",
               "parse_data": {"intent": {"name": "bot_challenge", "confidence": 1.0},
                              "entities": []}}]
    actions = load(trained).predict_next_actions(events)
    assert [a["action"] for a in actions] == ["utter_iamabot", "action_listen"]
    assert actions[0]["policy"] == "RulePolicy"


def test_loading_a_directory_should_take_the_newest_archive(trained):
    assert load(trained.parent).model_id == load(trained).model_id


def test_an_nlu_model_should_refuse_to_predict_actions(tmp_path):
    create_starter_project(tmp_path)
    path = train_nlu(str(tmp_path / "config.yml"), str(tmp_path / "data" / "nlu.yml"),
                     str(tmp_path / "models"))
    agent = load(path)
    assert agent.parse("hi")["intent"]["name"] == "greet"
    with pytest.raises(ModelArchiveError, match="no Core part"):
        agent.predict_next_actions([])


def _tar_with(path: Path, name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = link
        data = b"{}"
        info.size = 0 if link else len(data)
        tar.addfile(info, None if link else io.BytesIO(data))
    return path


@pytest.mark.parametrize("name, kind, link", [
    ("../escape.json", tarfile.REGTYPE, ""),
    ("/tmp/parley-absolute.json", tarfile.REGTYPE, ""),
    ("metadata.json", tarfile.SYMTYPE, "/etc/passwd"),
])
def test_hostile_archives_should_be_refused(tmp_path, name, kind, link):
    archive = _tar_with(tmp_path / "evil.tar.gz", name, kind, link)
    with pytest.raises(ModelArchiveError):
        load(archive)
    assert not (tmp_path.parent / "escape.json").exists()


def test_a_corrupt_archive_should_be_a_clear_error(tmp_path):
    bad = tmp_path / "model.tar.gz"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(ModelArchiveError, match="not a Parley model archive"):
        load(bad)


def test_a_missing_model_should_say_so(tmp_path):
    with pytest.raises(ModelArchiveError, match="no model archive"):
        load(tmp_path)
