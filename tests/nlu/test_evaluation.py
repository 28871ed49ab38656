"""NLU evaluation metrics on hand-made cases whose answers are worked out by hand."""

from __future__ import annotations

import math

import pytest

from parley.data.message import Entity, Message
from parley.data.training_data import TrainingData
from parley.nlu.evaluation import (
    accuracy, entity_report, evaluate_nlu, evaluate_parses, label_scores, macro_f1,
)


def parse(intent: str | None, confidence: float = 0.9, entities=(), ranking=None, **extra):
    result = {"text": "", "intent": {"name": intent, "confidence": confidence},
              "entities": [dict(e) for e in entities],
              "intent_ranking": ranking if ranking is not None else
              [{"name": intent, "confidence": confidence}]}
    result.update(extra)
    return result


def ent(start, end, entity, role=None, value="x"):
    out = {"start": start, "end": end, "value": value, "entity": entity}
    if role is not None:
        out["role"] = role
    return out


# --- intents ----------------------------------------------------------------------------
def test_macro_f1_should_average_over_gold_and_predicted_labels():
    gold = ["a", "a", "a", "b", "b", "c"]
    predicted = ["a", "a", "b", "b", "d", "c"]
    # a: P 2/2 R 2/3 → F1 0.8; b: P 1/2 R 1/2 → 0.5; c: 1.0; d (never gold): 0.0
    assert macro_f1(gold, predicted) == pytest.approx((0.8 + 0.5 + 1.0 + 0.0) / 4)
    assert accuracy(gold, predicted) == pytest.approx(4 / 6)
    scores = label_scores(gold, predicted)
    assert list(scores) == ["a", "b", "c", "d"]
    assert (scores["a"].precision, scores["a"].recall, scores["a"].support) == (1.0, pytest.approx(2 / 3), 3)
    assert (scores["d"].precision, scores["d"].recall, scores["d"].f1, scores["d"].support) == (0, 0, 0, 0)


def test_label_never_predicted_should_score_zero_not_fail():
    scores = label_scores(["a", "b"], ["a", "a"])
    assert scores["b"].precision == 0.0 and scores["b"].f1 == 0.0
    assert scores["a"].f1 == pytest.approx(2 / 3)


def test_retrieval_intent_should_be_compared_by_its_base_intent():
    messages = [Message("what is your name", "faq/ask_name"), Message("hi", "greet")]
    report = evaluate_parses(messages, [parse("faq"), parse("faq")])
    assert report.intent_accuracy == 0.5
    assert report.intents is not None
    assert report.intents.errors[0].gold == "greet" and report.intents.errors[0].predicted == "faq"
    assert report.responses is None  # no response_selector in the parse results


def test_fallback_answer_should_count_as_wrong_and_the_ranking_score_should_undo_it():
    ranking = [{"name": "nlu_fallback", "confidence": 0.3}, {"name": "greet", "confidence": 0.25},
               {"name": "bye", "confidence": 0.2}]
    report = evaluate_parses([Message("hi", "greet"), Message("bye", "bye")],
                             [parse("nlu_fallback", 0.3, ranking=ranking), parse("bye", 0.9)])
    assert report.intent_accuracy == 0.5  # as returned, as Rasa scores it
    assert report.ranking_accuracy == 1.0  # the classifier's own top intent
    assert report.fallback_rate == 0.5
    assert report.intents is not None and report.intents.errors[0].predicted == "nlu_fallback"


def test_calibration_should_use_the_classifiers_confidence_not_the_fallbacks():
    ranking = [{"name": "nlu_fallback", "confidence": 0.3}, {"name": "greet", "confidence": 0.25}]
    report = evaluate_parses([Message("hi", "greet"), Message("yo", "greet")],
                             [parse("nlu_fallback", 0.3, ranking=ranking), parse("bye", 0.95)])
    assert report.calibration is not None
    by_bin = {(round(b.low, 1), round(b.high, 1)): b for b in report.calibration.bins if b.count}
    assert by_bin[(0.2, 0.3)].accuracy == 1.0 and by_bin[(0.2, 0.3)].mean_confidence == 0.25
    assert by_bin[(0.9, 1.0)].accuracy == 0.0
    # |1 - 0.25| and |0 - 0.95|, each half of the messages
    assert report.expected_calibration_error == pytest.approx((0.75 + 0.95) / 2)
    assert "intent_calibration.json" in report.report_files()


def test_missing_intent_prediction_should_count_as_wrong_and_messages_without_gold_skipped():
    messages = [Message("hi", "greet"), Message("no label")]
    report = evaluate_parses(messages, [parse(None, 0.0), parse("greet")])
    assert report.intents is not None and report.intents.n_examples == 1
    assert report.intent_accuracy == 0.0
    assert report.intents.errors[0].predicted == ""


def test_intent_report_should_have_rasas_shape():
    report = evaluate_parses([Message("a", "x"), Message("b", "x"), Message("c", "y")],
                             [parse("x"), parse("y"), parse("y")])
    data = report.report_files()["intent_report.json"]
    assert data["x"] == {"precision": 1.0, "recall": 0.5, "f1-score": pytest.approx(2 / 3),
                         "support": 2, "confused_with": {"y": 1}}
    assert data["accuracy"] == pytest.approx(2 / 3)
    # y: P 1/2, R 1/1 → F1 2/3; x: P 1, R 1/2 → F1 2/3
    assert data["macro avg"]["f1-score"] == pytest.approx(2 / 3)
    assert data["weighted avg"]["support"] == 3
    errors = report.report_files()["intent_errors.json"]
    assert errors == [{"text": "b", "intent": "x",
                       "intent_prediction": {"name": "y", "confidence": 0.9}}]


# --- entities ---------------------------------------------------------------------------
def test_entity_should_be_right_only_when_span_type_and_role_match():
    gold = [[Entity(0, 5, "Paris", "city", role="from"), Entity(9, 13, "Rome", "city", role="to")]]
    predicted = [[ent(0, 5, "city", "from"),   # right
                  ent(9, 13, "city", "from")]]  # role wrong
    report = entity_report(["Paris to Rome"], gold, predicted)
    assert (report.n_correct, report.n_gold, report.n_predicted) == (1, 2, 2)
    assert report.precision == 0.5 and report.recall == 0.5 and report.f1 == 0.5
    assert len(report.errors) == 1


@pytest.mark.parametrize("predicted, correct", [
    ([ent(0, 4, "city")], 0),              # span off by one
    ([ent(0, 5, "town")], 0),              # type wrong
    ([ent(0, 5, "city", role="to")], 0),   # a role where gold has none
    ([ent(0, 5, "city", value="other")], 1),  # the value is not compared
])
def test_entity_match_should_need_exact_keys(predicted, correct):
    report = entity_report(["Paris"], [[Entity(0, 5, "Paris", "city")]], [predicted])
    assert report.n_correct == correct


def test_duplicate_predictions_should_match_a_gold_entity_once():
    report = entity_report(["Paris"], [[Entity(0, 5, "Paris", "city")]],
                           [[ent(0, 5, "city"), ent(0, 5, "city")]])
    assert (report.n_correct, report.n_predicted) == (1, 2)
    assert report.precision == 0.5 and report.recall == 1.0
    assert report.f1 == pytest.approx(2 / 3)


def test_empty_predictions_should_give_zero_and_no_gold_should_give_no_f1():
    missed = entity_report(["Paris"], [[Entity(0, 5, "Paris", "city")]], [[]])
    assert (missed.precision, missed.recall, missed.f1) == (0.0, 0.0, 0.0)
    assert missed.types["city"].support == 1 and missed.types["city"].f1 == 0.0
    none = entity_report(["hi"], [[]], [[]])
    assert none.f1 is None and none.errors == []
    spurious = entity_report(["hi"], [[]], [[ent(0, 2, "city")]])
    assert spurious.f1 is None and spurious.precision == 0.0 and len(spurious.errors) == 1


def test_entity_types_should_be_scored_apart():
    gold = [[Entity(0, 1, "a", "x"), Entity(2, 3, "b", "y")], [Entity(0, 1, "c", "x")]]
    predicted = [[ent(0, 1, "x"), ent(2, 3, "x")], [ent(0, 1, "x")]]
    report = entity_report(["a b", "c"], gold, predicted)
    assert report.types["x"].precision == pytest.approx(2 / 3) and report.types["x"].recall == 1.0
    assert report.types["y"].recall == 0.0 and report.types["y"].support == 1
    assert report.as_dict()["micro avg"]["f1-score"] == pytest.approx(2 * 2 / (3 + 3))


def test_pretrained_extractor_entities_should_be_left_out():
    found = {**ent(0, 5, "time"), "extractor": "DucklingEntityExtractor"}
    report = evaluate_parses([Message("at 10", "ask")], [parse("ask", entities=[found])])
    assert report.entities.n_predicted == 0


# --- response selection, whole report ---------------------------------------------------
def selector(key: str, retrieval_intent: str = "faq", confidence: float = 0.8):
    return {"all_retrieval_intents": [retrieval_intent],
            retrieval_intent: {"response": {"intent_response_key": key, "confidence": confidence,
                                            "utter_action": f"utter_{key}", "responses": []},
                               "ranking": []}}


def test_response_selection_should_compare_full_retrieval_intents():
    messages = [Message("your name?", "faq/ask_name"), Message("weather?", "faq/ask_weather"),
                Message("hi", "greet")]
    parses = [parse("faq", response_selector=selector("faq/ask_name")),
              parse("faq", response_selector=selector("faq/ask_name", "default")),
              parse("greet", response_selector=selector("faq/ask_name"))]
    report = evaluate_parses(messages, parses)
    assert report.responses is not None and report.responses.n_examples == 2
    assert report.response_accuracy == 0.5
    errors = report.report_files()["response_selection_errors.json"]
    assert errors == [{"text": "weather?", "intent_response_key_target": "faq/ask_weather",
                       "intent_response_key_prediction": {"name": "faq/ask_name",
                                                          "confidence": 0.8}}]


def test_evaluate_nlu_should_parse_each_text_and_time_it():
    data = TrainingData(examples=[Message("hello", "greet"), Message("bye", "goodbye"),
                                  Message("go to [x]", "move", [Entity(6, 9, "x", "place")])])
    seen = []

    def fake_parse(text: str):
        seen.append(text)
        if text == "hello":
            return parse("greet")
        return parse("greet", entities=[ent(6, 9, "place")] if text.startswith("go") else [])

    report = evaluate_nlu(fake_parse, data, warmup=2)
    assert seen == ["hello", "bye", "hello", "bye", "go to [x]"]
    assert report.n_messages == 3 and report.intent_accuracy == pytest.approx(1 / 3)
    assert report.entity_f1 == 1.0
    assert len(report.parse_ms) == 3 and report.parse_p50_ms is not None
    assert report.parse_p99_ms is not None and report.parse_p99_ms >= report.parse_p50_ms
    summary = report.summary()
    assert "accuracy 0.333" in summary and "entities (exact spans): F1 1.000" in summary
    as_dict = report.as_dict()
    assert as_dict["intent_macro_f1"] == pytest.approx(macro_f1(["greet", "goodbye", "move"],
                                                                ["greet", "greet", "greet"]))
    assert not math.isnan(as_dict["parse_ms"]["p50"])


def test_evaluate_nlu_should_take_an_agent_with_parse():
    class Agent:
        def parse(self, text: str):
            return parse("greet")

    report = evaluate_nlu(Agent(), [Message("hi", "greet")])
    assert report.intent_accuracy == 1.0 and report.entity_f1 is None
    assert "none in the test data" in report.summary()


def test_mismatched_lengths_should_raise():
    with pytest.raises(ValueError, match="2 test messages but 1 parse results"):
        evaluate_parses([Message("a", "x"), Message("b", "x")], [parse("x")])
