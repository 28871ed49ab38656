"""Loading archives safely and answering with them."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from parley.errors import ModelArchiveError
from parley.model_training import train_nlu
from parley.serving.agent import load
from parley.starter import create_starter_project



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
    with pytest.raises(ModelArchiveError, match=r"there is no model \(\*\.tar\.gz\) in"):
        load(tmp_path)


def _repack_with(trained: Path, tmp_path: Path, change) -> Path:
    """A copy of ``trained`` whose metadata went through ``change``."""
    import json

    from parley.engine.archive import extract_archive, pack_archive

    root = extract_archive(trained, tmp_path / "x")
    meta = json.loads((root / "metadata.json").read_text())
    change(meta)
    (root / "metadata.json").write_text(json.dumps(meta))
    return pack_archive(root, tmp_path / "changed.tar.gz")


def test_agent_should_run_the_predict_graph_training_wrote(trained, tmp_path):
    def change(meta):
        del meta["train_graph"]  # the Agent must not need it
        meta["predict_graph"]["policies"] = meta["predict_graph"]["policies"][:1]

    agent = load(_repack_with(trained, tmp_path, change))
    assert len(agent.policies) == 1
    assert agent.parse("how often should I water my cactus?")["intent"]["name"] == "ask_watering"


def test_a_model_without_predict_graph_should_be_refused(trained, tmp_path):
    with pytest.raises(ModelArchiveError, match="has no 'predict_graph'"):
        load(_repack_with(trained, tmp_path, lambda meta: meta.pop("predict_graph")))


@pytest.mark.parametrize("text, intent, confidence, entities", [
    ("/greet", "greet", 1.0, []),
    ("/restart", "restart", 1.0, []),
    ("  /greet@0.8 ", "greet", 0.8, []),
    ('/ask_watering{"plant": "cactus"}', "ask_watering", 1.0, [("plant", "cactus")]),
    ('/ask_watering{"plant": ["fern", "orchid"]}', "ask_watering", 1.0,
     [("plant", "fern"), ("plant", "orchid")]),
])
def test_intent_messages_should_be_read_not_classified(trained, text, intent, confidence,
                                                       entities):
    result = load(trained).parse(text)
    assert result["intent"] == {"name": intent, "confidence": confidence}
    assert result["intent_ranking"] == [result["intent"]]
    assert [(e["entity"], e["value"]) for e in result["entities"]] == entities


def test_an_unknown_intent_message_should_warn_and_be_classified(trained):
    with pytest.warns(UserWarning, match="names the intent 'nope', which the model does not"):
        result = load(trained).parse("/nope")
    assert result["intent"]["name"] != "nope"
    assert len(result["intent_ranking"]) > 1
