from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from parley.data.formats.nlu_yaml import read_nlu_file
from parley.data.message import Message
from parley.errors import ConfigError, ModelArchiveError
from parley.ml import linear_kernel
from parley.nlu.classifiers.logistic_regression import LogisticRegressionClassifier
from parley.nlu.featurizers.count_vectors import CountVectorsFeaturizer
from parley.nlu.featurizers.regex import RegexFeaturizer
from parley.nlu.tokenizers.whitespace import WhitespaceTokenizer
from parley.component import ARRAYS_FILE
from tests.conftest import REPO, SHARED_DATA, needs_shared_data
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


@pytest.mark.slow
@needs_shared_data
def test_snips_small_accuracy_should_reach_ninety_percent() -> None:
    train = read_nlu_file(SHARED_DATA / "snips-small" / "data" / "nlu.yml")
    test = read_nlu_file(SHARED_DATA / "snips-small" / "test" / "test_nlu.yml").intent_examples
    messages = run(_pipeline(), train, fresh([m.text for m in test]))
    correct = sum(m.data["intent"]["name"] == t.base_intent for m, t in zip(messages, test, strict=True))
    assert correct / len(test) >= 0.90


def test_tfidf_weights_should_equal_scikit_learns_sublinear_tfidf_per_block() -> None:
    sklearn_text = pytest.importorskip("sklearn.feature_extraction.text")
    import numpy as np
    from scipy.sparse import hstack

    from parley.nlu.classifiers.logistic_regression import (
        inverse_document_frequency, tfidf_weights)

    texts = ["book a flight to rome", "book book a table", "hello there", "rome rome rome",
             "play some music", "hello"]
    words = sklearn_text.CountVectorizer().fit_transform(texts)
    chars = sklearn_text.CountVectorizer(analyzer="char_wb", ngram_range=(1, 3)).fit_transform(texts)
    dense = np.arange(12, dtype=float).reshape(6, 2) - 3.0  # a dense block: left as it is
    x = hstack([words, dense, chars]).tocsr().astype(float)
    dims = [words.shape[1], 2, chars.shape[1]]
    idf = inverse_document_frequency(x, dims, [True, False, True])
    ours = tfidf_weights(x, idf, dims).toarray()
    def expected(counts: object) -> np.ndarray:
        transformer = sklearn_text.TfidfTransformer(sublinear_tf=True)
        return transformer.fit_transform(counts).toarray()  # type: ignore[no-any-return]
    np.testing.assert_allclose(ours[:, :dims[0]], expected(words), rtol=1e-12)
    np.testing.assert_allclose(ours[:, dims[0]:dims[0] + 2], dense)
    np.testing.assert_allclose(ours[:, dims[0] + 2:], expected(chars), rtol=1e-12)
    assert x.toarray()[0].sum() > 0 and not np.allclose(x.toarray(), ours)  # x itself untouched


def test_tfidf_model_should_predict_the_same_after_save_and_load(tmp_path: Path) -> None:
    classifier = LogisticRegressionClassifier(tfidf=True, C=10)
    pipeline = [*_pipeline()[:3], classifier]
    texts = ["hello friend", "bye now", "book a flight to Rome", "fly me to Paris"]
    before = run(pipeline, toy_data(), fresh(texts))
    classifier.save(tmp_path)
    loaded = LogisticRegressionClassifier.load(tmp_path)
    after = run(pipeline[:3], toy_data(), fresh(texts))
    loaded.process(after)
    assert [m.data["intent_ranking"] for m in after] == [m.data["intent_ranking"] for m in before]
    assert [m.data["intent"]["name"] for m in after][:3] == ["greet", "goodbye", "book_flight"]


def test_a_tfidf_model_without_its_idf_should_be_a_clear_archive_error(tmp_path: Path) -> None:
    import numpy as np

    classifier = LogisticRegressionClassifier(tfidf=True)
    run([*_pipeline()[:3], classifier], toy_data())
    classifier.save(tmp_path)
    with np.load(tmp_path / ARRAYS_FILE) as saved:
        arrays = {k: saved[k] for k in saved.files if k != "idf"}
    np.savez(tmp_path / ARRAYS_FILE, **arrays)
    with pytest.raises(ModelArchiveError, match="tf-idf"):
        LogisticRegressionClassifier.load(tmp_path)


def test_tfidf_should_be_a_boolean() -> None:
    with pytest.raises(ConfigError, match="tfidf"):
        run(_pipeline(tfidf="yes"), toy_data())



def test_scale_dense_blocks_should_give_each_rows_dense_block_the_length() -> None:
    import numpy as np
    from scipy.sparse import csr_matrix

    from parley.nlu.classifiers.logistic_regression import scale_dense_blocks

    counts = np.array([[1.0, 2.0], [0.0, 0.0], [3.0, 0.0]])
    dense = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0], [-1.0, 1.0, 1.0]])
    x = csr_matrix(np.hstack([counts, dense]))
    scaled = scale_dense_blocks(x, [2, 3], [True, False], 2.0).toarray()
    np.testing.assert_allclose(scaled[:, :2], counts)  # sparse blocks as they were
    np.testing.assert_allclose(np.linalg.norm(scaled[:, 2:], axis=1), [2.0, 0.0, 2.0])
    np.testing.assert_allclose(scaled[0, 2:], [1.2, 1.6, 0.0])  # the direction kept
    np.testing.assert_allclose(x.toarray()[:, 2:], dense)  # x itself untouched


@pytest.mark.parametrize("bad", [0, -1.0, "2", True, float("inf"), float("nan")])
def test_dense_norm_should_be_a_positive_number_or_null(bad: object) -> None:
    with pytest.raises(ConfigError, match="dense_norm"):
        run(_pipeline(dense_norm=bad), toy_data())


def test_features_holding_nan_should_be_refused_by_name() -> None:
    import numpy as np

    from parley.errors import DataError
    from parley.nlu.features import FEATURES_KEY, Features

    data = toy_data()
    run(_pipeline()[:-1], data)
    for message in data.examples:  # a broken dense featurizer
        vector = np.full((1, 3), np.nan if message is data.examples[0] else 1.0, np.float32)
        message.data[FEATURES_KEY].append(Features(vector, vector, "BrokenFeaturizer"))
    with pytest.raises(DataError, match="BrokenFeaturizer.*NaN"):
        LogisticRegressionClassifier().fit(data)


def test_finetuning_should_refuse_features_laid_out_differently() -> None:
    """The same featurizers in another order: as wide as before, but each weight would meet
    another feature."""
    from parley.errors import DataError

    tokenizer, words, chars, classifier = _pipeline()
    run([tokenizer, words, chars, classifier], toy_data())
    swapped = toy_data()
    run([tokenizer], swapped)
    for featurizer in (chars, words):
        featurizer.process(swapped.examples)
    with pytest.raises(DataError, match="features changed"):
        classifier.finetune(swapped, 0.5)


def test_dense_norm_should_leave_sparse_only_features_alone() -> None:
    import numpy as np

    texts = ["hello friend", "bye now", "book a flight to Rome"]
    plain, scaled = (run(_pipeline(C=10, tfidf=True, dense_norm=norm), toy_data(), fresh(texts))
                     for norm in (None, 2.0))
    for a, b in zip(plain, scaled, strict=True):
        np.testing.assert_allclose([r["confidence"] for r in a.data["intent_ranking"]],
                                   [r["confidence"] for r in b.data["intent_ranking"]])


@pytest.mark.slow
@needs_shared_data
@pytest.mark.parametrize(("dataset", "rasa_default", "scikit_learn", "target"),
                         [("snips-small", 0.939, 0.959, 0.96), ("hwu64-small", 0.663, 0.779, 0.78),
                          ("banking77-small", 0.733, 0.825, 0.83)])
def test_parleys_default_pipeline_should_beat_rasas_default_with_calibrated_confidences(
        dataset: str, rasa_default: float, scikit_learn: float, target: float) -> None:
    """Parley's default pipeline (parley/data/default_config.yml, FallbackClassifier
    included) against the figures in ../shared/anchors.md, scored as Rasa's were: the intent
    as returned beats Rasa's default pipeline; the classifier's own ranking is within one
    test message of a tuned scikit-learn tf-idf pipeline, or above; and its confidences are
    calibrated (expected calibration error at most 0.05). As returned, it reaches issue 19's
    targets (snips-small ≥ 0.96 since dense_norm is chosen per training set)."""
    import yaml

    from parley.nlu.evaluation import evaluate_parses
    from parley.registry import get_class as get_component_class

    config = yaml.safe_load((REPO / "parley" / "data" / "default_config.yml").read_text())
    components = [get_component_class(step.pop("name"))(**step) for step in config["pipeline"]
                  if step["name"] != "CRFEntityExtractor"]
    train = read_nlu_file(SHARED_DATA / dataset / "data" / "nlu.yml")
    test = read_nlu_file(SHARED_DATA / dataset / "test" / "test_nlu.yml").intent_examples
    messages = run(components, train, fresh([m.text for m in test]))
    report = evaluate_parses(test, [dict(m.data) for m in messages])
    assert report.intent_accuracy is not None and report.intent_accuracy > rasa_default
    assert report.intent_accuracy >= target
    assert report.ranking_accuracy is not None
    assert round(report.ranking_accuracy * len(test)) + 1 >= round(scikit_learn * len(test))
    assert report.expected_calibration_error is not None
    assert report.expected_calibration_error <= 0.05


@pytest.mark.parametrize("kernel", [True, False], ids=["c-kernel", "numpy"])
@pytest.mark.parametrize("tfidf", [True, False])
def test_one_message_should_get_the_probabilities_a_batch_gives_it(
        tfidf: bool, kernel: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A parse skips the batch's sparse matrices; the probabilities are the same, to the
    last bits a different order of the same sums moves (the C kernel, when built, sums a
    row by block), and so is their order."""
    if kernel and not linear_kernel.AVAILABLE:
        pytest.skip("the C kernel (parley/ml/_linear.c) is not built here")
    monkeypatch.setattr(linear_kernel, "AVAILABLE", kernel)
    components = _pipeline(tfidf=tfidf)
    run(components, toy_data())
    texts = ["book a flight to Paris", "hello friend", "bye", "", "zzz", "flight LH 1234"]
    together = fresh(texts)
    for component in components:
        component.process(together)
    classifier = components[-1]
    # A top-intent map far from the identity, so a path that skipped it would show.
    classifier.top_map_ = (0.5, -1.0)
    batch = classifier.predict_proba(together)
    for row, message in zip(batch, together, strict=True):
        alone = classifier.predict_proba([message])[0]
        np.testing.assert_allclose(alone, row, rtol=1e-12, atol=1e-15)
        assert np.argsort(-alone, kind="stable").tolist() == \
            np.argsort(-row, kind="stable").tolist()
