"""Rasa's JSON NLU format (``{"rasa_nlu_data": {...}}``) → :class:`TrainingData`.

Rasa 3.x still trains on it (it calls it deprecated, but reads it), so Parley reads it
too, into the same objects the YAML reader makes::

    {"rasa_nlu_data": {
        "common_examples": [{"text": "fly to Rome", "intent": "book",
                             "entities": [{"start": 7, "end": 11, "value": "Rome",
                                           "entity": "city", "role": "to"}]}],
        "regex_features": [{"name": "zipcode", "pattern": "[0-9]{5}"}],
        "lookup_tables": [{"name": "city", "elements": ["Rome", "Berlin"]}],
        "entity_synonyms": [{"value": "New York", "synonyms": ["NYC"]}]}}

Entities are given by character offsets here, not inline, so each is checked against its
text: ``0 <= start < end <= len(text)``. A ``value`` that differs from the text it covers is
a synonym, as ``[NYC](city:New York)`` is in YAML; without one, the covered text is the value.
Lookup ``elements`` may name a text file of one element a line, as Rasa allows.

Rasa's schema forbids other top-level keys, and Parley refuses them too; keys Rasa keeps
without using (an unknown key in an example, ``intent_examples``) are named in a warning
rather than dropped without a word.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from parley.data.formats.json_io import read_json_file
from parley.data.formats.schema import (
    check_keys, describe, did_you_mean, expect_list, expect_mapping, expect_type,
)
from parley.data.formats.yaml_io import (
    MAX_FILE_BYTES, LineDict, line_of, plain, read_file_bytes, shorten,
)
from parley.data.message import Entity, Message
from parley.data.training_data import TrainingData
from parley.errors import DataError, SchemaError, warn

__all__ = ["RASA_NLU_KEY", "is_rasa_nlu_json", "nlu_from_json_content", "read_nlu_json_file"]

RASA_NLU_KEY = "rasa_nlu_data"
_SECTIONS = ("common_examples", "regex_features", "lookup_tables", "entity_synonyms")
# In Rasa's schema, but its reader never reads them: their examples do not train in Rasa 3.
_UNREAD_SECTIONS = ("intent_examples", "entity_examples")
_EXAMPLE_KEYS = ("text", "intent", "entities", "metadata")
_ENTITY_KEYS = ("start", "end", "entity", "value", "role", "group")
# What Rasa's parser adds to an entity it predicted; a file written from parse results
# carries them, and they say nothing about what to learn.
_PREDICTION_KEYS = ("extractor", "confidence_entity", "confidence", "processors",
                    "additional_info", "text")
_HINT = "See Rasa's JSON NLU format: rasa_nlu_data with common_examples, regex_features, " \
    "lookup_tables, entity_synonyms."


def is_rasa_nlu_json(content: Any) -> bool:
    """Whether parsed JSON is Rasa NLU data (Rasa tells it by the top-level key)."""
    return isinstance(content, dict) and RASA_NLU_KEY in content


def read_nlu_json_file(path: str | Path) -> TrainingData:
    """Read one Rasa NLU JSON file."""
    return nlu_from_json_content(read_json_file(path), Path(path))


def nlu_from_json_content(content: Any, file: str | Path | None) -> TrainingData:
    """TrainingData from parsed Rasa NLU JSON (from :mod:`parley.data.formats.json_io`,
    so that errors can name lines; plain dicts work too, without lines)."""
    data = TrainingData()
    if content is None:
        return data
    file_name = str(file) if file is not None else None
    content = expect_mapping(content, file, 1, "the file's top level")
    check_keys(content, (RASA_NLU_KEY,), file, "the file's top level", required=(RASA_NLU_KEY,))
    body = content[RASA_NLU_KEY]
    if body is None:
        return data
    body = expect_mapping(body, file, line_of(content, RASA_NLU_KEY), f"'{RASA_NLU_KEY}'")
    _check_sections(body, file)
    unknown: dict[str, tuple[int | None, int]] = {}
    for index, example in enumerate(_section(body, "common_examples", file)):
        _read_example(example, line_of(body["common_examples"], index), file_name, data,
                      unknown)
    for key, (line, count) in unknown.items():
        times = f" ({count} examples)" if count > 1 else ""
        warn(f"the key '{shorten(key)}' in an example{times} is not read, as Rasa does not "
             f"train on it.{did_you_mean(key, _EXAMPLE_KEYS)} Valid keys: "
             f"{', '.join(_EXAMPLE_KEYS)}.", file, line)
    _read_synonyms(body, file_name, data)
    _read_regexes(body, file_name, data)
    _read_lookups(body, file_name, data)
    return data


def _check_sections(body: LineDict, file: str | Path | None) -> None:
    for key in body:
        if key in _UNREAD_SECTIONS:
            warn(f"'{key}' is not read: Rasa 3 trains only on 'common_examples', so the "
                 "examples here are left out, as in Rasa.", file, line_of(body, key))
        elif key not in _SECTIONS:
            raise SchemaError(
                f"unknown key '{shorten(str(key))}' in '{RASA_NLU_KEY}'."
                f"{did_you_mean(str(key), _SECTIONS)}", file, line_of(body, key),
                hint=f"Valid keys: {', '.join(_SECTIONS)}.")


def _section(body: LineDict, key: str, file: str | Path | None) -> list[Any]:
    value = body.get(key)
    if value is None:
        return []
    return expect_list(value, file, line_of(body, key), f"'{key}'")


def _text(item: LineDict, key: str, file: str | Path | None, where: str,
          numbers: bool = True) -> str:
    """A required non-empty string; numbers are read as their text where Rasa's schema
    lets them pass (a synonym's value), not in a name (``numbers=False``)."""
    value = item[key]
    expect_type(value, (str, int, float) if numbers else str, file, line_of(item, key),
                f"the '{key}' of {where}")
    text = str(value)
    if not text.strip():
        raise SchemaError(f"the '{key}' of {where} is empty.", file, line_of(item, key))
    return text


# --- examples ------------------------------------------------------------------------------
def _read_example(raw: Any, line: int | None, file: str | None, data: TrainingData,
                  unknown: dict[str, tuple[int | None, int]]) -> None:
    example = expect_mapping(raw, file, line, "an example in 'common_examples'")
    for key in example:
        if key not in _EXAMPLE_KEYS:
            first, count = unknown.get(str(key), (line_of(example, key), 0))
            unknown[str(key)] = (first, count + 1)
    if "text" not in example:
        raise SchemaError("an example in 'common_examples' has no 'text'.", file, line)
    text = example["text"]
    expect_type(text, str, file, line_of(example, "text"), "the text of an example")
    if not text.strip():
        raise SchemaError("an example with an empty text.", file, line_of(example, "text"),
                          hint="Remove the example or write its text.")
    intent = example.get("intent")
    if intent is not None:
        expect_type(intent, str, file, line_of(example, "intent"),
                    f"the intent of the example '{shorten(text)}'")
    # Rasa's Message.build treats an empty intent as none: a text that teaches no intent.
    intent = intent or None
    listed = _entity_list(example, text, file)
    entities = [_read_entity(item, line_of(listed, index), text, file)
                for index, item in enumerate(listed)]
    metadata = plain(example.get("metadata"))
    data.examples.append(Message(text, intent, entities, metadata, file=file, line=line))
    if intent is not None:
        data.locations.setdefault(("intent", intent), (file or "", line))


def _entity_list(example: LineDict, text: str, file: str | Path | None) -> list[Any]:
    raw = example.get("entities")
    if raw is None:
        return []
    return expect_list(raw, file, line_of(example, "entities"),
                       f"the entities of the example '{shorten(text)}'")


def _read_entity(raw: Any, line: int | None, text: str, file: str | Path | None) -> Entity:
    where = f"an entity of the example '{shorten(text)}'"
    item = expect_mapping(raw, file, line, where)
    check_keys(item, (*_ENTITY_KEYS, *_PREDICTION_KEYS), file, where,
               required=("start", "end", "entity"))
    start, end = item["start"], item["end"]
    expect_type(start, int, file, line_of(item, "start"), f"'start' in {where}")
    expect_type(end, int, file, line_of(item, "end"), f"'end' in {where}")
    name = _text(item, "entity", file, where, numbers=False)
    if not 0 <= start < end <= len(text):
        raise SchemaError(
            f"the entity '{name}' has start {start} and end {end}, outside the example "
            f"'{shorten(text)}' ({len(text)} characters).", file, line_of(item, "start"),
            hint="start and end are character offsets into the text: 0 <= start < end <= "
            "its length, end excluded.")
    covered = text[start:end]
    value = item.get("value")
    if value is None:
        value = covered
    elif not isinstance(value, str):
        # Rasa's schema holds entity values in training data to strings.
        raise SchemaError(f"the value of the entity '{name}' must be a string, found "
                          f"{describe(value)}.", file, line_of(item, "value"))
    role, group = (_label(item, key, file, where) for key in ("role", "group"))
    return Entity(start, end, value, name, role, group)


def _label(item: LineDict, key: str, file: str | Path | None, where: str) -> str | None:
    if item.get(key) is None:
        return None
    return _text(item, key, file, where, numbers=False)


# --- synonyms, regexes, lookup tables ------------------------------------------------------
def _read_synonyms(body: LineDict, file: str | None, data: TrainingData) -> None:
    section = _section(body, "entity_synonyms", file)
    for index, raw in enumerate(section):
        item = expect_mapping(raw, file, line_of(section, index), "an entry of 'entity_synonyms'")
        check_keys(item, ("value", "synonyms"), file, "an entry of 'entity_synonyms'",
                   required=("value", "synonyms"))
        value = _text(item, "value", file, "a synonym entry")
        variants = _strings(item, "synonyms", file, f"the synonym '{value}'")
        _add(data, data.synonyms, "synonym", value, variants, file, line_of(section, index))


def _read_regexes(body: LineDict, file: str | None, data: TrainingData) -> None:
    section = _section(body, "regex_features", file)
    for index, raw in enumerate(section):
        item = expect_mapping(raw, file, line_of(section, index), "an entry of 'regex_features'")
        check_keys(item, ("name", "pattern"), file, "an entry of 'regex_features'",
                   required=("name", "pattern"))
        name = _text(item, "name", file, "a regex", numbers=False)
        pattern = _text(item, "pattern", file, f"the regex '{name}'")
        _add(data, data.regexes, "regex", name, [pattern], file, line_of(section, index))


def _read_lookups(body: LineDict, file: str | None, data: TrainingData) -> None:
    section = _section(body, "lookup_tables", file)
    for index, raw in enumerate(section):
        item = expect_mapping(raw, file, line_of(section, index), "an entry of 'lookup_tables'")
        check_keys(item, ("name", "elements"), file, "an entry of 'lookup_tables'",
                   required=("name", "elements"))
        name = _text(item, "name", file, "a lookup table", numbers=False)
        if isinstance(item["elements"], str):
            elements = _lookup_file(item["elements"], file, line_of(item, "elements"))
        else:
            elements = _strings(item, "elements", file, f"the lookup table '{name}'")
        _add(data, data.lookups, "lookup", name, elements, file, line_of(section, index))


def _strings(item: LineDict, key: str, file: str | Path | None, where: str) -> list[str]:
    values = expect_list(item[key], file, line_of(item, key), f"'{key}' of {where}")
    for index, value in enumerate(values):
        expect_type(value, (str, int, float), file, line_of(values, index),
                    f"an entry of '{key}' of {where}")
    return [str(value) for value in values]


def _lookup_file(name: str, file: str | Path | None, line: int | None) -> list[str]:
    """The elements of a lookup table file, one a line. Rasa opens the path from the
    folder it runs in; a path that is not there is also looked for next to the JSON file."""
    path = Path(name)
    if not path.is_absolute() and not path.exists() and file is not None:
        beside = Path(file).parent / path
        path = beside if beside.exists() else path
    try:
        raw = read_file_bytes(path, MAX_FILE_BYTES)
        text = raw.decode("utf-8-sig")
    except (DataError, UnicodeDecodeError) as exc:
        problem = exc.message if isinstance(exc, DataError) else "the file is not UTF-8 text."
        raise SchemaError(f"the lookup table file '{name}' cannot be read: {problem}", file,
                          line, hint="Give the elements as a list, or the path of a text file "
                          "with one element a line (from the folder Parley runs in).") from None
    return [stripped for stripped in (row.strip() for row in text.splitlines()) if stripped]


def _add(data: TrainingData, table: dict[str, list[str]], kind: str, name: str,
         values: list[str], file: str | None, line: int | None) -> None:
    known = table.setdefault(name, [])
    known.extend(value for value in values if value not in known)
    data.locations.setdefault((kind, name), (file or "", line))
