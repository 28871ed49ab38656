"""Every project under ../shared/data loads, validates and holds what its README says."""

from __future__ import annotations

import json

import pytest

from parley.data.formats.domain_yaml import read_domain
from parley.data.formats.nlu_yaml import nlu_to_yaml, read_nlu_file, read_nlu_text
from parley.data.importer import TrainingDataImporter
from parley.data.validation import validate_project
from parley.errors import FormatVersionError
from tests.conftest import SHARED_DATA, needs_shared_data

pytestmark = needs_shared_data

BOTS = SHARED_DATA / "bots"
BOT_STATS = json.loads((BOTS / "bots.json").read_text()) if BOTS.is_dir() else {}
READABLE_BOTS = sorted(name for name in BOT_STATS if name != "carbon-bot")
BENCHMARKS = ["hwu64", "hwu64-small", "banking77", "banking77-small", "snips", "snips-small"]

# rasa-example-rules reuses formbot's NLU file without declaring its intents and entities;
# Rasa's own `rasa data validate` fails it for the same reasons.
EXPECTED_ERRORS = {
    "rasa-example-rules": [
        "the intent 'request_restaurant' is not in the domain.",
        "the entity 'cuisine' is not in the domain.",
        "the entity 'seating' is not in the domain.",
        "the entity 'feedback' is not in the domain.",
        "the intent 'thankyou' is not in the domain.",
        "the intent 'chitchat' is not in the domain.",
        "the intent 'stop' is not in the domain. Did you mean 'stopp'?",
        "the intent 'bot_challenge' is not in the domain.",
    ],
}


def bot_importer(name: str) -> TrainingDataImporter:
    root = BOTS / name
    data = [root / "data"] + [root / d for d in ("tests",) if (root / d).is_dir()]
    return TrainingDataImporter(root / "domain.yml", root / "config.yml", data)


def listed_and_distinct(importer: TrainingDataImporter) -> tuple[int, int]:
    """The NLU examples as the files list them, and how many differ in text, intent,
    entities or metadata (what a project trains on)."""
    examples = [m for path in importer.files.nlu for m in read_nlu_file(path).examples]
    distinct = {json.dumps([m.text, m.intent, [e.to_dict() for e in m.entities], m.metadata],
                           sort_keys=True) for m in examples}
    return len(examples), len(distinct)


@pytest.mark.parametrize("name", READABLE_BOTS)
def test_bot_should_load_with_the_counts_of_its_readme(name):
    stats = BOT_STATS[name]["stats"]
    importer = bot_importer(name)
    domain = read_domain(BOTS / name / "domain.yml")
    nlu = importer.nlu_data
    listed, distinct = listed_and_distinct(importer)
    assert listed == stats["nlu_examples"]
    assert len(nlu.examples) == distinct  # exact repeats dropped, as Rasa's loader does
    assert len(nlu.intents) == stats["intents_in_nlu"]
    assert sorted(nlu.retrieval_intents) == stats["retrieval_intents"]
    assert len(nlu.synonyms) == stats["synonyms"]
    assert len(nlu.regexes) == stats["regexes"]
    assert len(nlu.lookups) == stats["lookups"]
    assert len(domain.intents) == stats["domain_intents"]
    assert len(domain.entities) == stats["entities"]
    assert len(domain.slots) == stats["slots"]
    assert len(domain.forms) == stats["forms"]
    assert len(domain.responses) == stats["responses"]
    assert len(importer.stories) == stats["stories"]
    assert len(importer.rules) == stats["rules"]
    assert len(importer.test_stories) == stats["test_stories"]


@pytest.mark.parametrize("name", READABLE_BOTS)
def test_bot_should_validate_without_errors(name):
    report = validate_project(bot_importer(name))
    expected = EXPECTED_ERRORS.get(name, [])
    assert len(report.errors) == len(expected), [str(i) for i in report.errors]
    for issue, start in zip(report.errors, expected, strict=True):
        assert issue.message.startswith(start)
        assert issue.file is not None and issue.line is not None


@pytest.mark.parametrize("name", READABLE_BOTS)
def test_bot_nlu_files_should_round_trip(name):
    for path in bot_importer(name).files.nlu:
        data = read_nlu_file(path)
        assert read_nlu_text(nlu_to_yaml(data)) == data


def test_carbon_bot_should_fail_saying_its_domain_is_the_old_format():
    with pytest.raises(FormatVersionError) as info:
        bot_importer("carbon-bot").load_all()
    message = str(info.value)
    assert "domain.yml" in message and "Rasa 2.x domain" in message
    assert "required_slots" in message and "mappings" in message and '"3.1"' in message


def test_carbon_bot_training_data_should_still_load():
    importer = bot_importer("carbon-bot")
    stats = BOT_STATS["carbon-bot"]["stats"]
    listed, distinct = listed_and_distinct(importer)
    assert listed == stats["nlu_examples"]
    assert len(importer.nlu_data.examples) == distinct
    assert len(importer.stories) == stats["stories"]
    assert len(importer.rules) == stats["rules"]


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_project_should_load_and_validate(name):
    root = SHARED_DATA / name
    importer = TrainingDataImporter(root / "domain.yml", root / "config.yml", [root / "data"])
    stats = json.loads((SHARED_DATA / "nlu_benchmarks.json").read_text())[name]
    assert len(importer.domain.intents) == stats["n_intents"]
    assert len(importer.domain.entities) == stats["n_entities"]
    # Exact duplicates (same intent, text and entities) are dropped, as Rasa's loader does:
    # the "distinct" count (e.g. snips 13,617 of 13,784, its test set 697 of 700).
    assert len(importer.nlu_data.examples) == stats["stats"]["train"]["distinct_examples"]
    tests = TrainingDataImporter(None, None, [root / "test"]).nlu_data
    assert len(tests.examples) == stats["stats"]["test"]["distinct_examples"]
    assert validate_project(importer).errors == []
