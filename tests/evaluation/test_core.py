"""Test stories replayed with real models: user texts parsed, reports and marks as Rasa's."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from parley.data.formats.story_yaml import read_stories, read_story_file
from parley.dialogue.evaluation import ActionCheck, UserCheck
from parley.evaluation.core import (
    FAILED_STORIES_FILE, REPORT_FILE, SUCCESSFUL_STORIES_FILE, WARNINGS_FILE,
    classification_report, evaluate_core)
from parley.evaluation.run import find_test_stories
from parley.serving.agent import load
from tests.conftest import needs_shared_data
from tests.evaluation.conftest import BOTS

pytestmark = needs_shared_data

# Rasa 3.6 (with TEDPolicy, texts parsed): moodbot 7/7, formbot 3/3, e2ebot 2/4. The two
# e2ebot stories fail on the parse of "I can always go for sushi" / "I had that yesterday".
EXPECTED = {
    "rasa-init-moodbot": (7, 7),
    "rasa-example-formbot": (3, 3),
    "rasa-example-e2ebot": (2, 4),
}

# "amazing" says mood_great; the story claims mood_unhappy, and the sad path after it.
MISLABELLED = """
stories:
- story: amazing is not unhappy
  steps:
  - user: |
      hello there!
    intent: greet
  - action: utter_greet
  - user: |
      amazing
    intent: mood_unhappy
  - action: utter_cheer_up
  - action: utter_did_that_help
"""

WRONG_ACTION = """
stories:
- story: greets back with goodbye
  steps:
  - user: |
      hello there!
    intent: greet
  - action: utter_goodbye
- story: happy
  steps:
  - intent: greet
  - action: utter_greet
"""


@cache
def agent(name: str, model: Path):
    return load(model)


def stories(text: str, tmp_path: Path):
    path = tmp_path / "test_stories.yml"
    path.write_text(text)
    return read_stories(text, path).stories


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bot_test_stories_should_pass_with_their_texts_parsed_by_the_model(name, bot_model):
    model = agent(name, bot_model(name))
    _, found = find_test_stories([str(BOTS / name / "tests")])
    report = evaluate_core(model, found)
    assert report.parsed
    assert (len(report.passed), report.n_stories) == EXPECTED[name], report.summary()
    turns = [c for r in report.results for c in r.user_checks]
    assert turns and all(c.parsed for c in turns)
    assert sum(not c.correct for c in turns) == EXPECTED[name][1] - EXPECTED[name][0]


def test_e2ebot_failures_should_come_from_the_parse_of_the_text(bot_model):
    model = agent("rasa-example-e2ebot", bot_model("rasa-example-e2ebot"))
    _, found = find_test_stories([str(BOTS / "rasa-example-e2ebot" / "tests")])
    failures = [r.first_failure for r in evaluate_core(model, found).failed]
    assert [(f.text, f.gold_intent) for f in failures] == [
        ("I can always go for sushi", "affirm"), ("I had that yesterday", "deny")]
    assert all(isinstance(f, UserCheck) and f.predicted_intent != f.gold_intent
               for f in failures)


def test_story_whose_intent_disagrees_with_its_text_should_fail(bot_model, tmp_path):
    model = agent("rasa-init-moodbot", bot_model("rasa-init-moodbot"))
    report = evaluate_core(model, stories(MISLABELLED, tmp_path))
    result = report.results[0]
    assert not result.passed
    assert result.first_failure == UserCheck("amazing", "mood_unhappy", "mood_great", (), (),
                                             confidence=result.first_failure.confidence)
    # The conversation goes on with the parse: the policies answer mood_great.
    assert result.checks[2] == ActionCheck("utter_cheer_up", "utter_happy", "AugmentedMemoizationPolicy",
                                           1.0)
    # Taking the intents from the file (no parse) the same story passes: the text decides.
    assert evaluate_core(model, stories(MISLABELLED, tmp_path), parse=False).results[0].passed


def test_failed_stories_should_be_marked_as_rasa_marks_them(bot_model, tmp_path):
    model = agent("rasa-init-moodbot", bot_model("rasa-init-moodbot"))
    report = evaluate_core(model, stories(MISLABELLED + WRONG_ACTION.replace("stories:", ""),
                                          tmp_path))
    report.write(tmp_path / "out")
    text = (tmp_path / "out" / FAILED_STORIES_FILE).read_text()
    source = tmp_path / "test_stories.yml"
    assert f"- story: amazing is not unhappy ({source})\n" in text
    assert "  - intent: mood_unhappy  # predicted: mood_great: amazing\n" \
           "    user: amazing\n" in text
    assert "  - action: utter_cheer_up  # predicted: utter_happy\n" in text
    assert "  - action: utter_goodbye  # predicted: utter_greet\n" in text
    assert "  - action: action_listen\n" not in text  # listens are written only when wrong
    assert "story: happy" not in text  # it passed
    again = read_story_file(tmp_path / "out" / FAILED_STORIES_FILE).stories
    assert [s.name for s in again] == [f"amazing is not unhappy ({source})",
                                       f"greets back with goodbye ({source})"]
    assert again[0].steps[2].intent == "mood_unhappy" and again[0].steps[2].text == "amazing"


def test_story_report_should_hold_sklearn_scores_and_conversation_accuracy(bot_model, tmp_path):
    model = agent("rasa-init-moodbot", bot_model("rasa-init-moodbot"))
    report = evaluate_core(model, stories(WRONG_ACTION, tmp_path))
    report.write(tmp_path / "out", successes=True)
    data = json.loads((tmp_path / "out" / REPORT_FILE).read_text())
    # targets utter_goodbye, action_listen, utter_greet, action_listen; the first story
    # gets utter_greet and then action_default_fallback (no story goes on from there)
    assert data["utter_goodbye"] == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0,
                                     "support": 1}
    assert data["utter_greet"] == {"precision": 0.5, "recall": 1.0,
                                   "f1-score": pytest.approx(2 / 3), "support": 1}
    assert data["action_listen"] == {"precision": 1.0, "recall": 0.5,
                                     "f1-score": pytest.approx(2 / 3), "support": 2}
    # action_default_fallback is no target label: sklearn reports "micro avg", not accuracy
    assert data["micro avg"] == {"precision": pytest.approx(2 / 3), "recall": 0.5,
                                 "f1-score": pytest.approx(4 / 7), "support": 4}
    assert data["conversation_accuracy"] == {"accuracy": 0.5, "correct": 1,
                                             "with_warnings": 0, "total": 2}
    assert set(data) == {"action_listen", "utter_goodbye", "utter_greet", "micro avg",
                         "macro avg", "weighted avg", "conversation_accuracy"}
    successful = (tmp_path / "out" / SUCCESSFUL_STORIES_FILE).read_text()
    assert "- story: happy" in successful and "goodbye" not in successful
    assert (tmp_path / "out" / WARNINGS_FILE).read_text() == "# No warnings for test stories\n"
    png = (tmp_path / "out" / "story_confusion_matrix.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_e2e_report_should_score_intents_and_entities_too(bot_model, tmp_path):
    model = agent("rasa-init-moodbot", bot_model("rasa-init-moodbot"))
    report = evaluate_core(model, stories(MISLABELLED, tmp_path), e2e=True)
    plain, e2e = report.story_report(e2e=False), report.story_report()
    assert "mood_unhappy" not in plain and "greet" not in plain
    assert e2e["mood_unhappy"]["support"] == 1 and e2e["mood_unhappy"]["recall"] == 0.0
    assert e2e["greet"]["f1-score"] == 1.0
    assert "micro avg" in e2e  # mood_great was predicted but is no label of the stories


def test_wrong_entity_should_fail_an_end_to_end_test_and_show_the_prediction(bot_model,
                                                                            tmp_path):
    model = agent("rasa-example-formbot", bot_model("rasa-example-formbot"))
    good, _ = find_test_stories([str(BOTS / "rasa-example-formbot" / "tests")])
    text = Path(good[0], "test_stories.yml").read_text()
    text = text.replace("[afghan](cuisine) food", "[afghan](outdoor_seating) food")
    # Without --e2e the intents are checked, not the entities (as Rasa's plain test)
    assert all(r.passed for r in evaluate_core(model, stories(text, tmp_path)).results)
    report = evaluate_core(model, stories(text, tmp_path), e2e=True)
    assert [r.passed for r in report.results] == [True, False, True]
    failure = report.results[1].first_failure
    assert isinstance(failure, UserCheck) and failure.intent_correct
    assert not failure.entities_correct
    report.write(tmp_path / "out")
    marked = (tmp_path / "out" / FAILED_STORIES_FILE).read_text()
    assert "  - intent: inform  # predicted: inform: [afghan](cuisine) food\n" in marked
    assert "    user: '[afghan](outdoor_seating) food'\n" in marked
    data = json.loads((tmp_path / "out" / REPORT_FILE).read_text())
    assert data["[afghan](outdoor_seating)"]["recall"] == 0.0


def test_forms_should_be_replayed_from_the_story_events(bot_model, tmp_path):
    model = agent("rasa-example-formbot", bot_model("rasa-example-formbot"))
    _, found = find_test_stories([str(BOTS / "rasa-example-formbot" / "tests")])
    report = evaluate_core(model, found)
    report.write(tmp_path / "out", successes=True)
    written = (tmp_path / "out" / SUCCESSFUL_STORIES_FILE).read_text()
    assert written.count("  - active_loop: restaurant_form\n") == 3
    assert written.count("  - active_loop: null\n") == 3
    # Replaying what Parley wrote gives the same results.
    again = read_story_file(tmp_path / "out" / SUCCESSFUL_STORIES_FILE).stories
    assert all(r.passed for r in evaluate_core(model, again).results)


def test_classification_report_should_match_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    targets = ["a", "b", "a", "c", "b", "a", "c", "c"]
    for predictions in (["a", "b", "b", "c", "b", "a", "a", "c"],  # within the labels
                        ["a", "x", "b", "c", "y", "a", "a", "c"]):  # outside: micro avg
        ours = classification_report(targets, predictions)
        theirs = metrics.classification_report(targets, predictions, labels=sorted(set(targets)),
                                               output_dict=True, zero_division=0)
        assert ours.keys() == theirs.keys()
        for key, value in theirs.items():
            assert ours[key] == (pytest.approx(value) if isinstance(value, float) else
                                 {k: pytest.approx(v) for k, v in value.items()})


def test_text_without_an_intent_should_be_parsed_and_not_checked(bot_model, tmp_path):
    model = agent("rasa-init-moodbot", bot_model("rasa-init-moodbot"))
    text = ("stories:\n- story: end to end\n  steps:\n  - user: hello there!\n"
            "  - action: utter_greet\n  - user: amazing\n  - action: utter_happy\n")
    result = evaluate_core(model, stories(text, tmp_path)).results[0]
    assert result.passed
    assert [(c.gold_intent, c.predicted_intent) for c in result.user_checks] == [
        (None, "greet"), (None, "mood_great")]
