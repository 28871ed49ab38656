"""SklearnIntentClassifier: Rasa's grid search, and probabilities computed without scikit-learn
that equal scikit-learn's own."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from parley.data.formats.nlu_yaml import read_nlu_file, read_nlu_text
from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.errors import ConfigError, ModelArchiveError
from parley.nlu.classifiers.sklearn_svm import SklearnIntentClassifier, SVMModel
from parley.nlu.features import stack_sentence_features
from parley.nlu.featurizers.count_vectors import CountVectorsFeaturizer
from parley.nlu.tokenizers.whitespace import WhitespaceTokenizer
from tests.conftest import REPO, SHARED_DATA, needs_shared_data
from tests.nlu._helpers import fresh, run, toy_data

pytest.importorskip("sklearn")

TEXTS = ["hello friend", "book a flight to Rome", "bye bye", "good morning to you", ""]


def _pipeline(train: TrainingData, **params: Any) -> tuple[SklearnIntentClassifier, list[Any]]:
    upstream = [WhitespaceTokenizer(), CountVectorsFeaturizer()]
    run(upstream, train)
    return SklearnIntentClassifier(**params).fit(train), upstream


def _processed(upstream: list[Any], texts: list[str]) -> list[Message]:
    messages = fresh(texts)
    for component in upstream:
        component.process(messages)
    return messages


def _sklearn_svc(x: Any, y: np.ndarray, **params: Any) -> Any:
    from sklearn.svm import SVC

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SVC(probability=True, class_weight="balanced", random_state=42, **params).fit(x, y)


@pytest.fixture(scope="module")
def banking() -> tuple[Any, np.ndarray, Any, TrainingData]:
    """Word counts of 12 banking77-small intents: (train x, train y, test x, the processed
    training data)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside this clone")
    root = SHARED_DATA / "banking77-small"
    train, test = read_nlu_file(root / "data" / "nlu.yml"), read_nlu_file(root / "test" / "test_nlu.yml")
    intents = sorted(train.intents)[:12]
    train = TrainingData(examples=[m for m in train.examples if m.intent in intents])
    tests = [m for m in test.examples if m.intent in intents][:150]
    upstream = [WhitespaceTokenizer(), CountVectorsFeaturizer()]
    run(upstream, train)
    for component in upstream:
        component.process(tests)
    y = np.searchsorted(np.array(intents), [m.intent for m in train.examples])
    return stack_sentence_features(train.examples), y, stack_sentence_features(tests), train


# --- the numpy prediction equals scikit-learn's -----------------------------------------------
@needs_shared_data
@pytest.mark.parametrize("kernel, n_classes", [
    ("linear", 12), ("rbf", 12), ("poly", 5), ("sigmoid", 5), ("linear", 2), ("rbf", 3),
])
def test_probabilities_and_decision_values_should_equal_sklearns(
        banking: tuple[Any, np.ndarray, Any, TrainingData], kernel: str, n_classes: int) -> None:
    x, y, x_test, _ = banking
    keep = y < n_classes
    svc = _sklearn_svc(x[keep], y[keep], C=2, gamma=0.1, kernel=kernel)
    model = SVMModel.from_sklearn(svc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = svc.predict_proba(x_test)
        svc.decision_function_shape = "ovo"
        decision = svc.decision_function(x_test)
    if n_classes == 2:  # scikit-learn turns the one decision value around for two classes
        decision = -decision[:, None]
    assert np.abs(model.predict_proba(x_test) - expected).max() < 1e-6
    # a few samples at a time take the per-sample path (as single messages do)
    few = np.vstack([model.predict_proba(x_test[i:i + 3]) for i in range(0, 30, 3)])
    assert np.abs(few - expected[:30]).max() < 1e-6
    assert np.abs(model.decision_values(x_test) - decision).max() < 1e-6


# --- training ---------------------------------------------------------------------------------
@needs_shared_data
def test_grid_search_should_pick_a_c_from_the_grid(
        banking: tuple[Any, np.ndarray, Any, TrainingData]) -> None:
    x, y, x_test, train = banking
    classifier = SklearnIntentClassifier(C=[0.0001, 1, 10]).fit(train)
    # so little C cannot fit word counts: the search must move away from it
    assert classifier.best_params_["C"] in (1, 10)
    assert classifier.best_params_["kernel"] == "linear"
    svc = _sklearn_svc(x, y, **classifier.best_params_)  # the refit on all the data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = svc.predict_proba(x_test)
    assert classifier.svm_ is not None
    assert np.abs(classifier.svm_.predict_proba(x_test) - expected).max() < 1e-6


def test_folds_should_aim_for_five_examples_each() -> None:
    classifier = SklearnIntentClassifier()
    assert classifier._folds(np.array([30, 40])) == 5
    assert classifier._folds(np.array([12, 40])) == 2
    assert classifier._folds(np.array([3, 40])) == 2


def test_should_learn_intents_and_rank_them() -> None:
    classifier, upstream = _pipeline(toy_data(), ranking_length=2)
    assert classifier.best_params_["C"] in (1, 2, 5, 10, 20, 100)
    messages = _processed(upstream, ["hello there friend", "book a flight to Berlin"])
    classifier.process(messages)
    assert [m.data["intent"]["name"] for m in messages] == ["greet", "book_flight"]
    ranking = messages[0].data["intent_ranking"]
    assert len(ranking) == 2 and ranking[0] == messages[0].data["intent"]
    assert ranking[0]["confidence"] >= ranking[1]["confidence"]


def test_an_intent_with_one_example_should_skip_the_search() -> None:
    nlu = ('version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - hi\n    - hello\n'
           '    - hey there\n- intent: bye\n  examples: |\n    - goodbye\n')
    classifier, upstream = _pipeline(read_nlu_text(nlu), C=[5, 10])
    assert classifier.best_params_ == {"C": 5, "gamma": 0.1, "kernel": "linear"}
    messages = _processed(upstream, ["hello"])
    classifier.process(messages)
    assert messages[0].data["intent"]["name"] in ("greet", "bye")
    assert sum(r["confidence"] for r in messages[0].data["intent_ranking"]) == pytest.approx(1.0)


def test_a_single_intent_should_always_win() -> None:
    nlu = 'version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - hi\n    - hello\n'
    classifier, upstream = _pipeline(read_nlu_text(nlu))
    messages = _processed(upstream, ["anything at all"])
    classifier.process(messages)
    assert messages[0].data["intent"] == {"name": "greet", "confidence": 1.0}


@pytest.mark.parametrize("params, message", [
    ({"kernels": ["precomputed"]}, "kernels must be one of linear, poly, rbf, sigmoid"),
    ({"C": [0]}, "C must be"),
    ({"gamma": ["huge"]}, "gamma"),
    ({"max_cross_validation_folds": 1}, "max_cross_validation_folds"),
])
def test_bad_parameters_should_raise_config_errors(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _pipeline(toy_data(), **params)


def test_missing_sklearn_should_say_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.svm", None)
    with pytest.raises(ConfigError, match=r"pip install 'parley\[sklearn\]'"):
        _pipeline(toy_data())


# --- persistence ------------------------------------------------------------------------------
def test_save_and_load_should_give_identical_outputs(tmp_path: Path) -> None:
    classifier, upstream = _pipeline(toy_data(), kernels=["linear", "rbf"])
    classifier.save(tmp_path)
    loaded = SklearnIntentClassifier.load(tmp_path)
    first, second = _processed(upstream, TEXTS), _processed(upstream, TEXTS)
    classifier.process(first)
    loaded.process(second)
    assert ([(m.data["intent"], m.data["intent_ranking"]) for m in first]
            == [(m.data["intent"], m.data["intent_ranking"]) for m in second])
    assert loaded.best_params_ == classifier.best_params_
    assert not list(tmp_path.glob("*.pkl"))


def test_loading_should_not_import_sklearn(tmp_path: Path) -> None:
    classifier, (tokenizer, words) = _pipeline(toy_data())
    for name, component in [("tokenizer", tokenizer), ("words", words), ("svm", classifier)]:
        component.save(tmp_path / name)
    expected = _processed([tokenizer, words], TEXTS)
    classifier.process(expected)
    script = f"""
import json, sys
from pathlib import Path
from parley.data.message import Message
from parley.nlu.classifiers.sklearn_svm import SklearnIntentClassifier
from parley.nlu.featurizers.count_vectors import CountVectorsFeaturizer
from parley.nlu.tokenizers.whitespace import WhitespaceTokenizer
root = Path({str(tmp_path)!r})
components = [WhitespaceTokenizer.load(root / "tokenizer"), CountVectorsFeaturizer.load(root / "words"),
              SklearnIntentClassifier.load(root / "svm")]
messages = [Message(t) for t in {TEXTS!r}]
for component in components:
    component.process(messages)
print(json.dumps({{"sklearn": any(m.startswith("sklearn") for m in sys.modules),
                  "intents": [m.data["intent_ranking"] for m in messages]}}))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, check=True)
    out = json.loads(done.stdout)
    assert out["sklearn"] is False
    assert out["intents"] == [m.data["intent_ranking"] for m in expected]


@pytest.mark.parametrize("damage", ["garbage arrays", "no state", "bad shape"])
def test_loading_damaged_files_should_fail_clearly(tmp_path: Path, damage: str) -> None:
    classifier, _ = _pipeline(toy_data())
    classifier.save(tmp_path)
    if damage == "garbage arrays":
        (tmp_path / "arrays.npz").write_bytes(b"\x00" * 50)
    elif damage == "no state":
        (tmp_path / "state.json").unlink()
    else:
        arrays = dict(np.load(tmp_path / "arrays.npz"))
        arrays["intercept"] = arrays["intercept"][:1]
        np.savez(tmp_path / "arrays.npz", **arrays)
    with pytest.raises(ModelArchiveError, match="state.json|damaged"):
        SklearnIntentClassifier.load(tmp_path)


@needs_shared_data
def test_calibrated_svm_should_keep_its_ranking_save_its_temperature_and_be_calibrated(
        tmp_path: Path) -> None:
    """libsvm's probabilities are far too low with Rasa's settings; the temperature learned
    from the training data fixes them without changing which intent wins."""
    from parley.nlu.reliability import reliability

    root = SHARED_DATA / "snips-small"
    texts = [m.text for m in read_nlu_file(root / "test" / "test_nlu.yml").intent_examples]
    gold = [m.base_intent for m in read_nlu_file(root / "test" / "test_nlu.yml").intent_examples]
    results = {}
    for folds in (0, 3):
        classifier, upstream = _pipeline(read_nlu_file(root / "data" / "nlu.yml"),
                                         calibration_folds=folds)
        messages = _processed(upstream, texts)
        classifier.process(messages)
        results[folds] = (classifier, [m.data["intent"] for m in messages])
    raw, calibrated = results[0][1], results[3][1]
    assert [i["name"] for i in raw] == [i["name"] for i in calibrated]
    ece = {folds: reliability([i["confidence"] for i in intents],
                              [i["name"] == g for i, g in zip(intents, gold, strict=True)]
                              ).expected_calibration_error
           for folds, (_, intents) in results.items()}
    assert ece[0] > 0.1 and ece[3] < 0.05
    classifier = results[3][0]
    classifier.save(tmp_path)
    loaded = SklearnIntentClassifier.load(tmp_path)
    assert loaded.temperature_ == classifier.temperature_
    assert loaded.top_map_ == classifier.top_map_
