from __future__ import annotations

import pytest

from parley.component import Component
from parley.errors import ConfigError, NotFittedError


class Doubler(Component):
    name = "Doubler"

    def __init__(self, factor: int = 2, offset: float = 0.0) -> None:
        self.factor = factor
        self.offset = offset

    def fit(self, values: list[float]) -> Doubler:
        self.mean_ = sum(values) / len(values)
        return self


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


def test_should_raise_when_not_fitted():
    with pytest.raises(NotFittedError, match="Doubler is not trained yet; call fit"):
        Doubler().check_is_fitted()
    Doubler().fit([1.0]).check_is_fitted()


def test_params_should_round_trip_through_a_directory(tmp_path):
    Doubler(factor=5).save_params(tmp_path)
    assert Doubler.load_params(tmp_path) == {"factor": 5, "offset": 0.0}


def test_loading_another_components_directory_should_fail(tmp_path):
    class Other(Doubler):
        name = "Other"

    Other().save_params(tmp_path)
    with pytest.raises(ConfigError, match="holds a 'Other', not a 'Doubler'"):
        Doubler.load_params(tmp_path)
