"""A project with NLU data in Rasa's JSON format next to YAML: validated, trained by the
CLI and the Python API, and the trained model parses what the JSON taught it."""

from __future__ import annotations

import shutil

import pytest

import parley
from parley.cli.main import main
from tests.conftest import FIXTURES

MIXED = FIXTURES / "nlu_json"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The mixed fixture project with an NLU model trained by `parley train nlu`."""
    root = tmp_path_factory.mktemp("nlu_json")
    shutil.copytree(MIXED, root, dirs_exist_ok=True)
    code = main(["train", "nlu", "-c", str(root / "config.yml"), "-u", str(root / "data"),
                 "--out", str(root / "models"), "--fixed-model-name", "nlu"])
    assert code == 0
    return root


def test_the_trained_model_should_parse_what_the_json_taught_it(project):
    agent = parley.load(str(project / "models" / "nlu.tar.gz"))
    parsed = agent.parse("a flight from NYC to Paris")
    assert parsed["intent"]["name"] == "book_flight"
    # Roles from the JSON entities; NYC → New York from its entity_synonyms.
    assert [(e["entity"], e["value"], e.get("role")) for e in parsed["entities"]] == [
        ("city", "New York", "departure"), ("city", "Paris", "destination")]
    assert agent.parse("hello")["intent"]["name"] == "greet"  # from the YAML file


def test_train_nlu_should_take_one_json_file(project, tmp_path):
    api_model = parley.train_nlu(str(project / "config.yml"),
                                 str(project / "data" / "flights.json"), str(tmp_path),
                                 fixed_model_name="api")
    assert api_model is not None
    intents = {i["name"] for i in parley.load(api_model).parse("hi")["intent_ranking"]}
    assert intents == {"book_flight", "seats", "tell_zip"}  # no YAML intents: one file only
    assert main(["train", "nlu", "-c", str(project / "config.yml"), "--nlu",
                 str(project / "data" / "flights.json"), "--out", str(tmp_path),
                 "--fixed-model-name", "cli"]) == 0
    assert (tmp_path / "cli.tar.gz").is_file()


def test_validate_should_pass_on_the_mixed_project(project, monkeypatch, capsys):
    monkeypatch.chdir(project)
    assert main(["data", "validate", "--fail-on-warnings"]) == 0
    out = capsys.readouterr().out
    assert "15  NLU examples" in out and "12  entity annotations" in out
    assert "1  synonyms" in out and "1  regexes" in out and "1  lookup tables" in out


def test_validate_should_name_file_and_line_of_an_entity_outside_its_text(
        project, tmp_path, monkeypatch, capsys):
    root = tmp_path / "broken"
    shutil.copytree(project, root, ignore=shutil.ignore_patterns("models"))
    flights = root / "data" / "flights.json"
    flights.write_text(flights.read_text().replace('"start": 21, "end": 26',
                                                   '"start": 21, "end": 27'))
    line = next(n for n, text in enumerate(flights.read_text().splitlines(), 1)
                if '"end": 27' in text)
    monkeypatch.chdir(root)
    assert main(["data", "validate"]) == 1
    err = capsys.readouterr().err
    assert (f"data/flights.json:{line}: error: the entity 'city' has start 21 and end 27, "
            "outside the example 'a flight from NYC to Paris' (26 characters).") in err


def test_train_should_warn_about_markdown_left_from_rasa_2(project, tmp_path, monkeypatch,
                                                           capsys):
    root = tmp_path / "with_md"
    shutil.copytree(project, root, ignore=shutil.ignore_patterns("models"))
    (root / "data" / "nlu.md").write_text("## intent:greet\n- hey there\n")
    monkeypatch.chdir(root)
    assert main(["train", "--out", "models", "--fixed-model-name", "full"]) == 0
    err = capsys.readouterr().err
    assert "data/nlu.md: warning: this is Rasa 1.x/2.x Markdown NLU data" in err
    assert "rasa data convert nlu -f yaml --data data/nlu.md" in err
    assert (root / "models" / "full.tar.gz").is_file()  # the warning does not stop training
