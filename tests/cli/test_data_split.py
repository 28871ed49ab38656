"""``parley data split nlu`` / ``split stories``: Rasa's split files, the same on every run."""

from __future__ import annotations

import os
import stat
from collections import Counter

import pytest

from parley.cli.main import main
from parley.data.formats.nlu_yaml import read_nlu_file
from parley.data.formats.story_yaml import is_test_stories_file, read_story_file
from parley.data.importer import TrainingDataImporter
from tests.conftest import SHARED_DATA, needs_shared_data

NLU = """version: "3.1"
nlu:
- intent: greet
  examples: |
    - hi
    - hello
    - hey there
    - good morning
    - good evening
- intent: book
  examples: |
    - book a table in [Paris](city)
    - a table for [two](people) please
    - reserve in [Rome](city) for [four](people)
    - I want a table in [Berlin](city)
    - table please
    - can I book
    - book it
    - make a reservation
    - reservation for tonight
    - a table now
- intent: faq/opening_hours
  examples: |
    - when do you open
    - what are your hours
    - are you open on sunday
- intent: faq/parking
  examples: |
    - where can I park
    - is there parking
- intent: thanks
  examples: |
    - thank you
- synonym: Paris
  examples: |
    - paris
- regex: people
  examples: |
    - \\\\d+
responses:
  utter_faq/opening_hours:
  - text: We open at noon.
  utter_faq/parking:
  - text: Park behind the house.
"""

STORIES = """version: "3.1"
stories:
""" + "".join(f"""- story: story {i}
  steps:
  - intent: greet
  - action: utter_greet_{i}
""" for i in range(10)) + """rules:
- rule: say thanks
  steps:
  - intent: thanks
  - action: utter_welcome
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (data / "nlu.yml").write_text(NLU)
    (data / "stories.yml").write_text(STORIES)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _labels(path):
    return Counter(m.intent for m in read_nlu_file(path).examples)


def test_split_nlu_should_keep_each_label_on_both_sides(project, capsys):
    assert main(["data", "split", "nlu"]) == 0
    out = project / "train_test_split"
    train, test = _labels(out / "training_data.yml"), _labels(out / "test_data.yml")
    assert train + test == _labels(project / "data" / "nlu.yml")
    assert sum(train.values()) == 16 and sum(test.values()) == 5  # 0.8 of 21, rounded down
    for label in ("greet", "book", "faq/opening_hours", "faq/parking"):
        assert train[label] >= 1 and test[label] >= 1, label
    assert train["thanks"] == 1 and "thanks" not in test  # a single example stays in training
    assert "kept in training only (a single example): thanks" in capsys.readouterr().out
    for name in ("training_data.yml", "test_data.yml"):
        data = read_nlu_file(out / name)
        assert data.synonyms == {"Paris": ["paris"]} and "people" in data.regexes
    # entity annotations survive the round trip
    examples = read_nlu_file(out / "training_data.yml").examples + \
        read_nlu_file(out / "test_data.yml").examples
    rome = next(m for m in examples if m.text.startswith("reserve in Rome"))
    assert [(e.entity, e.value) for e in rome.entities] == [("city", "Rome"), ("people", "four")]


def test_split_nlu_should_write_the_responses_each_part_needs(project):
    assert main(["data", "split", "nlu"]) == 0
    out = project / "train_test_split"
    for name in ("nlg_training_data.yml", "nlg_test_data.yml"):
        responses = read_nlu_file(out / name).responses
        assert set(responses) == {"utter_faq/opening_hours", "utter_faq/parking"}
    assert not read_nlu_file(out / "training_data.yml").responses


def test_split_nlu_should_give_the_same_split_for_a_seed(project):
    out = project / "train_test_split"
    assert main(["data", "split", "nlu", "--random-seed", "7"]) == 0
    first = (out / "test_data.yml").read_text()
    assert main(["data", "split", "nlu", "--random-seed", "7"]) == 0
    assert (out / "test_data.yml").read_text() == first
    assert main(["data", "split", "nlu", "--random-seed", "8", "--out", "other"]) == 0
    assert (project / "other" / "test_data.yml").read_text() != first


def test_split_nlu_should_follow_the_training_fraction(project):
    assert main(["data", "split", "nlu", "--training-fraction", "0.5"]) == 0
    out = project / "train_test_split"
    train, test = _labels(out / "training_data.yml"), _labels(out / "test_data.yml")
    assert (sum(train.values()), sum(test.values())) == (10, 11)  # half of 21, rounded down


def test_split_stories_should_write_train_and_test_files(project, capsys):
    assert main(["data", "split", "stories", "--out", "stories_split"]) == 0
    out = project / "stories_split"
    train = read_story_file(out / "train_stories.yml")
    test_path = out / "test_stories.yml"
    assert is_test_stories_file(test_path)
    test = read_story_file(test_path)
    assert len(train.stories) == 8 and len(test.stories) == 2
    names = {s.name for s in train.stories} | {s.name for s in test.stories}
    assert names == {f"story {i}" for i in range(10)}
    assert [r.name for r in train.rules] == ["say thanks"] and not test.rules
    assert "8 training and 2 test stories from 1 file(s)" in capsys.readouterr().out
    # the test part is what `parley test core` reads: the importer files it as tests
    files = TrainingDataImporter(None, None, [out]).files
    assert files.tests == [test_path] and files.stories == [out / "train_stories.yml"]


@pytest.mark.parametrize("argv, message", [
    (["data", "split", "nlu", "--training-fraction", "1"], "between 0 and 1"),
    (["data", "split", "stories", "--training-fraction", "abc"], "between 0 and 1"),
])
def test_split_should_refuse_a_fraction_outside_0_1(project, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_split_should_name_a_missing_path_and_an_out_file(project, capsys):
    assert main(["data", "split", "nlu", "-u", "missing"]) == 1
    assert "the data path 'missing' given to -u/--nlu does not exist." in capsys.readouterr().err
    (project / "taken").write_text("x")
    assert main(["data", "split", "stories", "--out", "taken"]) == 1
    assert "--out taken is a file, not a folder." in capsys.readouterr().err
    assert (project / "taken").read_text() == "x"


def test_split_should_say_when_there_is_nothing_to_split(tmp_path, monkeypatch, capsys):
    (tmp_path / "rules.yml").write_text("rules:\n- rule: r\n  steps:\n  - intent: a\n"
                                        "  - action: utter_a\n")
    monkeypatch.chdir(tmp_path)
    assert main(["data", "split", "nlu", "-u", "rules.yml"]) == 1
    assert "no NLU examples with an intent found in rules.yml" in capsys.readouterr().err
    assert main(["data", "split", "stories", "-u", "rules.yml"]) == 1
    assert "no stories found in rules.yml" in capsys.readouterr().err


@needs_shared_data
def test_split_nlu_should_split_a_real_bot_by_intent(tmp_path, monkeypatch):
    data = SHARED_DATA / "bots" / "financial-demo" / "data"
    monkeypatch.chdir(tmp_path)
    assert main(["data", "split", "nlu", "-u", str(data)]) == 0
    whole = TrainingDataImporter(None, None, [data]).nlu_data.examples_per_intent()
    train = _labels(tmp_path / "train_test_split" / "training_data.yml")
    test = _labels(tmp_path / "train_test_split" / "test_data.yml")
    assert train + test == whole
    assert abs(sum(train.values()) / sum(whole.values()) - 0.8) < 0.01
    assert all(test[label] >= 1 for label, count in whole.items() if count >= 2)


def _stories(count, checkpoint_every=0):
    text = "version: \"3.1\"\nstories:\n"
    for i in range(count):
        text += f"- story: s{i}\n  steps:\n  - intent: greet\n  - action: utter_{i}\n"
        if checkpoint_every and i % checkpoint_every == 0:
            text += "  - checkpoint: joined\n"
    return text


@pytest.mark.parametrize("count, tests", [(3, 1), (2, 1), (1, 0), (10, 2), (5, 1)])
def test_split_stories_should_round_the_test_part_up_as_rasa(tmp_path, monkeypatch, count,
                                                              tests):
    # Rasa's scikit-learn split: ceil(n × 0.2) test stories, and never none left to train on
    (tmp_path / "stories.yml").write_text(_stories(count))
    monkeypatch.chdir(tmp_path)
    assert main(["data", "split", "stories", "-u", "stories.yml"]) == 0
    out = tmp_path / "train_test_split"
    assert len(read_story_file(out / "test_stories.yml").stories) == tests
    assert len(read_story_file(out / "train_stories.yml").stories) == count - tests


def test_split_stories_should_keep_stories_with_checkpoints_for_training(tmp_path, monkeypatch,
                                                                         capsys):
    # `parley test core` refuses a test story with a checkpoint: none may be drawn for it
    (tmp_path / "stories.yml").write_text(_stories(6, checkpoint_every=2))  # s0, s2, s4
    monkeypatch.chdir(tmp_path)
    for seed in range(5):
        assert main(["data", "split", "stories", "-u", "stories.yml", "--random-seed",
                     str(seed), "--training-fraction", "0.5"]) == 0
        out = tmp_path / "train_test_split"
        test = read_story_file(out / "test_stories.yml").stories
        assert len(test) == 2 and {s.name for s in test} <= {"s1", "s3", "s5"}
        assert "(3 with checkpoints kept for training)" in capsys.readouterr().out


def test_split_should_not_split_its_own_output_in_data_again(project, capsys):
    for _ in range(2):
        assert main(["data", "split", "stories", "--out", "data/split"]) == 0
        assert main(["data", "split", "nlu", "--out", "data/split"]) == 0
    out = project / "data" / "split"
    assert sorted(p.name for p in out.iterdir()) == [
        "nlg_test_data.yml", "nlg_training_data.yml", "test_data.yml", "test_stories.yml",
        "train_stories.yml", "training_data.yml"]
    printed = capsys.readouterr().out
    assert printed.count("from 1 file(s)") == 2 and "2 file(s)" not in printed
    assert printed.count("16 training and 5 test examples") == 2
    # naming the folder itself splits what is in it, as asked
    assert main(["data", "split", "stories", "-u", "data/split", "--out", "data/split"]) == 0
    assert (out / "train_train_stories.yml").exists()


def test_split_should_write_files_with_the_usual_mode(project):
    old = os.umask(0o022)
    try:
        assert main(["data", "split", "nlu"]) == 0
        assert main(["data", "split", "stories"]) == 0
    finally:
        os.umask(old)
    for path in (project / "train_test_split").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path.name


def test_split_stories_should_name_a_broken_story_not_copy_it(tmp_path, monkeypatch, capsys):
    (tmp_path / "stories.yml").write_text(
        "stories:\n- story: a\n  steps:\n  - intent: greet\n  - acton: utter_a\n")
    monkeypatch.chdir(tmp_path)
    assert main(["data", "split", "stories", "-u", "stories.yml"]) == 1
    assert "stories.yml:5: error: unknown key 'acton'" in capsys.readouterr().err
    assert not (tmp_path / "train_test_split" / "train_stories.yml").exists()


def test_split_stories_should_keep_files_of_the_same_name_apart(project, capsys):
    data = project / "data"
    for folder in ("a", "b"):
        (data / folder).mkdir()
        (data / folder / "stories.yml").write_text(
            STORIES.replace("story: story", f"story: {folder} story"))
    assert main(["data", "split", "stories"]) == 0
    out = project / "train_test_split"
    found = sorted(str(p.relative_to(out)) for p in out.rglob("*.yml"))
    assert found == ["a/test_stories.yml", "a/train_stories.yml", "b/test_stories.yml",
                     "b/train_stories.yml", "test_stories.yml", "train_stories.yml"]
    for folder in ("a", "b"):
        names = {s.name for part in ("train", "test")
                 for s in read_story_file(out / folder / f"{part}_stories.yml").stories}
        assert names == {f"{folder} story {i}" for i in range(10)}
    assert "24 training and 6 test stories from 3 file(s)" in capsys.readouterr().out


def test_split_stories_should_refuse_two_given_files_that_would_collide(project, capsys):
    (project / "other").mkdir()
    (project / "other" / "stories.yml").write_text(STORIES)
    argv = ["data", "split", "stories", "-u", "data/stories.yml", "other/stories.yml"]
    assert main(argv) == 1
    assert ("data/stories.yml and other/stories.yml would both be split into "
            "train_test_split/train_stories.yml") in capsys.readouterr().err
    assert not list((project / "train_test_split").glob("*.yml"))  # nothing half-written


def test_split_stories_should_not_split_an_earlier_split_in_the_data_folder(project, capsys):
    argv = ["data", "split", "stories", "--out", "data/split"]
    assert main(argv) == 0
    first = sorted(p.name for p in (project / "data" / "split").iterdir())
    assert main(argv) == 0
    assert sorted(p.name for p in (project / "data" / "split").iterdir()) == first
    assert "from 1 file(s)" in capsys.readouterr().out.splitlines()[-1]
