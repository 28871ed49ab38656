"""Every shared bot Parley can train trains with Parley's components, parses and predicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.data.importer import TrainingDataImporter
from parley.dialogue.evaluation import evaluate_test_stories
from parley.data.validation import validate_project
from parley.errors import ParleyWarning, ValidationError
from parley.model_training import train
from parley.serving.agent import load
from tests.conftest import SHARED_DATA, needs_shared_data

pytestmark = needs_shared_data

BOTS = SHARED_DATA / "bots"
# carbon-bot: a Rasa 2.x domain.
TRAINABLE = sorted(p.name for p in BOTS.iterdir() if p.is_dir()
                   and p.name != "carbon-bot") if BOTS.is_dir() else []


@pytest.fixture
def parley_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No pipeline and no policies: Parley's defaults, which use only available components."""
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "config.yml"
    config.write_text("language: en\n")
    return config


@pytest.mark.parametrize("bot", TRAINABLE)
def test_bot_should_train_parse_and_predict(bot, parley_config, tmp_path):
    root = BOTS / bot
    result = train(str(root / "domain.yml"), str(parley_config), [str(root / "data")],
                   str(tmp_path / "models"), core_additional_arguments={"augmentation_factor": 0})
    agent = load(result.model)
    importer = TrainingDataImporter(root / "domain.yml", parley_config, [root / "data"])
    example = importer.nlu_data.examples[0]
    parsed = agent.parse(example.text)
    assert parsed["intent"]["name"] == example.intent
    events = [{"event": "action", "name": "action_listen"},
              {"event": "user", "text": example.text,
               "parse_data": {"intent": parsed["intent"], "entities": parsed["entities"]}}]
    actions = agent.predict_next_actions(events)
    assert actions and all(a["action"] in agent.domain.action_names for a in actions)


def test_rasa_init_moodbot_should_pass_all_its_test_stories(parley_config, tmp_path):
    root = BOTS / "rasa-init-moodbot"
    result = train(str(root / "domain.yml"), str(parley_config), [str(root / "data")],
                   str(tmp_path / "models"))
    agent = load(result.model)
    tests = TrainingDataImporter(root / "domain.yml", None, [root / "tests"]).test_stories
    results = evaluate_test_stories(agent.policies, tests, agent.domain)
    assert sum(r.passed for r in results) == len(tests) == 7


def test_rasa_example_rules_should_train_as_rasa_trains_it_with_warnings(parley_config, tmp_path):
    # Its NLU data uses intents and entities its domain lacks: `rasa data validate` (and
    # Parley's) fail it, `rasa train` trains it; the NLU model knows those intents.
    root = BOTS / "rasa-example-rules"
    importer = TrainingDataImporter(root / "domain.yml", parley_config, [root / "data"])
    with pytest.raises(ValidationError, match="the intent 'request_restaurant' is not in the domain"):
        validate_project(importer).raise_for_errors()
    with pytest.warns(ParleyWarning, match="the intent 'request_restaurant' is not in the domain"):
        result = train(str(root / "domain.yml"), str(parley_config), [str(root / "data")],
                       str(tmp_path / "models"))
    agent = load(result.model)
    assert "request_restaurant" not in agent.domain.intents
    assert agent.parse("I am looking for a restaurant")["intent"]["name"] == "request_restaurant"
