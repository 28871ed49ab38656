from __future__ import annotations

from parley.data.message import Entity, Message
from parley.ml.entity_tags import bilou_moves, decode_entities, tag_spans, token_tags
from parley.nlu.tokens import Token


def tokens_of(text: str) -> list[Token]:
    out, pos = [], 0
    for word in text.split():
        start = text.index(word, pos)
        out.append(Token(word, start, start + len(word)))
        pos = start + len(word)
    return out


TEXT = "fly from new york to paris"
MESSAGE = Message(TEXT, "book", [
    Entity(9, 17, "new york", "city", role="departure"),
    Entity(21, 26, "paris", "city", role="destination"),
])


def test_bilou_tags_mark_begin_inside_last_and_unit_tokens():
    tags = token_tags(MESSAGE, tokens_of(TEXT), "entity", bilou=True)
    assert tags == ["O", "O", "B-city", "L-city", "O", "U-city"]
    assert token_tags(MESSAGE, tokens_of(TEXT), "role", bilou=True) == [
        "O", "O", "B-departure", "L-departure", "O", "U-destination"]
    assert token_tags(MESSAGE, tokens_of(TEXT), "entity", bilou=False) == [
        "O", "O", "city", "city", "O", "city"]


def test_entities_round_trip_through_tags_with_roles():
    tokens = tokens_of(TEXT)
    tags = {a: token_tags(MESSAGE, tokens, a) for a in ("entity", "role")}
    entities = decode_entities(TEXT, tokens, tags, bilou=True, extractor="X")
    assert entities == [
        {"entity": "city", "start": 9, "end": 17, "value": "new york", "role": "departure",
         "extractor": "X"},
        {"entity": "city", "start": 21, "end": 26, "value": "paris", "role": "destination",
         "extractor": "X"},
    ]


def test_adjacent_same_type_entities_stay_apart_only_with_bilou():
    assert tag_spans(["U-city", "U-city"]) == [(0, 0, "city"), (1, 1, "city")]
    assert tag_spans(["city", "city"], bilou=False) == [(0, 1, "city")]


def test_malformed_predicted_sequences_still_give_spans():
    assert tag_spans(["I-city", "L-city", "O"]) == [(0, 1, "city")]
    assert tag_spans(["B-city", "I-city"]) == [(0, 1, "city")]
    assert tag_spans(["B-city", "I-time", "L-city"]) == [(0, 2, "city")]
    assert tag_spans(["B-city", "U-time"]) == [(0, 0, "city"), (1, 1, "time")]
    assert tag_spans(["O", "O"]) == []


def test_confidence_is_the_mean_over_the_entity_tokens():
    tokens = tokens_of(TEXT)
    tags = {"entity": token_tags(MESSAGE, tokens)}
    found = decode_entities(TEXT, tokens, tags, {"entity": [1, 1, 0.5, 0.7, 1, 0.9]})
    assert [round(e["confidence_entity"], 3) for e in found] == [0.6, 0.9]


def test_entities_split_at_commas_only_for_types_that_ask_for_it():
    from parley.ml.entity_tags import comma_rule

    text = "add apples, pears to list"
    tokens = [Token("add", 0, 3), Token("apples", 4, 10), Token("pears", 12, 17),
              Token("to", 18, 20), Token("list", 21, 25)]
    tags = {"entity": ["O", "B-item", "L-item", "O", "O"]}
    split = decode_entities(text, tokens, tags, split_by_comma=comma_rule(True))
    assert [e["value"] for e in split] == ["apples", "pears"]
    kept = decode_entities(text, tokens, tags, split_by_comma=comma_rule({"item": False}))
    assert [e["value"] for e in kept] == ["apples, pears"]


def test_an_entity_sharing_a_token_with_an_earlier_one_is_left_out_of_the_tags():
    text = "fly to new york city"
    message = Message(text, "book", [Entity(7, 20, "new york city", "city"),
                                     Entity(11, 15, "york", "county")])
    assert token_tags(message, tokens_of(text), "entity") == ["O", "O", "B-city", "I-city", "L-city"]


def test_bilou_moves_allow_only_whole_spans():
    names = ["O", "B-city", "I-city", "L-city", "U-city", "L-date"]
    allowed, may_start, may_end = bilou_moves(names)
    move = {(a, b): allowed[i][j] for i, a in enumerate(names) for j, b in enumerate(names)}
    assert move["O", "B-city"] and move["O", "U-city"] and move["O", "O"]
    assert not move["O", "I-city"] and not move["O", "L-city"]
    assert move["B-city", "I-city"] and move["B-city", "L-city"] and move["I-city", "L-city"]
    assert not move["B-city", "O"] and not move["B-city", "L-date"] and not move["I-city", "U-city"]
    assert move["U-city", "B-city"] and move["L-city", "U-city"] and not move["L-city", "I-city"]
    assert [n for n, ok in zip(names, may_start, strict=True) if ok] == ["O", "B-city", "U-city"]
    assert [n for n, ok in zip(names, may_end, strict=True) if ok] == ["O", "L-city", "U-city", "L-date"]
