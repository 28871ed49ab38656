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
        "f.yml:3: the key 'a' appears twice in the same mapping (first at line 1, again at "
        "line 3). Merge the two entries or remove one."
    )


def test_should_name_file_and_line_of_a_syntax_error():
    with pytest.raises(YamlSyntaxError) as info:
        parse_yaml("nlu:\n- intent: a\n  examples: [x\n- intent: b\n", "nlu.yml")
    # The unclosed bracket is on line 3; the parser gave up on line 4.
    assert str(info.value).startswith(
        "nlu.yml:3: invalid YAML: while parsing a flow sequence that starts here; did not "
        "find expected ',' or ']' (parsing stopped at line 4)")


NLU_MISSING_COLON = """\
version: "3.1"
nlu:
- intent: greet
  examples: |
    - hi
    - hello
- intent: goodbye
  examples: |
    - bye
    - see you
- intent: thank
  examples |
    - thanks
    - thank you
- intent: deny
  examples: |
    - no
"""


def test_a_missing_colon_should_be_reported_where_the_key_is():
    with pytest.raises(YamlSyntaxError) as info:
        parse_yaml(NLU_MISSING_COLON, "nlu.yml")
    assert info.value.line == 12
    assert str(info.value).startswith(
        "nlu.yml:12: invalid YAML: the key on this line has no ':' after it (parsing stopped "
        "at line 15, where the scanner gave up looking for it).")


def test_an_unclosed_quote_should_be_reported_where_the_quote_opens():
    text = ('responses:\n  utter_a:\n  - text: "Done, I will remind you.\n'
            '  utter_b:\n  - text: "All right."\n  utter_c:\n  - text: "Bye"\n')
    with pytest.raises(YamlSyntaxError) as info:
        parse_yaml(text, "domain.yml")
    assert info.value.line == 3
    assert "closing quote is probably missing (parsing stopped at line 5" in str(info.value)
    with pytest.raises(YamlSyntaxError) as info:
        parse_yaml('a: 1\nb: "open\nc: 2\n', "d.yml")
    assert str(info.value).startswith("d.yml:2: invalid YAML: the quoted value that starts here "
                                      "is never closed (parsing stopped at line 4")


def test_a_bad_indent_should_name_the_line_and_the_mapping_it_breaks():
    with pytest.raises(YamlSyntaxError) as info:
        parse_yaml("top:\n  a: 1\n  b: 2\n c: 3\n", "f.yml")
    assert str(info.value).startswith("f.yml:4: invalid YAML: while parsing a block mapping "
                                      "(which starts at line 1); did not find expected key.")


def test_a_tab_inside_a_block_scalar_should_name_the_tab_line():
    with pytest.raises(YamlSyntaxError) as info:
        parse_yaml("nlu:\n- intent: a\n  examples: |\n    - x\n\t- y\n", "f.yml")
    assert info.value.line == 5
    assert "(which starts at line 3)" in str(info.value)


def test_should_refuse_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "bad.yml"
    path.write_bytes(b"a: \xff\xfe\n")
    with pytest.raises(YamlSyntaxError, match="not UTF-8"):
        read_yaml_file(path)


def test_a_file_that_is_not_utf8_should_be_refused_at_its_line(tmp_path):
    # (it said "invalid continuation byte at byte 59": in a long file, go and count)
    path = tmp_path / "latin1.yml"
    path.write_bytes(b"\xef\xbb\xbfnlu:\n- intent: greet\n  examples: |\n    - caf\xe9 au lait\n")
    with pytest.raises(YamlSyntaxError) as info:
        read_yaml_file(path)
    assert info.value.line == 4
    assert "not UTF-8 text: byte 0xe9 in column 10 (invalid continuation byte)" in str(info.value)
    assert "save the file as UTF-8" in str(info.value)


def test_dump_should_round_trip_strings_that_look_like_other_types():
    data = {"v": "yes", "n": "3.1", "multi": "a\nb\n", "t": True}
    assert parse_yaml(dump_yaml(data)) == data


@pytest.mark.parametrize("char", ["\x00", "\x07", "\ufffe"])
def test_a_control_character_should_be_named_with_its_line(tmp_path, char):
    # PyYAML's reader reports a character offset only ("position 70"); a user wants a line.
    path = tmp_path / "stories.yml"
    path.write_text(f"stories:\n- story: a\n  steps:\n  - intent: greet\n"
                    f"  - action: utter_greet{char}\n", encoding="utf-8")
    with pytest.raises(YamlSyntaxError) as caught:
        read_yaml_file(path)
    assert caught.value.line == 5
    assert "stories.yml:5:" in str(caught.value) and "position" not in str(caught.value)
    assert f"U+{ord(char):04X}" in str(caught.value)
