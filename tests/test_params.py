"""The parameter constraints of parley/params.py, and the contract that every registered
component and policy declares one for each of its parameters."""

from __future__ import annotations

import inspect
import math
from typing import Any

import pytest

from parley import registry
from parley.component import Component
from parley.params import (
    AnyOf, Bool, Choice, FeatureWindow, Float, Int, ListOf, MappingOf, NoneOr, Regex, Rule, Str,
    find_problems, keyword_signature,
)
from parley.recipe import CORE, NLU, component_class


def _registered() -> list[type[Component]]:
    return ([component_class(NLU, name) for name in sorted(registry.names(registry.NLU))]
            + [component_class(CORE, name) for name in sorted(registry.names(registry.POLICY))])


@pytest.mark.parametrize("cls", _registered(), ids=lambda cls: cls.name)
def test_every_parameter_should_have_a_declared_constraint(cls: type[Component]) -> None:
    assert set(cls.param_constraints) == set(cls.param_names())
    assert "param_constraints" in vars(cls) or cls.__init__ is cls.__mro__[1].__init__


@pytest.mark.parametrize("cls", _registered(), ids=lambda cls: cls.name)
def test_every_default_should_satisfy_its_constraint(cls: type[Component]) -> None:
    assert cls.param_problems(cls.default_params()) == []


# --- single constraints -------------------------------------------------------------------
@pytest.mark.parametrize("constraint, good, bad", [
    (Int(1, 10), [1, 10], [0, 11, 1.0, True, "3", None]),
    (Int(min=0), [0, 2**40], [-1, 2**70, float("inf")]),
    (Float(0, 1, max_exclusive=True), [0, 0.5, 0.99], [1, 1.0, -0.1, math.nan, True, "0.5"]),
    (Float(min=0, min_exclusive=True), [1e-9, 3], [0, math.inf, -math.inf]),
    (Bool(), [True, False], ["False", "no", 0, 1, None]),
    (Choice("char", "word"), ["char"], ["chars", None, 1]),
    (Choice(-1), [-1], [-1.0, True]),
    (NoneOr(Int(min=0)), [None, 3], [-1, "x"]),
    (AnyOf(Int(1, 9), ListOf(Int(1, 9), 2, 2)), [3, [1, 9]], [[64, 32, 1], [1], [0, 2], "8"]),
    (MappingOf(Str(), Bool()), [{}, {"city": False}], [{"city": "no"}, [], None]),
    (Regex(), [r"\w+", "(?u)\\b\\w+\\b"], ["(", 3]),
    (Str(nonempty=True), ["x"], ["", None, 1]),
    (FeatureWindow(["low", "upper"]), [[[], ["low"], []], [["upper"]]],
     [[["low"], ["low"]], [["nope"]], [], "low", [[1]]]),
])
def test_constraints_should_allow_exactly_their_values(constraint: Any, good: list[Any],
                                                       bad: list[Any]) -> None:
    assert all(constraint.allows(v) for v in good)
    assert not any(constraint.allows(v) for v in bad)


def test_problem_should_name_key_value_and_what_is_allowed() -> None:
    [problem] = find_problems({"epochs": Int(1, 100)}, (), {"epochs": -1}, {})
    assert problem.key == "epochs"
    assert problem.message == "epochs must be a whole number from 1 to 100, not -1."


@pytest.mark.parametrize("value, hint", [
    ("False", "write true or false, without quotes"),
    ("no", "yes/no/on/off as text"),
])
def test_booleans_written_as_text_should_get_a_hint(value: str, hint: str) -> None:
    [problem] = find_problems({"case_sensitive": Bool()}, (), {"case_sensitive": value}, {})
    assert hint in problem.message


def test_numbers_written_as_text_should_get_a_hint() -> None:
    [problem] = find_problems({"ranking_length": Int(min=0)}, (), {"ranking_length": "10"}, {})
    assert "without quotes" in problem.message
    [problem] = find_problems({"layers": Int(0, 9)}, (), {"layers": "1e12"}, {})
    assert "whole number without quotes or exponent" in problem.message
    [problem] = find_problems({"rate": Float(min=0)}, (), {"rate": "1e-3"}, {})
    assert "1.0e+3" in problem.message


def test_rules_should_see_defaults_and_skip_values_already_refused() -> None:
    rule = Rule(("size", "heads"), lambda size, heads: None if size % heads == 0 else "bad")
    constraints = {"size": Int(1, 99), "heads": Int(1, 9)}
    assert find_problems(constraints, [rule], {"heads": 3}, {"size": 8, "heads": 4})[0].key \
        == "heads"
    assert find_problems(constraints, [rule], {"heads": 4}, {"size": 8, "heads": 4}) == []
    only = find_problems(constraints, [rule], {"heads": 0}, {"size": 8, "heads": 4})
    assert [p.message.split(" ")[0] for p in only] == ["heads"]  # no ZeroDivisionError


def test_keyword_signature_should_merge_base_and_own_keywords() -> None:
    def base(self: Any, *, a: int = 1, b: int = 2, c: int = 3) -> None: ...

    def own(self: Any, *, d: int = 4, **rest: Any) -> None: ...

    signature = keyword_signature(own, base, drop=("b",), defaults={"c": 30})
    assert [(p.name, p.default) for p in signature.parameters.values()][1:] == [
        ("a", 1), ("c", 30), ("d", 4)]
    assert list(signature.parameters)[0] == "self"
    assert all(p.kind is not inspect.Parameter.VAR_KEYWORD
               for p in signature.parameters.values())


def test_response_selector_should_take_diets_parameters_declared_once() -> None:
    from parley.nlu.neural.diet import DIETClassifier
    from parley.nlu.neural.response_selector import NOT_KEYS, ResponseSelector

    diet, selector = DIETClassifier.default_params(), ResponseSelector.default_params()
    assert set(selector) == (set(diet) - set(NOT_KEYS)) | {"retrieval_intent", "use_text_as_label"}
    assert selector["connection_density"] == 1.0 and diet["connection_density"] == 0.2
    assert selector["number_of_transformer_layers"] == 0 and selector["scale_loss"] is True
    assert ResponseSelector(epochs=7, retrieval_intent="faq").get_params()["epochs"] == 7
    with pytest.raises(TypeError, match="BILOU_flag"):
        ResponseSelector(BILOU_flag=False)


ODD_VALUES = [None, True, -1, 0, 2**70, -2**70, 1e308, math.inf, -math.inf, math.nan, "", "no",
              "1e12", "(", [], [None], [[]], [[None]], [1, [2]], {}, {"text": None}, {1: 2},
              {"text": [1, "x"]}, [{"a": 1}], ("t",)]


@pytest.mark.parametrize("cls", _registered(), ids=lambda cls: cls.name)
def test_checking_odd_values_should_only_ever_report_problems(cls: type[Component]) -> None:
    for key in cls.param_names():
        for value in ODD_VALUES:
            for problem in cls.param_problems({key: value}):  # never raises
                assert problem.key == key and key in problem.message
