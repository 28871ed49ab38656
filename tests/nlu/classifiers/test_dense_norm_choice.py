"""LogisticRegressionClassifier's ``dense_norm`` as a list: the calibration's folds choose
the sentence vector's length by held-out likelihood, and the model keeps the one chosen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.errors import ConfigError, ModelArchiveError
from parley.nlu.classifiers.calibration import held_out_log_loss, out_of_fold_logits
from parley.nlu.classifiers.logistic_regression import LogisticRegressionClassifier
from parley.nlu.featurizers.count_vectors import CountVectorsFeaturizer
from parley.nlu.features import FEATURES_KEY, Features
from parley.nlu.tokenizers.whitespace import WhitespaceTokenizer

INTENTS = ("book", "cash", "music")
WORDS = {intent: [f"{intent}{i}" for i in range(6)] for intent in INTENTS}
SHARED = [f"w{i}" for i in range(18)]
DIM = 16
VECTORS: dict[int, np.ndarray] = {}  # each test message's dense block, until featurized


def _messages(informative_words: bool, informative_vector: bool, per_intent: int,
              seed: int, labelled: bool = True) -> list[Message]:
    """Messages of three intents with a dense block beside their words: either block
    tells the intent (the words from the intent's own vocabulary, the vector a one-hot
    of the intent) or is noise (words from a shared vocabulary, a random vector)."""
    rng = np.random.default_rng(seed)
    out = []
    for k, intent in enumerate(INTENTS):
        for _ in range(per_intent):
            vocabulary = WORDS[intent] if informative_words else SHARED
            text = " ".join(rng.choice(vocabulary, size=3))
            vector = rng.normal(0.0, 0.3 if informative_vector else 1.0, DIM)
            if informative_vector:
                vector[k] += 1.0
            message = Message(text, intent=intent if labelled else None)
            VECTORS[id(message)] = vector.astype(np.float32)[None, :]
            out.append(message)
    return out


def _featurize(tokenizer: WhitespaceTokenizer, counts: CountVectorsFeaturizer,
               messages: list[Message]) -> list[Message]:
    tokenizer.process(messages)
    counts.process(messages)
    for message in messages:
        vector = VECTORS.pop(id(message))
        tokens = len(message.data["tokens"])
        message.data[FEATURES_KEY].append(
            Features(np.repeat(vector, tokens, axis=0), vector, "VectorFeaturizer"))
    return messages


def _trained(informative_words: bool, informative_vector: bool, **params: object
             ) -> tuple[LogisticRegressionClassifier, WhitespaceTokenizer,
                        CountVectorsFeaturizer]:
    train = TrainingData(_messages(informative_words, informative_vector, 24, seed=1))
    tokenizer = WhitespaceTokenizer().fit(train)
    tokenizer.process(train.examples)
    counts = CountVectorsFeaturizer().fit(train)
    _featurize(tokenizer, counts, train.examples)
    settings: dict[str, object] = {"C": 10, "tfidf": True, "dense_norm": [0.05, 20.0],
                                   "calibration_folds": 3, **params}
    classifier = LogisticRegressionClassifier(**settings)  # type: ignore[arg-type]
    classifier.fit(train)
    return classifier, tokenizer, counts


def test_a_vector_that_tells_the_intent_should_get_the_longer_length() -> None:
    classifier, _, _ = _trained(informative_words=False, informative_vector=True)
    assert classifier.dense_norm_ == 20.0


def test_a_vector_of_noise_should_get_the_shorter_length() -> None:
    classifier, _, _ = _trained(informative_words=True, informative_vector=False)
    assert classifier.dense_norm_ == 0.05


def test_the_chosen_length_should_be_saved_loaded_and_parse_alike(tmp_path: Path) -> None:
    classifier, tokenizer, counts = _trained(informative_words=False, informative_vector=True)
    again, _, _ = _trained(informative_words=False, informative_vector=True)
    assert again.dense_norm_ == classifier.dense_norm_  # deterministic
    np.testing.assert_array_equal(again.coef_, classifier.coef_)
    assert (again.temperature_, again.top_map_) == (classifier.temperature_, classifier.top_map_)

    def queries() -> list[Message]:
        return _featurize(tokenizer, counts, _messages(False, True, 3, seed=7, labelled=False))

    before = classifier.predict_proba(queries())
    classifier.save(tmp_path)
    loaded = LogisticRegressionClassifier.load(tmp_path)
    assert loaded.dense_norm_ == 20.0 and loaded.dense_norm == [0.05, 20.0]
    np.testing.assert_array_equal(loaded.predict_proba(queries()), before)
    one = [loaded.predict_proba([message])[0] for message in queries()]  # the one-message path
    np.testing.assert_allclose(one, before, atol=1e-12)


def test_a_model_with_a_chosen_length_should_finetune_with_it() -> None:
    classifier, tokenizer, counts = _trained(informative_words=False, informative_vector=True)
    calibration = (classifier.temperature_, classifier.top_map_)
    more = TrainingData(_featurize(tokenizer, counts, _messages(False, True, 6, seed=3)))
    classifier.finetune(more, 0.5)
    assert classifier.dense_norm_ == 20.0 and (classifier.temperature_,
                                               classifier.top_map_) == calibration
    found = classifier.predict_proba(_featurize(tokenizer, counts,
                                                _messages(False, True, 4, seed=9, labelled=False)))
    assert (found.argmax(axis=1) == np.repeat(np.arange(3), 4)).mean() >= 0.75


def test_a_list_of_lengths_without_calibration_folds_should_be_a_config_error() -> None:
    with pytest.raises(ConfigError, match="calibration_folds"):
        _trained(informative_words=True, informative_vector=True, calibration_folds=0)


@pytest.mark.parametrize("bad", [[], [0], [2, -1], ["2"], [True]])
def test_every_length_in_the_list_should_be_a_positive_number(bad: object) -> None:
    with pytest.raises(ConfigError, match="dense_norm"):
        _trained(informative_words=True, informative_vector=True, dense_norm=bad)


def test_an_archive_without_the_chosen_length_should_say_so(tmp_path: Path) -> None:
    import json

    from parley.component import STATE_FILE

    classifier, _, _ = _trained(informative_words=False, informative_vector=True)
    classifier.save(tmp_path)
    state_file = tmp_path / STATE_FILE
    saved = json.loads(state_file.read_text())
    state = saved.get("state", saved)
    del state["dense_norm"]
    state_file.write_text(json.dumps(saved))
    with pytest.raises(ModelArchiveError, match="dense_norm"):
        LogisticRegressionClassifier.load(tmp_path)


def test_held_out_log_loss_should_skip_rows_the_fold_could_not_learn() -> None:
    logits = np.array([[2.0, 0.0], [0.0, -np.inf], [0.0, 0.0]])
    labels = np.array([0, 1, 1])
    expected = np.mean([np.log1p(np.exp(-2.0)), np.log(2.0)])
    assert held_out_log_loss(logits, labels, 1.0) == pytest.approx(expected)
    assert held_out_log_loss(logits, labels, 2.0) == pytest.approx(
        np.mean([np.log1p(np.exp(-1.0)), np.log(2.0)]))
    assert held_out_log_loss(logits[1:2], labels[1:2], 1.0) == np.inf


def test_out_of_fold_logits_should_score_every_row_from_a_fold_without_it() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1])
    seen: list[set[int]] = []

    def score_fold(train: np.ndarray, held_out: np.ndarray) -> np.ndarray:
        seen.append(set(train.tolist()))
        assert not set(train.tolist()) & set(held_out.tolist())
        return np.tile([1.0, 2.0], (len(held_out), 1))

    logits = out_of_fold_logits(score_fold, labels, np.arange(6), 3, seed=0)
    assert logits is not None and np.isfinite(logits).all() and len(seen) == 3
    assert out_of_fold_logits(score_fold, labels, np.arange(6), 1, seed=0) is None


def test_the_winner_should_be_calibrated_as_if_it_had_been_given_alone() -> None:
    """The lengths are compared on some of the folds; the winner scores the rest, so its
    temperature and top-intent map are those of the plain single-length model."""
    chosen, _, _ = _trained(informative_words=False, informative_vector=True)
    alone, _, _ = _trained(informative_words=False, informative_vector=True, dense_norm=20.0)
    assert chosen.dense_norm_ == alone.dense_norm_ == 20.0
    assert (chosen.temperature_, chosen.top_map_) == (alone.temperature_, alone.top_map_)
    np.testing.assert_array_equal(chosen.coef_, alone.coef_)
