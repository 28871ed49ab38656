from __future__ import annotations

import pytest

from parley.data.formats.annotations import annotate, parse_annotated_text
from parley.data.message import Entity
from parley.errors import SchemaError


def test_should_parse_short_annotation_into_plain_text_and_offsets():
    text, entities = parse_annotated_text("water my [cactus](plant) today")
    assert text == "water my cactus today"
    assert entities == [Entity(9, 15, "cactus", "plant")]


def test_should_take_the_value_after_the_colon():
    text, entities = parse_annotated_text("tips for [orchids](plant:orchid)")
    assert text == "tips for orchids"
    assert entities == [Entity(9, 16, "orchid", "plant")]


def test_should_read_roles_and_groups_from_a_json_annotation():
    text, entities = parse_annotated_text(
        'from [Berlin]{"entity": "city", "role": "departure", "group": "1"} to '
        '[Paris]{"entity": "city", "role": "destination", "value": "PAR"}'
    )
    assert text == "from Berlin to Paris"
    assert entities == [
        Entity(5, 11, "Berlin", "city", "departure", "1"),
        Entity(15, 20, "PAR", "city", "destination"),
    ]


def test_should_read_a_list_of_annotations_on_one_span():
    text, entities = parse_annotated_text('a [b][{"entity": "x"}, {"entity": "y", "value": "z"}]')
    assert text == "a b"
    assert entities == [Entity(2, 3, "b", "x"), Entity(2, 3, "z", "y")]


def test_should_leave_plain_brackets_alone():
    assert parse_annotated_text("what does [x] mean") == ("what does [x] mean", [])


@pytest.mark.parametrize(
    "example, message",
    [
        ("bad [x](",
         "f.yml:3: malformed entity annotation near 'bad [x](' in the example 'bad [x]('."),
        ("[](plant)", "f.yml:3: malformed entity annotation near '[](plant)' in the example '[](plant)'."),
        ('[x]{"entity": }',
         "f.yml:3: the entity annotation {\"entity\": } is not valid JSON (Expecting value)."),
        ('[x]{"role": "a"}', 'f.yml:3: the entity annotation {"role": "a"} has no "entity" key.'),
        ('[x]{"entity": "a", "rol": "b"}',
         'f.yml:3: the entity annotation {"entity": "a", "rol": "b"} has unknown key(s) rol.'),
        # names must be strings (Rasa's schema); 42 was read as the entity '42'
        ('[x]{"entity": 42}', 'f.yml:3: the "entity" of the entity annotation {"entity": 42} '
         'must be a string, found 42. Quote it: "entity": "42".'),
        ('[x]{"entity": "a", "group": [1]}', 'f.yml:3: the "group" of the entity annotation '
         '{"entity": "a", "group": [1]} must be a string, found [1].'),
        # so must a value: [5]{"entity": "number", "value": 5} kept the number 5 as its value
        ('[5]{"entity": "number", "value": 5}', 'f.yml:3: the "value" of the entity annotation '
         '{"entity": "number", "value": 5} must be a string, found 5. Quote it: "value": "5".'),
    ],
)
def test_should_reject_malformed_annotations_with_file_and_line(example, message):
    with pytest.raises(SchemaError) as info:
        parse_annotated_text(example, "f.yml", 3)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    "annotated",
    [
        "plain text",
        "water my [cactus](plant) today",
        "tips for [orchids](plant:orchid)",
        'from [Berlin]{"entity": "city", "role": "departure", "group": "1"}',
        'a [b][{"entity": "x"}, {"entity": "y", "value": "z"}]',
        '[x]{"entity": "smiley", "value": ":)"}',  # a value with ")" is written as JSON
    ],
)
def test_annotate_should_invert_parsing(annotated):
    text, entities = parse_annotated_text(annotated)
    assert parse_annotated_text(annotate(text, entities)) == (text, entities)
