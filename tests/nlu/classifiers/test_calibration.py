"""Calibrated intent confidences: the temperature, its folds, and the classifier using it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.sparse import csr_matrix

from parley.data.formats.nlu_yaml import read_nlu_file
from parley.errors import ModelArchiveError
from parley.nlu.classifiers.calibration import (
    IDENTITY_TOP_MAP, calibrated_softmax, cross_validated_calibration,
    cross_validated_temperature, fit_temperature, fit_top_map, grouped_folds,
    paraphrase_groups, saved_top_map, scaled_softmax, top_log_odds,
)
from parley.nlu.classifiers.logistic_regression import LogisticRegressionClassifier
from parley.nlu.featurizers.count_vectors import CountVectorsFeaturizer
from parley.nlu.tokenizers.whitespace import WhitespaceTokenizer
from parley.nlu.reliability import reliability
from tests.conftest import SHARED_DATA, needs_shared_data
from tests.nlu._helpers import fresh, run, toy_data


def test_fit_temperature_should_recover_the_temperature_that_made_the_labels() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(4000, 6))
    probabilities = scaled_softmax(logits, 2.5)
    labels = np.array([rng.choice(6, p=p) for p in probabilities])
    assert fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.1)


def test_a_perfect_small_cross_validation_should_not_make_every_confidence_certain() -> None:
    logits = np.tile([[3.0, 0.0, 0.0]], (12, 1))
    temperature = fit_temperature(logits, np.zeros(12, dtype=int))
    assert 0.1 < temperature < 1.0


def test_fit_temperature_should_skip_rows_whose_class_was_not_learned() -> None:
    logits = np.array([[2.0, 0.0, -np.inf], [0.0, 2.0, -np.inf], [1.0, 0.0, -np.inf]])
    labels = np.array([0, 1, 2])  # class 2 absent from the fold: no information
    assert np.isfinite(fit_temperature(logits, labels))
    assert fit_temperature(np.full((2, 2), -np.inf), np.array([0, 1])) == 1.0


def test_fit_top_map_should_recover_the_map_that_made_the_top_right() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, size=(6000, 5))
    odds = top_log_odds(logits, 1.0)
    right = rng.random(6000) < 1 / (1 + np.exp(-(0.6 * odds + 0.4)))
    top = logits.argmax(axis=1)
    labels = np.where(right, top, (top + 1 + rng.integers(0, 4, 6000)) % 5)
    slope, intercept = fit_top_map(logits, labels, 1.0)
    assert slope == pytest.approx(0.6, abs=0.06)
    assert intercept == pytest.approx(0.4, abs=0.08)


def test_fit_top_map_should_stay_near_identity_for_a_perfect_small_bot() -> None:
    logits = np.tile([2.0, 0.0, 0.0], (12, 1))
    slope, intercept = fit_top_map(logits, np.zeros(12, dtype=int), 1.0)
    confidence = calibrated_softmax(np.array([[0.1, 0.0, 0.0]]), 1.0, (slope, intercept))
    assert confidence.max() < 0.9  # a near-tie still reaches the fallback
    assert fit_top_map(logits[:3], np.zeros(3, dtype=int), 1.0) == IDENTITY_TOP_MAP


def test_calibrated_softmax_should_keep_the_order_and_sum_to_one() -> None:
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 4, size=(500, 7))
    logits[0] = [60.0, 0.0, -5.0, 1.0, 2.0, 3.0, 4.0]  # p_top rounds to 1.0
    logits[1, 3] = -np.inf  # a class never learned
    for top_map in [(0.3, -2.0), (0.6, 0.1), (3.0, 1.5)]:
        p = calibrated_softmax(logits, 0.7, top_map)
        assert np.allclose(p.sum(axis=1), 1.0)
        assert np.array_equal(np.argsort(-p, axis=1, kind="stable"),
                              np.argsort(-logits, axis=1, kind="stable"))
        assert p[1, 3] == 0.0
    assert np.array_equal(calibrated_softmax(logits, 0.7), scaled_softmax(logits, 0.7))
    assert (calibrated_softmax(logits[:1], 0.7, (0.6, 0.1))[0, 1:] > 0).all()


def test_one_row_should_get_the_same_floats_as_in_a_batch() -> None:
    # a parse takes calibrated_softmax's one-row path; it must give the batch's floats
    rng = np.random.default_rng(5)
    logits = rng.normal(0, 6, size=(400, 9))
    logits[0] = [900.0, 0.0, -5.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]  # exp overflows
    logits[1, 2:] = -np.inf  # two classes learned
    logits[2, 1:] = -np.inf  # one class learned: no rest
    logits[3] = 0.0  # all tied
    for top_map in [(0.3, -2.0), (1.2, 0.4), (3.0, 800.0), (3.0, -800.0)]:
        batch = calibrated_softmax(logits, 0.7, top_map)
        for i in range(len(logits)):
            one = calibrated_softmax(logits[i:i + 1], 0.7, top_map)
            assert one.shape == (1, 9)
            assert np.array_equal(one[0], batch[i]), (top_map, i)


def test_a_saved_top_map_should_be_checked_and_old_archives_keep_the_temperature() -> None:
    assert saved_top_map({"temperature": 0.5}, "C") == IDENTITY_TOP_MAP
    assert saved_top_map({"top_calibration": [0.7, -0.1]}, "C") == (0.7, -0.1)
    for damaged in ([0.0, 1.0], [1.0], "x", [float("nan"), 0.0], [True, 0.0]):
        with pytest.raises(ModelArchiveError, match="damaged"):
            saved_top_map({"top_calibration": damaged}, "C")


def test_paraphrases_of_one_intent_should_share_a_group_and_intents_never() -> None:
    words = np.array([[1.0, 1.0, 0.0], [1.0, 0.9, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    x = csr_matrix(np.hstack([words, np.zeros((4, 40))]))  # a vocabulary: mostly zeros
    labels = np.array([0, 0, 0, 1])
    groups = paraphrase_groups(x, labels)
    assert groups[0] == groups[1] != groups[2]
    assert groups[3] not in groups[:3]  # same words, other intent: its own group


def test_sentence_embeddings_should_not_join_paraphrase_groups() -> None:
    words = np.hstack([np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
                       np.zeros((3, 40))])
    embedding = np.array([[0.9, 0.1], [0.8, 0.2], [0.9, 0.2]])  # all alike, as in one intent
    x = csr_matrix(np.hstack([words, embedding]))
    labels = np.zeros(3, dtype=int)
    assert len(set(paraphrase_groups(x, labels, [43, 2], [True, False]))) == 2
    assert len(set(paraphrase_groups(x, labels, [43, 2], [False, False]))) == 3


def test_blocks_every_message_fills_should_not_join_paraphrase_groups() -> None:
    """Shape flags (LexicalSyntacticFeaturizer: case, position) are shared by all messages."""
    words = np.hstack([np.eye(3), np.zeros((3, 40))])
    flags = np.ones((3, 4))
    x = csr_matrix(np.hstack([flags, words]))
    labels = np.zeros(3, dtype=int)
    assert len(set(paraphrase_groups(x, labels, [4, 43], [True, True]))) == 3


def test_grouped_folds_should_keep_groups_together_and_spread_each_label() -> None:
    labels = np.repeat([0, 1], 12)
    groups = np.array([i // 2 for i in range(24)])  # pairs of paraphrases
    folds = grouped_folds(labels, groups, 3, seed=7)
    for group in np.unique(groups):
        assert len(set(folds[groups == group])) == 1
    for label in (0, 1):
        assert sorted(np.bincount(folds[labels == label], minlength=3)) == [4, 4, 4]
    assert (grouped_folds(labels, groups, 3, seed=7) == folds).all()


def test_cross_validation_should_hold_out_each_fold_once() -> None:
    labels = np.repeat([0, 1, 2], 6)
    seen: list[np.ndarray] = []

    def score(train: np.ndarray, held_out: np.ndarray) -> np.ndarray:
        assert not set(train) & set(held_out)
        seen.append(held_out)
        logits = np.zeros((len(held_out), 3))
        logits[np.arange(len(held_out)), labels[held_out]] = 1.0
        return logits

    temperature = cross_validated_temperature(score, labels, np.arange(18), 3, seed=0)
    assert sorted(np.concatenate(seen).tolist()) == list(range(18))
    # always right: sharper than 1, held back by the prior from the sharpest allowed
    assert 0.05 < temperature < 0.5
    seen.clear()
    both = cross_validated_calibration(score, labels, np.arange(18), 3, seed=0)
    assert both[0] == temperature
    assert both[1] != IDENTITY_TOP_MAP


def test_one_round_should_hold_out_one_fold_and_fit_on_its_rows_alone() -> None:
    """``rounds=1`` (DIET's default): one classifier on the other folds scores one fold,
    and the maps are fitted on those rows only — wrong rows elsewhere change nothing."""
    labels = np.repeat([0, 1, 2], 10)
    held: list[np.ndarray] = []

    def score(train: np.ndarray, held_out: np.ndarray) -> np.ndarray:
        held.append(held_out)
        logits = np.zeros((len(held_out), 3))
        # right on the first fold's rows, wrong on every later fold's
        logits[np.arange(len(held_out)), (labels[held_out] + (len(held) > 1)) % 3] = 2.0
        return logits

    one = cross_validated_calibration(score, labels, np.arange(30), 5, seed=0, rounds=1)
    assert len(held) == 1 and len(held[0]) == 6
    held.clear()
    assert one == cross_validated_calibration(score, labels, np.arange(30), 5, seed=0,
                                              rounds=1)  # deterministic
    held.clear()
    every = cross_validated_calibration(score, labels, np.arange(30), 5, seed=0)
    assert len(held) == 5
    assert one[0] < 1.0 < every[0]  # sure and right on one fold; mostly wrong on all five


def _classifier_pipeline(**params: object) -> list:  # type: ignore[type-arg]
    return [WhitespaceTokenizer(), CountVectorsFeaturizer(),
            CountVectorsFeaturizer(analyzer="char_wb", min_ngram=1, max_ngram=4),
            LogisticRegressionClassifier(**params)]  # type: ignore[arg-type]


def test_temperature_should_be_learned_saved_and_change_no_ranking(tmp_path: Path) -> None:
    texts = ["hello there friend", "bye for now", "book me a flight to paris"]
    pipeline = _classifier_pipeline(C=10, tfidf=True)
    calibrated = run(pipeline, toy_data(), fresh(texts))
    classifier = pipeline[-1]
    assert classifier.temperature_ != 1.0
    raw = run(_classifier_pipeline(C=10, tfidf=True, calibration_folds=0), toy_data(), fresh(texts))
    for a, b in zip(calibrated, raw, strict=True):
        assert a.data["intent"]["name"] == b.data["intent"]["name"]
        assert [r["name"] for r in a.data["intent_ranking"]] == \
            [r["name"] for r in b.data["intent_ranking"]]
    classifier.save(tmp_path / "lr")
    loaded = LogisticRegressionClassifier.load(tmp_path / "lr")
    assert loaded.temperature_ == classifier.temperature_
    assert loaded.top_map_ == classifier.top_map_ != IDENTITY_TOP_MAP
    message = fresh(["hello there friend"])
    for component in [*pipeline[:-1], loaded]:
        component.process(message)
    assert message[0].data["intent"] == calibrated[0].data["intent"]


def test_calibration_should_be_deterministic() -> None:
    a, b = _classifier_pipeline(C=10, tfidf=True), _classifier_pipeline(C=10, tfidf=True)
    run(a, toy_data())
    run(b, toy_data())
    assert a[-1].temperature_ == b[-1].temperature_
    assert a[-1].top_map_ == b[-1].top_map_
    assert np.array_equal(a[-1].coef_, b[-1].coef_)


def test_a_calibrated_model_should_finetune_and_keep_its_temperature() -> None:
    pipeline = _classifier_pipeline(C=10, tfidf=True)
    run(pipeline, toy_data())
    classifier = pipeline[-1]
    temperature, top_map = classifier.temperature_, classifier.top_map_
    data = toy_data()
    for component in pipeline[:-1]:
        component.process(data.examples)
    classifier.finetune(data, 0.5)
    assert (classifier.temperature_, classifier.top_map_) == (temperature, top_map)
    message = fresh(["hello friend"])
    for component in pipeline:
        component.process(message)
    assert message[0].data["intent"]["name"] == "greet"


@needs_shared_data
def test_calibrated_confidences_should_match_accuracy_on_snips_small() -> None:
    test = read_nlu_file(SHARED_DATA / "snips-small" / "test" / "test_nlu.yml").intent_examples
    results = {}
    for folds in (0, 3):
        train = read_nlu_file(SHARED_DATA / "snips-small" / "data" / "nlu.yml")  # unfeaturized
        messages = run(_classifier_pipeline(C=10, tfidf=True, calibration_folds=folds), train,
                       fresh([m.text for m in test]))
        intents = [m.data["intent"] for m in messages]
        results[folds] = reliability([i["confidence"] for i in intents],
                                     [i["name"] == t.base_intent for i, t in zip(intents, test,
                                                                                 strict=True)])
    assert results[0].expected_calibration_error > 0.15  # raw: far too low
    assert results[3].expected_calibration_error < 0.04
