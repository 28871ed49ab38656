from __future__ import annotations

import pytest

from parley.data.formats.nlu_yaml import read_nlu_file
from parley.data.message import Message
from parley.errors import ConfigError
from parley.nlu.classifiers.logistic_regression import LogisticRegressionClassifier
from parley.nlu.featurizers.count_vectors import CountVectorsFeaturizer
from parley.nlu.featurizers.regex import RegexFeaturizer
from parley.nlu.tokenizers.whitespace import WhitespaceTokenizer
from tests.conftest import SHARED_DATA, needs_shared_data
from tests.nlu._helpers import fresh, run, toy_data


def _pipeline(**params: object) -> list:  # type: ignore[type-arg]
    return [WhitespaceTokenizer(), CountVectorsFeaturizer(),
            CountVectorsFeaturizer(analyzer="char_wb", min_ngram=1, max_ngram=4),
            LogisticRegressionClassifier(**params)]  # type: ignore[arg-type]


def test_should_learn_a_toy_set() -> None:
    messages = run(_pipeline(), toy_data(), fresh(["hello friend", "bye now", "book a flight to Rome"]))
    assert [m.data["intent"]["name"] for m in messages] == ["greet", "goodbye", "book_flight"]


def test_ranking_should_be_sorted_and_match_the_intent() -> None:
    message = run(_pipeline(), toy_data(), fresh(["hello"]))[0]
    ranking = message.data["intent_ranking"]
    confidences = [r["confidence"] for r in ranking]
    assert confidences == sorted(confidences, reverse=True)
    assert ranking[0] == message.data["intent"]
    assert sum(confidences) == pytest.approx(1.0)


def test_ranking_length_should_truncate_and_zero_should_keep_all() -> None:
    assert len(run(_pipeline(ranking_length=2), toy_data(), fresh(["hi"]))[0].data["intent_ranking"]) == 2
    assert len(run(_pipeline(ranking_length=0), toy_data(), fresh(["hi"]))[0].data["intent_ranking"]) == 3


def test_retrieval_intents_should_be_learned_by_their_base_intent() -> None:
    data = toy_data()
    data.examples.append(Message("what is your name", intent="faq/ask_name"))
    message = run(_pipeline(), data, fresh(["what is your name"]))[0]
    assert message.data["intent"]["name"] == "faq"


def test_featurizers_param_should_select_features() -> None:
    data = toy_data()
    classifier = LogisticRegressionClassifier(featurizers=["RegexFeaturizer"])
    run([WhitespaceTokenizer(), CountVectorsFeaturizer(), RegexFeaturizer(), classifier], data)
    assert classifier.feature_layout_ == [["RegexFeaturizer", 2]]


def test_other_solvers_should_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="liblinear"):
        run(_pipeline(solver="liblinear"), toy_data())


def test_features_from_another_pipeline_should_be_rejected() -> None:
    classifier = LogisticRegressionClassifier()
    run([WhitespaceTokenizer(), CountVectorsFeaturizer(), classifier], toy_data())
    other = run([WhitespaceTokenizer(), CountVectorsFeaturizer(analyzer="char")], toy_data(), fresh(["hi"]))
    with pytest.raises(ValueError, match="trained on features"):
        classifier.process(other)


@needs_shared_data
def test_snips_small_accuracy_should_reach_ninety_percent() -> None:
    train = read_nlu_file(SHARED_DATA / "snips-small" / "data" / "nlu.yml")
    test = read_nlu_file(SHARED_DATA / "snips-small" / "test" / "test_nlu.yml").intent_examples
    messages = run(_pipeline(), train, fresh([m.text for m in test]))
    correct = sum(m.data["intent"]["name"] == t.base_intent for m, t in zip(messages, test, strict=True))
    assert correct / len(test) >= 0.90
