from __future__ import annotations

import pytest

from parley.data.formats.yaml_io import dump_yaml, line_of, parse_yaml, read_yaml_file
from parley.errors import YamlSyntaxError


def test_should_read_yes_and_no_as_strings_like_rasa():
    data = parse_yaml("a: yes\nb: no\nc: on\nd: true\ne: 2020-01-01\n")
    assert data == {"a": "yes", "b": "no", "c": "on", "d": True, "e": "2020-01-01"}


def test_should_remember_lines_of_keys_and_items():
    data = parse_yaml("top:\n  - one\n  - two\nother: 1\n")
    assert line_of(data, "top") == 1
    assert line_of(data, "other") == 4
    assert line_of(data["top"], 1) == 3


def test_should_refuse_duplicate_keys_with_their_line():
    with pytest.raises(YamlSyntaxError) as info:
        parse_yaml("a: 1\nb: 2\na: 3\n", "f.yml")
    assert str(info.value) == (
        "f.yml:3: the key 'a' appears twice in the same mapping. Merge the two entries or remove one."
    )


def test_should_name_file_and_line_of_a_syntax_error():
    with pytest.raises(YamlSyntaxError) as info:
        parse_yaml("nlu:\n- intent: a\n  examples: [x\n- intent: b\n", "nlu.yml")
    assert str(info.value).startswith("nlu.yml:4: invalid YAML:")


def test_should_refuse_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_bytes(b"a: \xff\xfe\n")
    with pytest.raises(YamlSyntaxError, match="not UTF-8"):
        read_yaml_file(path)


def test_dump_should_round_trip_strings_that_look_like_other_types():
    data = {"v": "yes", "n": "3.1", "multi": "a\nb\n", "t": True}
    assert parse_yaml(dump_yaml(data)) == data
