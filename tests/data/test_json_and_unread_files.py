"""A project's data folders: JSON NLU files are read next to YAML ones, and files Parley
does not read (Rasa 1.x/2.x Markdown, other JSON) are named, never skipped silently."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from parley.data.importer import TrainingDataImporter
from parley.errors import DataError, ParleyWarning, SchemaError

NLU_YAML = 'version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - hi\n    - hello\n'
NLU_JSON = {"rasa_nlu_data": {
    "common_examples": [
        {"text": "fly to Rome", "intent": "book",
         "entities": [{"start": 7, "end": 11, "value": "Rome", "entity": "city"}]},
        {"text": "hi", "intent": "greet"},  # a repeat of the YAML example: read once
    ],
    "entity_synonyms": [{"value": "Rome", "synonyms": ["Roma"]}],
    "regex_features": [{"name": "zipcode", "pattern": "[0-9]{5}"}],
    "lookup_tables": [{"name": "city", "elements": ["Rome"]}],
}}
MARKDOWN_NLU = "## intent:greet\n- hey\n- hello there\n\n## synonym:Rome\n- Roma\n"
MARKDOWN_STORIES = "## happy path\n* greet\n  - utter_greet\n"


def _project(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    (data / "json").mkdir(parents=True)
    (data / "nlu.yml").write_text(NLU_YAML)
    (data / "json" / "flights.json").write_text(json.dumps(NLU_JSON, indent=2))
    return data


def _load(paths: list[Path]) -> tuple[TrainingDataImporter, list[ParleyWarning]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ParleyWarning)
        importer = TrainingDataImporter(None, None, paths)
        importer.load_all()
    return importer, [w.message for w in caught if isinstance(w.message, ParleyWarning)]


def test_json_and_yaml_in_one_folder_should_merge_without_a_word(tmp_path):
    data = _project(tmp_path)
    importer, found = _load([data])
    assert found == []
    nlu = importer.nlu_data
    assert [(m.text, m.intent) for m in nlu.examples] == [
        ("fly to Rome", "book"), ("hi", "greet"), ("hello", "greet")]
    assert importer.files.nlu == [data / "json" / "flights.json", data / "nlu.yml"]
    assert (nlu.synonyms, nlu.regexes, nlu.lookups) == (
        {"Rome": ["Roma"]}, {"zipcode": ["[0-9]{5}"]}, {"city": ["Rome"]})
    assert importer.summary()["entity annotations"] == 1


def test_a_json_file_named_outright_should_be_read(tmp_path):
    data = _project(tmp_path)
    importer, _ = _load([data / "json" / "flights.json"])
    assert importer.nlu_data.intents == {"book", "greet"}


@pytest.mark.parametrize(("text", "convert"), [
    (MARKDOWN_NLU, "rasa data convert nlu -f yaml"),
    (MARKDOWN_STORIES, "rasa data convert core -f yaml"),
])
def test_rasa_markdown_in_a_folder_should_be_a_warning_saying_how_to_convert(
        tmp_path, text, convert):
    data = _project(tmp_path)
    (data / "old.md").write_text(text)
    importer, found = _load([data])
    assert len(found) == 1
    assert found[0].file == str(data / "old.md")
    assert "Rasa 1.x/2.x Markdown" in found[0].message and "Rasa 3 no longer reads" in \
        found[0].message
    assert convert in found[0].message and "Rasa 2.x" in found[0].message
    assert "hey" not in {m.text for m in importer.nlu_data.examples}


def test_other_markdown_and_json_in_a_folder_should_each_be_named(tmp_path):
    data = _project(tmp_path)
    (data / "README.md").write_text("# Our bot's data\n")
    (data / "settings.json").write_text('{"theme": "dark"}')
    _, found = _load([data])
    named = sorted((Path(w.file).name, w.message) for w in found)
    assert [name for name, _ in named] == ["README.md", "settings.json"]
    assert named[0][1].startswith("a Markdown file is not training data and is not read.")
    assert named[1][1].startswith("this JSON is not Rasa NLU data (it has no top-level "
                                  "'rasa_nlu_data' key), so it is not read.")


@pytest.mark.parametrize(("name", "text"), [
    ("nlu.md", MARKDOWN_NLU), ("README.md", "# notes\n"), ("settings.json", "[1, 2]"),
])
def test_a_file_named_outright_that_is_not_read_should_be_an_error(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SchemaError, match="not read|no longer reads") as info:
        _load([path])
    assert info.value.file == str(path)


@pytest.mark.parametrize(("name", "content", "kind"), [
    ("luis.json", {"luis_schema_version": "7.0.0", "utterances": []}, "LUIS"),
    ("wit.json", {"utterances": [{"text": "hi", "intent": "greet"}]}, "Wit.ai"),
    ("agent.json", {"supportedLanguages": ["en"]}, "Dialogflow"),
    ("greet_usersays_en.json", [{"data": [{"text": "hi"}]}], "Dialogflow"),
])
def test_json_rasa_would_train_on_should_be_an_error_even_in_a_folder(tmp_path, name, content,
                                                                     kind):
    data = _project(tmp_path)
    (data / name).write_text(json.dumps(content))
    with pytest.raises(SchemaError, match=f"looks like {kind} NLU data, which Rasa 3 reads but "
                       "Parley does not") as info:
        _load([data])
    assert info.value.file == str(data / name)
    assert "rasa data convert nlu -f yaml" in (info.value.hint or "")


def test_hidden_files_and_editor_backups_should_stay_silent(tmp_path):
    data = _project(tmp_path)
    for name in (".nlu.json", ".old.md", "nlu.json~", "nlu.md.bak", "#nlu.json#",
                 "flights.json.orig"):
        (data / name).write_text(MARKDOWN_NLU)
    importer, found = _load([data])
    assert found == [] and len(importer.nlu_data.examples) == 3


def test_malformed_json_in_a_folder_should_name_file_and_line(tmp_path):
    data = _project(tmp_path)
    (data / "json" / "flights.json").write_text('{\n  "rasa_nlu_data": {\n    "common_examples": '
                                                '[\n      {"text": "hi" "intent": "greet"}\n]}}')
    with pytest.raises(DataError, match=r"invalid JSON: expected ',' or '}' after a value in an "
                       r"object \(column 21\)") as info:
        _load([data])
    assert (info.value.file, info.value.line) == (str(data / "json" / "flights.json"), 4)


def test_an_empty_json_file_should_be_a_warning_like_an_empty_yaml_file(tmp_path):
    data = _project(tmp_path)
    (data / "empty.json").write_text("")
    _, found = _load([data])
    assert [(Path(w.file).name, w.message) for w in found] == [
        ("empty.json", "the file is empty; it holds no training data.")]


def test_an_imported_project_should_give_its_json_and_name_only_its_training_data(tmp_path):
    """MultiProjectImporter reads whole project folders: their README and settings JSON
    are not worth a warning, their Rasa Markdown is, and their JSON NLU data is read."""
    root, skill = tmp_path / "root", tmp_path / "skill"
    _project(root)
    (skill / "data").mkdir(parents=True)
    (skill / "README.md").write_text("# The skill\n")
    (skill / "package.json").write_text('{"name": "skill"}')
    (skill / "data" / "faq.json").write_text(json.dumps({"rasa_nlu_data": {"common_examples": [
        {"text": "what is this", "intent": "faq"}]}}))
    (skill / "data" / "old.md").write_text(MARKDOWN_NLU)
    (root / "config.yml").write_text("importers:\n- name: MultiProjectImporter\n"
                                     "imports:\n- ../skill\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ParleyWarning)
        importer = TrainingDataImporter(None, root / "config.yml", [root / "data"])
        importer.load_all()
    found = [w.message for w in caught if isinstance(w.message, ParleyWarning)]
    assert [Path(w.file).name for w in found] == ["old.md"]
    assert importer.nlu_data.intents == {"book", "greet", "faq"}
