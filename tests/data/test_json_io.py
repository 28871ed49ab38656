"""The position-tracking JSON reader: the same values as ``json.loads``, plus lines, and
errors that name the file, line and column."""

from __future__ import annotations

import json

import pytest

from parley.data.formats.json_io import parse_json, read_json_file
from parley.data.formats.yaml_io import LineDict, LineList
from parley.errors import DataError

TEXT = """\
{
  "name": "x\\u00e9",
  "items": [1, -2.5e3, true,
    {"inner": null},
    []
  ],
  "empty": {}
}
"""


def test_should_read_the_same_values_as_json_loads():
    assert parse_json(TEXT) == json.loads(TEXT)


def test_should_remember_the_line_of_each_object_key_and_list_item():
    data = parse_json(TEXT)
    assert isinstance(data, LineDict) and isinstance(data["items"], LineList)
    assert data.line == 1
    assert data.key_lines == {"name": 2, "items": 3, "empty": 7}
    assert data["items"].item_lines == [3, 3, 3, 4, 5]
    assert data["items"][3].line == 4


@pytest.mark.parametrize(("text", "line", "column", "problem"), [
    ('{\n  "a": 1,\n}', 3, 1, "a comma before '}'"),
    ('[1,\n 2,]', 2, 4, "a comma before ']'"),
    ('{\n  "a": 1\n  "b": 2\n}', 3, 3, "expected ',' or '}'"),
    ('{"a" 1}', 1, 6, "expected ':' after the key 'a'"),
    ("{a: 1}", 1, 2, "expected a key in double quotes"),
    ('["abc', 1, 2, "a string that is never closed"),
    ('["a\tb"]', 1, 4, "a raw control character"),
    ("[NaN]", 1, 2, "NaN is not a JSON number"),
    ("[1e999]", 1, 2, "too large for a JSON number"),
    ('["\\ud800"]', 1, 2, "lone surrogate"),
    ("[1] [2]", 1, 5, "more text after the end"),
    ("[tru]", 1, 2, "'tru' is not a JSON value"),
    ("[" * 60, 1, 51, "nests deeper than 50 levels"),
])
def test_malformed_json_should_name_file_line_and_column(text, line, column, problem):
    with pytest.raises(DataError, match="invalid JSON") as info:
        parse_json(text, "data/nlu.json")
    assert (info.value.file, info.value.line) == ("data/nlu.json", line)
    assert problem in info.value.message and f"(column {column})" in info.value.message


def test_a_key_given_twice_should_be_an_error_naming_both_lines():
    with pytest.raises(DataError, match=r"the key 'a' appears twice in the same object "
                                        r"\(first at line 2, again at line 3\)") as info:
        parse_json('{\n "a": 1,\n "a": 2\n}', "f.json")
    assert info.value.line == 3


def test_an_empty_file_should_read_as_nothing(tmp_path):
    path = tmp_path / "empty.json"
    path.write_text(" \n")
    assert read_json_file(path) is None


def test_a_file_that_is_not_utf8_should_be_named(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('{"text": "caf\xe9"}'.encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8 text") as info:
        read_json_file(path)
    assert info.value.file == str(path)
    assert info.value.line == 1 and "byte 0xe9 in column 14" in str(info.value)


def test_a_byte_order_mark_should_be_tolerated(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"a": [1]}')
    assert read_json_file(path) == {"a": [1]}
