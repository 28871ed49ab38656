"""``parley test nlu`` writes Rasa's files: one set per entity extractor, and the response
selection set, on a model with two extractors and a ResponseSelector."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from parley.cli.main import main
from parley.data.message import Entity, Message
from parley.errors import DataError
from parley.nlu.evaluation import entity_extractors, evaluate_parses
from tests.conftest import FIXTURES

PROJECT = FIXTURES / "test_nlu"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture project (CRF + regex/lookup extractors, synonyms, ResponseSelector)
    trained once into models/nlu.tar.gz."""
    root = tmp_path_factory.mktemp("test_nlu")
    shutil.copytree(PROJECT, root, dirs_exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("PARLEY_CACHE_DIR", str(root / ".cache"))
        assert main(["train", "nlu", "--fixed-model-name", "nlu"]) == 0
    return root


@pytest.fixture(scope="module")
def results(project: Path) -> Path:
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        assert main(["test", "nlu", "--successes", "--out", "results"]) == 0
    return project / "results"


def read(path: Path) -> object:
    return json.loads(path.read_text(encoding="utf-8"))


def _parses(project: Path) -> list[tuple[Message, dict]]:
    from parley.data.importer import TrainingDataImporter
    from parley.serving.agent import load

    agent = load(project / "models" / "nlu.tar.gz")
    data = TrainingDataImporter(None, None, [str(project / "tests")]).nlu_data
    return [(m, agent.parse(m.text)) for m in data.examples]


def test_each_entity_extractor_should_have_its_own_report_errors_and_successes(results):
    for extractor in ("CRFEntityExtractor", "RegexEntityExtractor"):
        for suffix in ("report", "errors", "successes"):
            assert (results / f"{extractor}_{suffix}.json").is_file(), (extractor, suffix)
    # The synonym mapper finds no entity itself: no report of its own, as in Rasa.
    assert not list(results.glob("EntitySynonymMapper_*"))
    assert not (results / "entity_report.json").exists()


def test_regex_report_should_score_only_what_the_lookup_table_finds(results):
    # The lookup table holds salami and cheese, not pineapple: 2 of the 3 test toppings,
    # nothing spurious.
    report = read(results / "RegexEntityExtractor_report.json")
    assert report["topping"]["support"] == 3
    assert report["topping"]["precision"] == 1.0
    assert report["topping"]["recall"] == pytest.approx(2 / 3)
    assert report["micro avg"] == {"precision": 1.0, "recall": pytest.approx(2 / 3),
                                   "f1-score": pytest.approx(0.8), "support": 3}
    errors = read(results / "RegexEntityExtractor_errors.json")
    assert [e["text"] for e in errors] == ["can I have a pineapple pizza"]
    assert errors[0]["predicted_entities"] == []
    assert errors[0]["entities"] == [{"start": 13, "end": 22, "value": "pineapple",
                                      "entity": "topping"}]


def test_each_report_should_count_only_its_extractors_predictions(project, results):
    parsed = _parses(project)
    messages = [m for m, _ in parsed]
    for extractor in ("CRFEntityExtractor", "RegexEntityExtractor"):
        alone = [{**p, "entities": [e for e in p["entities"] if e.get("extractor") == extractor]}
                 for _, p in parsed]
        own = evaluate_parses(messages, alone, extractors=[extractor]).extractors[extractor]
        report = read(results / f"{extractor}_report.json")
        assert report == json.loads(json.dumps(own.as_dict())), extractor
        successes = read(results / f"{extractor}_successes.json")
        errors = read(results / f"{extractor}_errors.json")
        with_entities = {m.text for m in messages if m.entities}
        # every message with gold entities has a token right (a success) or wrong (an error)
        assert {e["text"] for e in successes + errors if e["entities"]} == with_entities


def test_entity_plots_should_follow_rasas_names(results):
    pytest.importorskip("matplotlib")
    assert (results / "CRFEntityExtractor_confusion_matrix.png").read_bytes()[:8] == PNG_SIGNATURE
    assert (results / "RegexEntityExtractor_confusion_matrix.png").is_file()
    # Rasa draws the confidence histogram only for extractors that give confidences.
    assert not (results / "RegexEntityExtractor_histogram.png").exists()


def test_response_selection_should_write_report_errors_successes_and_plots(project, results):
    report = read(results / "response_selection_report.json")
    assert {"faq/ask_name", "faq/ask_hours", "accuracy", "macro avg"} <= set(report)
    assert report["faq/ask_name"]["support"] == 2 and report["faq/ask_hours"]["support"] == 2
    parsed = _parses(project)
    wrong = [m.text for m, p in parsed if m.response_key and
             p["response_selector"]["default"]["response"]["intent_response_key"] != m.intent]
    errors = read(results / "response_selection_errors.json")
    assert [e["text"] for e in errors] == wrong
    successes = read(results / "response_selection_successes.json")
    assert len(successes) + len(errors) == 4
    for entry in successes:
        assert entry["intent_response_key_target"] == \
            entry["intent_response_key_prediction"]["name"]
    pytest.importorskip("matplotlib")
    for name in ("response_selection_confusion_matrix.png", "response_selection_histogram.png"):
        assert (results / name).read_bytes()[:8] == PNG_SIGNATURE, name


def test_intent_successes_should_be_written_with_successes(results):
    successes = read(results / "intent_successes.json")
    errors = read(results / "intent_errors.json")
    assert len(successes) + len(errors) == 9
    assert all(s["intent"] == s["intent_prediction"]["name"] for s in successes)


def test_without_successes_no_successes_file_is_written(project, tmp_path, monkeypatch):
    monkeypatch.chdir(project)
    assert main(["test", "nlu", "--out", str(tmp_path / "r"), "--no-plot"]) == 0
    assert not list((tmp_path / "r").glob("*_successes.json"))
    assert (tmp_path / "r" / "CRFEntityExtractor_errors.json").is_file()


# --- on hand-made parses ----------------------------------------------------------------
def test_an_extractor_that_found_nothing_should_still_be_scored():
    message = Message("pizza with ham", "order", [Entity(11, 14, "ham", "topping")])
    parse = {"intent": {"name": "order", "confidence": 1.0}, "entities": [
        {"start": 11, "end": 14, "value": "ham", "entity": "topping",
         "extractor": "RegexEntityExtractor"}]}
    report = evaluate_parses([message], [parse],
                             extractors=["CRFEntityExtractor", "RegexEntityExtractor"])
    assert report.extractors["RegexEntityExtractor"].weighted_f1 == 1.0
    assert report.extractors["CRFEntityExtractor"].weighted_f1 == 0.0
    assert report.extractors["CRFEntityExtractor"].label_pairs == [
        ("no_entity", "no_entity"), ("no_entity", "no_entity"), ("topping", "no_entity")]


def test_a_synonym_mapped_value_should_still_match_and_types_confused_should_be_named():
    message = Message("one shrooms and ham pizza", "order",
                      [Entity(4, 11, "mushroom", "topping"), Entity(16, 19, "ham", "topping")])
    parse = {"intent": {"name": "order", "confidence": 1.0}, "entities": [
        {"start": 4, "end": 11, "value": "mushroom", "entity": "topping",
         "extractor": "CRFEntityExtractor", "processors": ["EntitySynonymMapper"]},
        {"start": 16, "end": 19, "value": "ham", "entity": "size",
         "extractor": "CRFEntityExtractor"}]}
    report = evaluate_parses([message], [parse]).extractors["CRFEntityExtractor"]
    assert report.targets == ["no_entity", "topping", "no_entity", "topping", "no_entity"]
    assert report.predictions == ["no_entity", "topping", "no_entity", "size", "no_entity"]
    assert report.as_dict()["topping"]["confused_with"] == {"size": 1}


def test_extractor_reports_should_score_tokens_as_rasas_rasa_test_nlu():
    # "New York" found as "York" alone: no exact span is right, but one of its two tokens
    # is. Rasa labels each token with the entity covering most of it, scores the gold
    # labels other than no_entity, and leaves no_entity out of the averages.
    message = Message("fly from New York to Rome", "fly",
                      [Entity(9, 17, "New York", "city", role="from"),
                       Entity(21, 25, "Rome", "city", role="to")])
    parse = {"intent": {"name": "fly", "confidence": 1.0}, "entities": [
        {"start": 13, "end": 17, "value": "York", "entity": "city", "role": "from",
         "extractor": "DIETClassifier", "confidence_entity": 0.9},
        {"start": 21, "end": 25, "value": "Rome", "entity": "city", "role": "from",
         "extractor": "DIETClassifier", "confidence_entity": 0.6},
        {"start": 0, "end": 3, "value": "fly", "entity": "city", "role": "to",
         "extractor": "DIETClassifier", "confidence_entity": 0.3}]}
    report = evaluate_parses([message], [parse]).extractors["DIETClassifier"]
    assert report.targets == ["no_entity", "no_entity", "city.from", "city.from",
                              "no_entity", "city.to"]
    assert report.predictions == ["city.to", "no_entity", "no_entity", "city.from",
                                  "no_entity", "city.from"]
    scores = report.as_dict()
    assert scores["city.from"] == {"precision": 0.5, "recall": 0.5, "f1-score": 0.5,
                                   "support": 2, "confused_with": {}}
    assert scores["city.to"] == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0,
                                 "support": 1, "confused_with": {"city.from": 1}}
    # micro over the entity labels only: 1 right of 3 predicted, of 3 gold
    assert scores["micro avg"] == pytest.approx({"precision": 1 / 3, "recall": 1 / 3,
                                                 "f1-score": 1 / 3, "support": 3})
    assert scores["weighted avg"]["f1-score"] == pytest.approx(1 / 3)
    assert scores["macro avg"]["f1-score"] == pytest.approx(0.25)
    assert report.accuracy == pytest.approx(3 / 6)  # no_entity tokens count here
    assert report.confidences == [(0.3, False), (0.9, True), (0.6, False)]
    assert len(report.errors) == 1 and len(report.successes) == 1
    # The exact-span figure is another measure: not one entity is exactly right.
    assert evaluate_parses([message], [parse]).entities.n_correct == 0


def test_an_extractor_report_without_gold_entities_should_be_empty_as_rasas():
    message = Message("hello", "greet")
    parse = {"intent": {"name": "greet", "confidence": 1.0}, "entities": [
        {"start": 0, "end": 5, "value": "hello", "entity": "x", "extractor": "CRF"}]}
    report = evaluate_parses([message], [parse], extractors=["CRF"]).extractors["CRF"]
    assert report.as_dict() == {} and report.weighted_f1 == 0.0
    assert len(report.errors) == 1 and report.successes == []


def test_entity_extractors_should_be_the_pipelines_trained_entity_finders():
    from parley.nlu.extractors.regex import RegexEntityExtractor
    from parley.nlu.extractors.synonyms import EntitySynonymMapper

    diet = pytest.importorskip("parley.nlu.neural.diet")
    components = [RegexEntityExtractor(), EntitySynonymMapper(),
                  diet.DIETClassifier(entity_recognition=False, epochs=1)]
    assert entity_extractors(components) == ["RegexEntityExtractor"]
    assert entity_extractors([diet.DIETClassifier(epochs=1)]) == ["DIETClassifier"]


# --- -c without --cross-validation ---------------------------------------------------------
@pytest.mark.parametrize("part", [["nlu"], []])
def test_one_config_without_cross_validation_should_test_the_model_as_rasa_test(
        project, tmp_path, monkeypatch, capsys, part):
    # rasa test -c config.yml (and rasa test nlu -c config.yml) test the model; CI scripts
    # written for Rasa pass it. The config is not used, and a note says so.
    monkeypatch.chdir(project)
    assert main(["test", *part, "-c", "config.yml", "--out", str(tmp_path / "r"),
                 "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "note: -c config.yml is not used: without --cross-validation the trained model " \
           "is tested" in out
    assert (tmp_path / "r" / "CRFEntityExtractor_report.json").is_file()


# --- overlapping gold entities ----------------------------------------------------------
OVERLAPPING = """version: "3.1"
nlu:
- intent: order_pizza
  examples: |
    - a pizza with [salami](topping)
    - a [large salami][{"entity": "size"}, {"entity": "topping"}] pizza
"""


def test_overlapping_gold_entities_of_two_types_should_stop_the_test_at_their_line(
        project, tmp_path, monkeypatch, capsys):
    # rasa test nlu stops on them (a token takes one label); Parley names the example.
    monkeypatch.chdir(project)
    (tmp_path / "overlap.yml").write_text(OVERLAPPING, encoding="utf-8")
    assert main(["test", "nlu", "--nlu", str(tmp_path / "overlap.yml"),
                 "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'overlap.yml'}:6: error: the test example 'a large salami pizza' " \
           "has overlapping entities of different types: 'large salami' (size, characters " \
           "2-14) and 'large salami' (topping, characters 2-14)" in err
    assert not (tmp_path / "r" / "CRFEntityExtractor_report.json").exists()


def test_overlapping_gold_entities_should_be_refused_only_across_types_and_with_extractors():
    message = Message("a large salami pizza", "order",
                      [Entity(8, 14, "salami", "size"), Entity(2, 14, "large salami", "topping")],
                      file="test.yml", line=7)
    parse = {"intent": {"name": "order", "confidence": 1.0}, "entities": []}
    with pytest.raises(DataError, match=r"'large salami' \(topping, characters 2-14\) and "
                                        r"'salami' \(size, characters 8-14\)") as caught:
        evaluate_parses([message], [parse], extractors=["CRFEntityExtractor"])
    assert (caught.value.file, caught.value.line) == ("test.yml", 7)
    # Without an entity extractor Rasa scores no entities, and refuses nothing.
    assert evaluate_parses([message], [parse], extractors=[]).extractors == {}
    # Overlaps of one type are scored, as in Rasa: each token its best-fitting entity.
    message.entities = [Entity(2, 14, "large salami", "topping"),
                        Entity(8, 14, "salami", "topping")]
    report = evaluate_parses([message], [parse], extractors=["CRFEntityExtractor"])
    assert report.extractors["CRFEntityExtractor"].targets == [
        "no_entity", "topping", "topping", "no_entity"]
