"""Stories with ``user:``/``bot:`` texts train an end-to-end model, as Rasa 3.6 does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parley.data.importer import TrainingDataImporter
from parley.engine.archive import read_archive_member
from parley.errors import DataError
from parley.model_training import train, train_core
from parley.serving.agent import load
from parley.starter import create_starter_project

E2E = """\
version: "3.1"
stories:
  - story: thanks in words
    steps:
      - user: "cheers, you are a star"
      - action: utter_you_are_welcome
      - intent: ask_watering
      - bot: "Only when the soil is dry."
  - story: a refusal answered in words
    steps:
      - intent: deny
      - bot: "No worries."
rules:
  - rule: a greeting said just so
    steps:
      - user: "good morning, plant doctor"
      - action: utter_reminder_set
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    create_starter_project(tmp_path)
    (tmp_path / "data" / "e2e.yml").write_text(E2E, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PARLEY_CACHE_DIR", raising=False)
    return tmp_path


def _train(project: Path, **kwargs):
    with pytest.warns(UserWarning, match="end-to-end model is trained"):
        return train("domain.yml", "config.yml", [str(project / "data")],
                     str(project / "models"), **kwargs)


def _metadata(model: str) -> dict:
    return json.loads(read_archive_member(Path(model), "metadata.json"))


def _user(text: str, intent: str) -> list[dict]:
    return [{"event": "action", "name": "action_listen"},
            {"event": "user", "text": text,
             "parse_data": {"intent": {"name": intent, "confidence": 1.0}, "entities": []}}]


def test_user_texts_in_stories_should_train_an_end_to_end_model(project):
    result = _train(project)
    meta = _metadata(result.model)
    assert meta["training_type"] == "end_to_end"
    assert not Path(result.model).name.startswith(("nlu-", "core-"))
    # The bot text is an action the policies may predict, as Rasa's e2e actions.
    assert meta["domain"]["e2e_actions"] == ["Only when the soil is dry.", "No worries."]


def test_an_unchanged_end_to_end_project_should_need_no_training(project):
    _train(project)
    assert _train(project, dry_run=True).code == 0


def test_a_changed_story_text_should_retrain_nlu(project):
    _train(project)
    data = project / "data" / "e2e.yml"
    data.write_text(E2E.replace("cheers, you are a star", "cheers, you are a gem"))
    assert _train(project, dry_run=True).code & 2  # NLU must retrain: its vocabulary grew


def test_story_user_texts_should_join_the_nlu_training_data(project):
    importer = TrainingDataImporter("domain.yml", "config.yml", ["data"])
    texts = {(m.text, m.intent) for m in importer.nlu_training_data.examples}
    assert {("cheers, you are a star", None), ("good morning, plant doctor", None)} <= texts
    assert "cheers, you are a star" not in {m.text for m in importer.nlu_data.examples}
    nlu_only = TrainingDataImporter("domain.yml", "config.yml", ["data"], from_stories=False)
    assert None not in {m.intent for m in nlu_only.nlu_training_data.examples}


def test_a_story_text_with_an_intent_should_be_a_labelled_nlu_example(project):
    (project / "data" / "e2e.yml").write_text("""\
version: "3.1"
stories:
  - story: labelled
    steps:
      - intent: ask_watering
        user: "does my [fern](plant) need a drink"
      - action: utter_watering
""")
    importer = TrainingDataImporter("domain.yml", "config.yml", ["data"])
    [message] = [m for m in importer.nlu_training_data.examples
                 if m.text == "does my fern need a drink"]
    assert message.intent == "ask_watering"
    assert [(e.entity, e.value, e.start, e.end) for e in message.entities] == [
        ("plant", "fern", 8, 12)]
    result = train("domain.yml", "config.yml", ["data"], "models")  # no end-to-end turn
    assert _metadata(result.model)["training_type"] == "both"


def test_a_rule_with_a_user_text_should_answer_that_text_only(project):
    agent = load(_train(project).model)
    by_text = agent.predict_next_actions(_user("good morning, plant doctor", "greet"))
    assert by_text[0]["action"] == "utter_reminder_set"
    assert by_text[0]["policy"] == "RulePolicy"
    by_intent = agent.predict_next_actions(_user("hello", "greet"))
    assert by_intent[0]["action"] == "utter_greet"


def test_memoization_should_not_recall_a_story_text(project):
    # Rasa's MemoizationPolicy predicts from the intent of a parsed message, never its
    # text: a story turn given as text alone is not recalled.
    agent = load(_train(project).model)
    actions = agent.predict_next_actions(_user("cheers, you are a star", "affirm"))
    assert actions[0]["action"] != "utter_you_are_welcome"


def test_memoization_should_not_recall_after_a_story_text(project):
    agent = load(_train(project).model)
    events = [*_user("cheers, you are a star", "affirm"),
              {"event": "action", "name": "utter_you_are_welcome"},
              *_user("when do I water?", "ask_watering")]
    # The story's history holds its text turn, which prediction never shows: no recall.
    assert agent.predict_next_actions(events)[0]["action"] != "Only when the soil is dry."


def test_memoization_should_predict_a_bot_text_after_an_intent(project):
    actions = load(_train(project).model).predict_next_actions(_user("no", "deny"))
    assert actions[0]["action"] == "No worries."
    assert actions[0]["policy"] == "MemoizationPolicy"


def test_train_core_with_end_to_end_stories_should_be_a_clear_error(project):
    with pytest.raises(DataError, match="end-to-end turns .* need an NLU model too"):
        train_core("domain.yml", "config.yml", "data", "models")


def test_end_to_end_turns_without_nlu_examples_should_be_a_clear_error(project):
    (project / "data" / "nlu.yml").unlink()
    with pytest.raises(DataError, match="end-to-end turns .* no NLU examples"):
        train("domain.yml", "config.yml", ["data"], "models")
