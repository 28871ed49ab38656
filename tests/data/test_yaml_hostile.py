"""Hostile YAML (issue 18): every value and shape a file can hold gives a DataError naming
file:line, never a Python error, a hang or a crash."""

from __future__ import annotations

import sys

import pytest

from parley.data.config import read_config_text
from parley.data.formats.domain_yaml import domain_from_yaml
from parley.data.formats.story_yaml import read_stories
from parley.data.formats.yaml_io import parse_yaml
from parley.data.formats.yaml_limits import MAX_ALIAS_NODES, MAX_DEPTH
from parley.errors import SchemaError, YamlSyntaxError


def _bomb(key: str) -> str:
    """Nine levels of nine aliases each: 9**9 (387 million) values in 10 lines."""
    lines = ["lol0: &l0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        lines.append(f"lol{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + f"\n{key}: *l8\n"


@pytest.mark.parametrize(("text", "line", "words"), [
    ("a: 1\nb: !!float x\n", 2, "'x' cannot be read as '!!float'"),
    ("a: !!int x\n", 1, "'x' cannot be read as '!!int'"),
    ("a: !!bool maybe\n", 1, "'maybe' cannot be read as '!!bool'"),
    ("version: !!int ''\n", 1, "'' cannot be read as '!!int'"),  # found by the property tests
    ("a: !!float ''\n", 1, "'' cannot be read as '!!float'"),
    ("a:\n  b: !!timestamp 2001-13-45\n", 2, "the tag '!!timestamp' is not read"),
    ("a: !!timestamp 2001-12-14\n", 1, "the tag '!!timestamp' is not read"),
    ("a: !!binary AAAA\n", 1, "the tag '!!binary' is not read"),
    ("a: !!set {x}\n", 1, "the tag '!!set' is not read"),
    ("a: !!seq {b: 1}\n", 1, "'!!seq' needs a list, but a mapping follows it"),
    ("a: !!map [1, 2]\n", 1, "'!!map' needs a mapping, but a list follows it"),
    ("a: " + "9" * 4301 + "\n", 1, "the number has 4,301 digits"),
    ("a: !!int " + "9" * 5000 + "\n", 1, "the number has 5,000 digits"),
    ("version: 0x" + "f" * 5000 + "\n", 1, "digits"),
])
def test_a_value_its_tag_cannot_hold_should_be_an_error_at_its_line(text, line, words):
    with pytest.raises(YamlSyntaxError) as info:
        parse_yaml(text, "f.yml")
    assert info.value.file == "f.yml" and info.value.line == line
    assert words in info.value.message
    assert len(str(info.value)) < 400  # the value itself is not repeated in full


def test_a_huge_hex_number_should_not_break_the_version_message():
    with pytest.raises(YamlSyntaxError, match="digits"):
        read_config_text("version: 0x" + "f" * 5000 + "\n", "config.yml")


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 200, 999, 100_000])
def test_deep_nesting_should_be_refused_by_depth_not_a_recursion_error(depth):
    for text in ("a: " + "[" * depth + "]" * depth + "\n",
                 "".join("  " * i + f"k{i}:\n" for i in range(min(depth, 2000)))):
        # libyaml's scanner stops a very deep flow ([[[…) itself, before Parley's bound
        with pytest.raises(YamlSyntaxError, match=f"deeper than {MAX_DEPTH} levels|nesting depth"):
            parse_yaml(text, "f.yml")


def test_nesting_up_to_the_bound_should_load_even_from_a_deep_stack():
    text = "a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"

    def nested(calls: int) -> object:
        return parse_yaml(text) if calls == 0 else nested(calls - 1)

    assert sys.getrecursionlimit() >= 1000
    assert nested(300)["a"] is not None


@pytest.mark.parametrize(("read", "key"), [
    (lambda text: read_config_text(text, "config.yml"), "version"),
    (lambda text: read_config_text(text, "config.yml"), "recipe"),
    (lambda text: domain_from_yaml(text, "domain.yml"), "version"),
])
def test_an_alias_bomb_should_be_refused_by_size_before_it_is_built(read, key):
    with pytest.raises(YamlSyntaxError, match="alias bomb") as info:
        read(_bomb(key))
    assert info.value.line is not None


def test_an_alias_bomb_in_slot_was_set_should_be_refused_not_fingerprinted():
    text = (_bomb("x").replace("x: *l8\n", "") + "stories:\n- story: s\n  steps:\n"
            "  - intent: greet\n  - slot_was_set:\n    - plant: *l8\n")
    with pytest.raises(YamlSyntaxError, match="alias bomb"):
        read_stories(text, "stories.yml")


def test_an_alias_that_contains_itself_should_be_refused():
    with pytest.raises(YamlSyntaxError, match="contain itself") as info:
        parse_yaml("a: &a\n  - x\n  - *a\n", "f.yml")
    assert info.value.line == 3


def test_ordinary_aliases_should_still_load():
    data = parse_yaml("base: &b {x: 1}\na: *b\nb: {<<: *b, y: 2}\nlist: [*b, *b]\n")
    assert data["a"] == {"x": 1} and data["b"] == {"x": 1, "y": 2}
    many = "one: &o [" + ", ".join(["v"] * 100) + "]\n" + "".join(
        f"k{i}: *o\n" for i in range(MAX_ALIAS_NODES // 200))
    assert len(parse_yaml(many)) == 1 + MAX_ALIAS_NODES // 200


def test_a_huge_key_or_value_should_be_cut_short_in_the_message():
    with pytest.raises(SchemaError) as info:
        read_config_text("k" * 1000 + ": 1\n", "config.yml")  # YAML keys stop at 1024
    assert info.value.line == 1 and "1,000 characters" in str(info.value)
    assert len(str(info.value)) < 600
    with pytest.raises(SchemaError) as info:
        read_config_text("language: " + "1" * 4000 + "\n", "config.yml")
    assert len(str(info.value)) < 600
