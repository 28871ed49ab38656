"""Property-based tests of the YAML readers, the importer and the config reader (issue 18).

Whatever a user's files hold, reading and validating a project may only succeed or raise
one of Parley's own errors (a :class:`ParleyError`): never another exception, never a
hang.
Three properties, each bounded so the file runs in well under a minute on two cores:

- the starter bot's real files, mutated (lines deleted, duplicated, swapped, re-indented;
  random characters; random tags, anchors, aliases, deep nesting; random values in known
  keys), read by the importer and validated: ``MUTATION_CASES`` projects per run;
- generated YAML documents built from the keys Rasa files use, with random values of every
  YAML type, read by each reader (config, domain, NLU, stories): ``DOCUMENT_CASES`` per run;
- random text, read as config.yml: ``TEXT_CASES`` per run.

That is 500 cases per run by default (about 20 s on two cores); ``PARLEY_PROPERTY_SCALE=10``
multiplies them for a longer hunt. Each case runs under a deadline (hypothesis) and an alarm that turns a hang
into a failure.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parley.data.config import config_from_content, read_config_text
from parley.data.formats.domain_yaml import domain_from_content
from parley.data.formats.nlu_yaml import nlu_from_content
from parley.data.formats.story_yaml import story_file_from_content
from parley.data.formats.yaml_io import parse_yaml
from parley.data.importer import TrainingDataImporter
from parley.data.validation import validate_project
from parley.errors import ParleyError
from parley.recipe import config_issues
from parley.starter import _TEMPLATE, STARTER_FILES

SCALE = int(os.environ.get("PARLEY_PROPERTY_SCALE", "1"))
MUTATION_CASES = 200 * SCALE
DOCUMENT_CASES = 200 * SCALE
TEXT_CASES = 100 * SCALE
HANG_SECONDS = 20  # far above any real case (tens of ms); only a hang reaches it

STARTER = {name: (_TEMPLATE / name).read_text(encoding="utf-8") for name in STARTER_FILES}


def _settings(cases: int) -> settings:
    return settings(max_examples=cases, deadline=5000, database=None, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@contextlib.contextmanager
def _no_hang() -> Iterator[None]:
    def fail(signum: int, frame: Any) -> None:
        raise AssertionError(f"hung: no answer within {HANG_SECONDS} s")

    if not hasattr(signal, "SIGALRM"):  # Windows: the hypothesis deadline alone
        yield
        return
    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(HANG_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _only_parley_errors(read: Callable[[], Any]) -> None:
    with _no_hang(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            read()
        except ParleyError:
            pass


# ---- values that stress the readers ----------------------------------------------------
NASTY_SCALARS = [
    "!!float x", "!!int x", "!!bool maybe", "!!timestamp 2001-13-45", "!!binary '@@'",
    "!!seq {a: 1}", "!!map [1, 2]", "!!set {a}", "!!omap [{a: 1}]", "!!str", "!!null x",
    "9" * 4400, "0x" + "f" * 4000, ".inf", "-.nan", "1e999", "0o777", "~", "null", "''",
    "[]", "{}", "[[[[[[[[[[]]]]]]]]]]", "&a x", "*a", "*nope", "<<: *a", "!foo bar",
    "\"\\u0000\"", "'\ud7ff'", "-1", "0", "true", "yes", "3.1", "\"4.0\"", "|", ">-",
    "{a: [b, {c: d}]}", "[a, *a]", "? [a]", "- - -", "x" * 500, "!!python/object:os.system x",
]

# "value" twice: a hostile value in a known key reaches deepest into the readers
line_edits = st.sampled_from(["delete", "duplicate", "swap", "indent", "dedent", "chars",
                              "value", "value", "anchor", "deep", "bomb"])


def _mutate(text: str, data: st.DataObject) -> str:
    lines = text.split("\n")
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        edit = data.draw(line_edits, label="edit")
        i = data.draw(st.integers(0, max(len(lines) - 1, 0)), label="line")
        line = lines[i] if lines else ""
        if edit == "delete" and lines:
            del lines[i]
        elif edit == "duplicate":
            lines.insert(i, line)
        elif edit == "swap" and lines:
            j = data.draw(st.integers(0, len(lines) - 1), label="other line")
            lines[i], lines[j] = lines[j], lines[i]
        elif edit == "indent":
            lines[i:i + 1] = ["  " + line]
        elif edit == "dedent":
            lines[i:i + 1] = [line[2:] if line.startswith("  ") else line.lstrip()]
        elif edit == "chars":
            at = data.draw(st.integers(0, len(line)), label="column")
            junk = data.draw(st.lists(st.sampled_from(list(":-[]{}#&*!|>'\"%@`,?\t\n x0"))
                                      | st.characters(), max_size=4).map("".join), label="junk")
            lines[i:i + 1] = [line[:at] + junk + line[at:]]
        elif edit == "value":
            nasty = data.draw(st.sampled_from(NASTY_SCALARS), label="value")
            key, colon, _ = line.partition(":")
            lines[i:i + 1] = [f"{key}: {nasty}" if colon else
                              f"{line.split('- ')[0]}- {nasty}" if "- " in line else nasty]
        elif edit == "anchor":
            key, colon, rest = line.partition(":")
            if colon:
                lines[i:i + 1] = [f"{key}: &a{rest}"]
            lines.insert(data.draw(st.integers(0, len(lines)), label="alias at"),
                         f"{key}: *a" if colon else "- *a")
        elif edit == "deep":
            depth = data.draw(st.integers(20, 400), label="depth")
            key, colon, _ = line.partition(":")
            lines[i:i + 1] = [f"{key if colon else 'x'}: " + "[" * depth + "]" * depth]
        elif edit == "bomb":
            key, colon, _ = line.partition(":")
            bomb = ["b0: &b0 [x, x, x, x, x, x, x, x, x, x]"] + [
                f"b{k}: &b{k} [" + ", ".join([f"*b{k - 1}"] * 10) + "]" for k in range(1, 7)]
            lines[0:0] = bomb
            lines.insert(i + len(bomb), f"{key}: *b6" if colon else "- *b6")
    return "\n".join(lines)


def _read_project(root: Path) -> None:
    importer = TrainingDataImporter(root / "domain.yml", root / "config.yml", [root / "data"])
    importer.load_all()
    importer.summary()
    validate_project(importer)
    config_issues(importer.config)


@_settings(MUTATION_CASES)
@given(data=st.data(), target=st.sampled_from(STARTER_FILES))
def test_a_mutated_starter_project_should_read_or_raise_a_parley_error(data, target):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, text in STARTER.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(_mutate(text, data) if name == target else text,
                                     encoding="utf-8")
        if target.startswith("tests/"):  # test stories are read from the data paths too
            (root / "data" / "test_stories.yml").write_text(
                (root / target).read_text(encoding="utf-8"), encoding="utf-8")
        _only_parley_errors(lambda: _read_project(root))


# ---- generated documents ---------------------------------------------------------------
KEYS = ["version", "recipe", "language", "assistant_id", "pipeline", "policies", "name",
        "importers", "imports", "nlu", "intent", "examples", "synonym", "regex", "lookup",
        "responses", "text", "buttons", "payload", "stories", "rules", "story", "rule",
        "steps", "action", "slot_was_set", "active_loop", "checkpoint", "or", "entities",
        "user", "condition", "intents", "slots", "type", "mappings", "entity", "forms",
        "required_slots", "actions", "session_config", "initial_value", "values",
        "influence_conversation", "use_entities", "metadata", "wait_for_user_input",
        "conversation_start", "epochs", "max_history", "core_fallback_threshold"]

scalars = (st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats()
           | st.text(max_size=12) | st.sampled_from(KEYS) | st.sampled_from(["3.1", "default.v1",
           "text", "from_entity", "WhitespaceTokenizer", "RulePolicy", "- hi\n- there\n"]))
def _nested(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    keys = st.sampled_from(KEYS) | st.text(max_size=6)
    return st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4))


values = st.recursive(scalars, _nested, max_leaves=25)
documents = st.dictionaries(st.sampled_from(KEYS), values, min_size=1, max_size=5)


def _as_yaml(document: Any, data: st.DataObject) -> str:
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    if data.draw(st.booleans(), label="add a tag"):  # a tag or alias in front of some value
        lines = text.split("\n")
        i = data.draw(st.integers(0, len(lines) - 1), label="line")
        key, colon, rest = lines[i].partition(": ")
        if colon:
            prefix = data.draw(st.sampled_from(["!!str", "!!int", "!!float", "!!seq", "!!map",
                                                "!!bool", "!!timestamp", "&a", "!!null"]))
            lines[i] = f"{key}: {prefix} {rest}"
        text = "\n".join(lines)
    return text


READERS = [
    ("config.yml", config_from_content),
    ("domain.yml", domain_from_content),
    ("data/nlu.yml", nlu_from_content),
    ("data/stories.yml", story_file_from_content),
]


@_settings(DOCUMENT_CASES)
@given(data=st.data(), document=documents, reader=st.sampled_from(READERS))
def test_any_document_should_read_or_raise_a_parley_error(data, document, reader):
    file, read = reader
    text = _as_yaml(document, data)
    _only_parley_errors(lambda: read(parse_yaml(text, file), file))


@_settings(TEXT_CASES)
@given(text=st.text(max_size=200) | st.binary(max_size=200).map(
    lambda raw: raw.decode("utf-8", "replace")))
def test_any_text_as_config_should_read_or_raise_a_parley_error(text):
    _only_parley_errors(lambda: config_issues(read_config_text(text, "config.yml")))
