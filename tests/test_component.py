from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from parley.component import Component, Finetunable, NLUComponent, StatelessNLUComponent, finetune_epochs
from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.errors import ConfigError, ModelArchiveError, NotFittedError


class Doubler(Component):
    name = "Doubler"

    def __init__(self, factor: int = 2, offset: float = 0.0) -> None:
        self.factor = factor
        self.offset = offset

    def fit(self, values: list[float]) -> Doubler:
        self.mean_ = sum(values) / len(values)
        return self

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"mean": self.mean_}, {"twice": np.array([self.mean_ * 2])}

    def _set_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self.mean_ = float(state["mean"])
        if float(arrays["twice"][0]) != 2 * self.mean_:
            raise ValueError("the arrays do not fit the state")


def test_params_should_be_the_constructor_arguments():
    assert Doubler.param_names() == ["factor", "offset"]
    assert Doubler.default_params() == {"factor": 2, "offset": 0.0}
    assert Doubler(factor=3).get_params() == {"factor": 3, "offset": 0.0}


def test_unknown_parameter_should_name_the_valid_ones():
    with pytest.raises(ConfigError) as info:
        Doubler.from_params({"facter": 3}, "config.yml:4")
    assert str(info.value) == (
        "config.yml:4: Doubler has no parameter 'facter'. Did you mean 'factor'? "
        "Its parameters: factor, offset."
    )


def test_should_raise_when_not_fitted(tmp_path):
    with pytest.raises(NotFittedError, match="Doubler is not trained yet: it has no learned attribute"):
        Doubler().check_is_fitted()
    with pytest.raises(NotFittedError):
        Doubler().save(tmp_path)
    Doubler().fit([1.0]).check_is_fitted()


def test_params_should_round_trip_through_a_directory(tmp_path):
    Doubler(factor=5).save_params(tmp_path)
    assert Doubler.load_params(tmp_path) == {"factor": 5, "offset": 0.0}
    saved = json.loads((tmp_path / "params.json").read_text())
    assert "code_version" not in saved  # the fingerprint hashes the class source instead


def test_loading_another_components_directory_should_fail(tmp_path):
    class Other(Doubler):
        name = "Other"

    Other().save_params(tmp_path)
    with pytest.raises(ModelArchiveError, match="holds a 'Other', not a 'Doubler'"):
        Doubler.load_params(tmp_path)


def test_save_and_load_should_be_one_template_over_the_state_hooks(tmp_path):
    Doubler(factor=3).fit([1.0, 2.0]).save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arrays.npz", "params.json",
                                                           "state.json"]
    loaded = Doubler.load(tmp_path)
    assert loaded.factor == 3 and loaded.mean_ == 1.5


def test_state_that_does_not_fit_should_be_a_damaged_archive(tmp_path):
    Doubler().fit([1.0]).save(tmp_path)
    (tmp_path / "state.json").write_text('{"mean": 7}')
    with pytest.raises(ModelArchiveError, match="state.json and .*arrays.npz do not fit"):
        Doubler.load(tmp_path)


def test_arrays_of_python_objects_should_not_be_saved(tmp_path):
    class Objects(Doubler):
        def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
            return {}, {"bad": np.array([{"a": 1}], dtype=object)}

    with pytest.raises(TypeError, match="Python objects"):
        Objects().fit([1.0]).save(tmp_path)


def test_nlu_components_must_implement_the_abstract_methods():
    class NoProcess(NLUComponent):
        def fit(self, training_data: TrainingData) -> NoProcess:
            return self

    with pytest.raises(TypeError, match="_set_state, _state, process"):
        NoProcess()  # type: ignore[abstract]


class Upper(StatelessNLUComponent):
    name = "Upper"

    def __init__(self, *, suffix: str = "!") -> None:
        self.suffix = suffix

    def fit(self, training_data: TrainingData) -> Upper:
        self.fitted_ = True
        return self

    def process(self, messages: list[Message]) -> None:
        for message in messages:
            message.data["upper"] = message.text.upper() + self.suffix


def test_stateless_components_should_save_their_params_and_refit_on_load(tmp_path):
    Upper(suffix="?").fit(TrainingData()).save(tmp_path)
    loaded = Upper.load(tmp_path)
    message = Message("hi")
    loaded.process([message])
    assert message.data["upper"] == "HI?"


@pytest.mark.parametrize("epochs, fraction, expected",
                         [(300, 0.5, 150), (100, 0.001, 1), (5, 0.3, 2), (50, 1.0, 50)])
def test_finetune_epochs_should_be_the_ceiling_and_at_least_one(epochs, fraction, expected):
    assert finetune_epochs(epochs, fraction) == expected


def test_finetunable_is_an_abstract_declaration():
    class Learner(Upper, Finetunable):
        name = "Learner"

    with pytest.raises(TypeError, match="finetune"):
        Learner()  # type: ignore[abstract]


def test_saving_again_without_arrays_should_leave_no_stale_arrays(tmp_path):
    class NoArrays(Doubler):
        name = "Doubler"

        def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
            return {"mean": self.mean_}, {}

    Doubler().fit([1.0]).save(tmp_path)
    NoArrays().fit([2.0]).save(tmp_path)
    assert not (tmp_path / "arrays.npz").exists()
