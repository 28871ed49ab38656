"""Property-based tests of the JSON reader and the Rasa NLU JSON reader.

- Any JSON value Python writes reads back equal, and whatever text ``json.loads`` accepts
  (without NaN, infinities or a repeated key) the reader accepts with the same value:
  ``ROUNDTRIP_CASES`` per run.
- The fixture's flights.json, mutated (characters deleted, inserted or replaced; numbers,
  strings and keys swapped for random values), read as Rasa NLU data: it succeeds or
  raises one of Parley's own errors, never another exception: ``MUTATION_CASES`` per run.
  Every entity read from a mutated file lies inside its text.

``PARLEY_PROPERTY_SCALE=10`` multiplies the cases for a longer hunt.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parley.data.formats.json_io import parse_json
from parley.data.formats.nlu_json import nlu_from_json_content
from parley.errors import DataError, ParleyError
from tests.conftest import FIXTURES

SCALE = int(os.environ.get("PARLEY_PROPERTY_SCALE", "1"))
ROUNDTRIP_CASES = 150 * SCALE
MUTATION_CASES = 200 * SCALE
FLIGHTS = (FIXTURES / "nlu_json" / "data" / "flights.json").read_text(encoding="utf-8")



def _settings(cases: int) -> settings:
    return settings(max_examples=cases, deadline=5000, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_scalars = (st.none() | st.booleans() | st.integers()
            | st.floats(allow_nan=False, allow_infinity=False) | st.text())
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@_settings(ROUNDTRIP_CASES)
@given(json_values, st.sampled_from([None, 0, 2]))
def test_any_json_python_writes_should_read_back_equal(value: Any, indent: int | None) -> None:
    text = json.dumps(value, indent=indent, ensure_ascii=indent is None)
    assert parse_json(text) == value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def _strict_loads(text: str) -> Any:
    """json.loads, refusing what Parley's reader refuses on purpose."""
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({key for key, _ in items}) != len(items):
            raise ValueError("a repeated key")
        return dict(items)

    def constant(name: str) -> Any:
        raise ValueError(name)

    value = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    if "inf" in repr(value) and any(isinstance(v, float) and math.isinf(v)
                                    for v in _leaves(value)):
        raise ValueError("an infinite number")
    if any(isinstance(v, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in v)
           for v in _leaves(value)):
        raise ValueError("a lone surrogate")
    return value


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [*value.keys(), *(leaf for v in value.values() for leaf in _leaves(v))]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


@_settings(ROUNDTRIP_CASES)
@given(st.text(alphabet=st.sampled_from(list('{}[],:"\\ \n\t-.eE0123456789aftrunlsx')),
               max_size=30))
def test_the_reader_should_accept_exactly_what_json_accepts(text: str) -> None:
    try:
        expected = _strict_loads(text)
    except (ValueError, RecursionError):
        expected = DataError
    try:
        found = parse_json(text)
    except DataError:
        found = DataError
    if not text.strip():  # an empty file is no data, not an error (as for YAML)
        assert found is None
        return
    assert found is DataError if expected is DataError else _same(found, expected)


def _mutate(data: st.DataObject) -> str:
    text = FLIGHTS
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["delete", "insert", "replace", "value"]))
        at = data.draw(st.integers(0, len(text) - 1))
        if kind == "delete":
            text = text[:at] + text[at + data.draw(st.integers(1, 20)):]
        elif kind == "insert":
            text = text[:at] + data.draw(st.text(max_size=5)) + text[at:]
        elif kind == "replace":
            text = text[:at] + data.draw(st.sampled_from(list('{}[],:"0-9'))) + text[at + 1:]
        else:  # a whole value swapped for another JSON value
            old = data.draw(st.sampled_from(["9", "15", '"city"', '"Berlin"', '"departure"',
                                             '"book_flight"', '"1"', '["NYC", "the big apple"]',
                                             '"elements"', '"start"', '"entities"']))
            new = json.dumps(data.draw(json_values))
            text = text.replace(old, new, 1)
    return text


@_settings(MUTATION_CASES)
@given(st.data())
def test_mutated_nlu_json_should_read_or_raise_only_parley_errors(data: st.DataObject) -> None:
    text = _mutate(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            training = nlu_from_json_content(parse_json(text, "flights.json"), "flights.json")
        except ParleyError as exc:
            assert isinstance(exc, DataError) and exc.file == "flights.json"
            return
    for message in training.examples:
        for entity in message.entities:
            assert 0 <= entity.start < entity.end <= len(message.text)
            assert isinstance(entity.value, str) and entity.entity.strip()
