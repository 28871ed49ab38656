"""Rasa 3.x NLU YAML (``nlu:`` items and ``responses:``) ↔ :class:`TrainingData`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from parley.data.formats.annotations import annotate, parse_annotated_text
from parley.data.formats.responses import read_responses
from parley.data.formats.schema import check_keys, expect_list, expect_mapping, expect_type
from parley.data.formats.version import LATEST_FORMAT_VERSION, is_readable_version
from parley.data.formats.yaml_io import (
    LineDict, dump_yaml, line_of, parse_yaml, plain, read_yaml_file,
)
from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.errors import SchemaError

# Which keys an ``nlu:`` item may carry, by its kind key.
_ITEM_KEYS = {
    "intent": ("intent", "examples", "metadata"),
    "synonym": ("synonym", "examples"),
    "regex": ("regex", "examples"),
    "lookup": ("lookup", "examples"),
}
_EXAMPLE_KEYS = ("text", "metadata")


def read_nlu_file(path: str | Path) -> TrainingData:
    """Read the ``nlu`` (and ``responses``) sections of one file."""
    return nlu_from_content(read_yaml_file(path), Path(path))


def read_nlu_text(text: str, file: str | Path | None = None) -> TrainingData:
    return nlu_from_content(parse_yaml(text, file), file)


def nlu_from_content(content: Any, file: str | Path | None) -> TrainingData:
    """TrainingData from already-parsed YAML; other top-level keys are left to their readers."""
    data = TrainingData()
    if content is None:
        return data
    content = expect_mapping(content, file, 1, "the file's top level")
    if not is_readable_version(content, file):
        return data
    file_name = str(file) if file is not None else None
    if "nlu" in content and content["nlu"] is not None:
        items = expect_list(content["nlu"], file, line_of(content, "nlu"), "'nlu'")
        for index, item in enumerate(items):
            _read_item(item, items.item_lines[index] if items.item_lines else None,
                       file_name, data)
    # The same checks as the domain's responses (Rasa checks both with one schema).
    responses, lines = read_responses(content, file)
    for name, variants in responses.items():
        data.responses[name] = variants
        data.locations[("response", name)] = (file_name or "", lines[name])
    return data



def _read_item(item: Any, line: int | None, file: str | None, data: TrainingData) -> None:
    item = expect_mapping(item, file, line, "an 'nlu' item")
    kinds = [k for k in _ITEM_KEYS if k in item]
    if len(kinds) != 1:
        found = ", ".join(map(str, item)) or "nothing"
        raise SchemaError(
            f"an 'nlu' item must have exactly one of the keys intent, synonym, regex, lookup; "
            f"found {found}.", file, line,
        )
    kind = kinds[0]
    check_keys(item, _ITEM_KEYS[kind], file, f"the '{kind}' item", required=("examples",))
    name = item[kind]
    # A string, as Rasa's schema has it: `intent: 42` is refused there, not read as '42'.
    expect_type(name, str, file, line_of(item, kind), f"the {kind} name")
    if kind == "intent":
        _read_intent(name, item, file, data)
        return
    values = [text for text, _ in _example_lines(item, file, f"the {kind} '{name}'")]
    target = {"synonym": data.synonyms, "regex": data.regexes, "lookup": data.lookups}[kind]
    known = target.setdefault(name, [])
    known.extend(v for v in values if v not in known)
    data.locations.setdefault((kind, name), (file or "", line))


def _read_intent(name: str, item: LineDict, file: str | None, data: TrainingData) -> None:
    if item.get("metadata") is not None:
        data.intent_metadata[name] = plain(item["metadata"])
    data.locations.setdefault(("intent", name), (file or "", line_of(item, "intent")))
    raw = item["examples"]
    if isinstance(raw, list):
        examples = expect_list(raw, file, line_of(item, "examples"), f"the examples of '{name}'")
        for index, example in enumerate(examples):
            ex_line = line_of(examples, index)
            example = expect_mapping(example, file, ex_line, f"an example of '{name}'")
            check_keys(example, _EXAMPLE_KEYS, file, f"an example of '{name}'", required=("text",))
            text = example["text"]
            expect_type(text, str, file, line_of(example, "text"), f"the text of an example of '{name}'")
            meta = plain(example.get("metadata"))
            _add_example(data, name, text.strip(), meta, file, ex_line)
        return
    for text, ex_line in _example_lines(item, file, f"the intent '{name}'"):
        _add_example(data, name, text, None, file, ex_line)


def _add_example(data: TrainingData, intent: str, annotated: str, metadata: Any,
                 file: str | None, line: int | None) -> None:
    text, entities = parse_annotated_text(annotated, file, line)
    data.examples.append(Message(text, intent, entities, metadata, file=file, line=line))


def _example_lines(item: LineDict, file: str | None, where: str) -> list[tuple[str, int | None]]:
    """The ``- text`` lines of an ``examples: |`` block, each with its own line number."""
    raw = item["examples"]
    key_line = line_of(item, "examples")
    if isinstance(raw, list):
        # Lists of plain strings are accepted for synonyms/regexes/lookups, as Rasa does.
        lst = expect_list(raw, file, key_line, f"the examples of {where}")
        out = []
        for index, value in enumerate(lst):
            expect_type(value, (str, int, float), file, line_of(lst, index), f"an example of {where}")
            out.append((str(value), line_of(lst, index)))
        return out
    expect_type(raw, str, file, key_line, f"the examples of {where}")
    out = []
    # A block scalar starts on the line after its key; a quoted one on the key's line.
    first = (key_line or 0) + (1 if "\n" in raw else 0)
    for offset, raw_line in enumerate(raw.splitlines()):
        stripped = raw_line.strip()
        if not stripped:
            continue
        line = first + offset if key_line else None
        if not stripped.startswith("-"):
            raise SchemaError(
                f"the line '{stripped}' in the examples of {where} does not start with '- '.",
                file, line, hint="Each example is one line starting with '- '.",
            )
        text = stripped[1:].strip()
        if not text:
            raise SchemaError(f"an empty example in {where}.", file, line,
                              hint="Remove the line or write the example after '- '.")
        out.append((text, line))
    return out


# --- writing -------------------------------------------------------------------------------
def nlu_to_content(data: TrainingData) -> dict[str, Any]:
    """Plain data in Rasa's NLU layout; consecutive examples of one intent share a block."""
    items: list[dict[str, Any]] = []
    block: list[Message] = []

    def flush() -> None:
        if not block:
            return
        intent = block[0].intent or ""
        item: dict[str, Any] = {"intent": intent}
        if intent in data.intent_metadata and not any(
            i.get("intent") == intent for i in items
        ):
            item["metadata"] = data.intent_metadata[intent]
        if any(m.metadata is not None or "\n" in m.text for m in block):
            item["examples"] = [
                {"text": annotate(m.text, m.entities),
                 **({"metadata": m.metadata} if m.metadata is not None else {})}
                for m in block
            ]
        else:
            item["examples"] = "".join(f"- {annotate(m.text, m.entities)}\n" for m in block)
        items.append(item)
        block.clear()

    for message in data.examples:
        if block and message.intent != block[0].intent:
            flush()
        block.append(message)
    flush()
    for kind, table in (("synonym", data.synonyms), ("regex", data.regexes),
                        ("lookup", data.lookups)):
        for name, values in table.items():
            items.append({kind: name, "examples": "".join(f"- {v}\n" for v in values)})
    content: dict[str, Any] = {"version": LATEST_FORMAT_VERSION}
    if items:
        content["nlu"] = items
    if data.responses:
        content["responses"] = data.responses
    return content


def nlu_to_yaml(data: TrainingData) -> str:
    return dump_yaml(nlu_to_content(data))


def write_nlu_file(data: TrainingData, path: str | Path) -> None:
    Path(path).write_text(nlu_to_yaml(data), encoding="utf-8")


__all__ = [
    "nlu_from_content", "nlu_to_content", "nlu_to_yaml", "read_nlu_file",
    "read_nlu_text", "write_nlu_file",
]
