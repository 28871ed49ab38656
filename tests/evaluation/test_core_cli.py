"""``parley test core`` and ``parley test``: flags, report files and exit codes."""

from __future__ import annotations

import json
import shutil

import pytest

from parley.cli.main import main
from tests.conftest import needs_shared_data
from tests.evaluation.conftest import BOTS

pytestmark = needs_shared_data

FAILING = """
stories:
- story: says bye to a greeting
  steps:
  - user: |
      hello there!
    intent: greet
  - action: utter_goodbye
"""


@pytest.fixture
def project(bot_model, tmp_path, monkeypatch):
    """A moodbot folder: its model in models/, its test stories in tests/, NLU data in data/."""
    (tmp_path / "models").mkdir()
    shutil.copy(bot_model("rasa-init-moodbot"), tmp_path / "models")
    shutil.copytree(BOTS / "rasa-init-moodbot" / "tests", tmp_path / "tests")
    shutil.copytree(BOTS / "rasa-init-moodbot" / "data", tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_core_should_find_tests_write_reports_and_pass(project, capsys):
    assert main(["test", "core", "--fail-on-prediction-errors"]) == 0
    out = capsys.readouterr().out
    assert "on 7 test stories from tests" in out and "7 of 7 passed" in out
    assert "user turns parsed: 16, 16 as the stories say" in out
    results = project / "results"
    assert sorted(p.name for p in results.iterdir()) == [
        "failed_test_stories.yml", "stories_with_warnings.yml", "story_confusion_matrix.png",
        "story_report.json"]
    assert (results / "failed_test_stories.yml").read_text() == \
        "# None of the test stories failed - all good!\n"
    report = json.loads((results / "story_report.json").read_text())
    assert report["accuracy"] == 1.0 and report["conversation_accuracy"]["correct"] == 7


def test_failing_story_should_exit_1_only_with_fail_on_prediction_errors(project, capsys):
    (project / "tests" / "test_failing.yml").write_text(FAILING)
    assert main(["test", "core", "--out", "r1"]) == 0
    assert "7 of 8 passed" in capsys.readouterr().out
    assert main(["test", "core", "--out", "r2", "--fail-on-prediction-errors"]) == 1
    err = capsys.readouterr().err
    assert "1 of 8 test stories failed" in err and "r2/failed_test_stories.yml" in err
    marked = (project / "r2" / "failed_test_stories.yml").read_text()
    assert "  - action: utter_goodbye  # predicted: utter_greet\n" in marked


def test_fail_on_prediction_errors_with_no_errors_should_not_point_at_a_missing_file(
        project, capsys):
    # It said "the wrong predictions are marked in r/failed_test_stories.yml", a file
    # --no-errors had kept it from writing.
    (project / "tests" / "test_failing.yml").write_text(FAILING)
    argv = ["test", "core", "--out", "r", "--fail-on-prediction-errors", "--no-errors"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "1 of 8 test stories failed" in err and "marked in" not in err
    assert "no failed_test_stories.yml was written (--no-errors)" in err
    assert not (project / "r" / "failed_test_stories.yml").exists()


def test_flags_should_choose_the_stories_and_the_files(project, capsys):
    (project / "extra.yml").write_text(FAILING)  # not a test_ file: named outright
    argv = ["test", "core", "--stories", "extra.yml", "--model", "models", "--out", "r",
            "--successes", "--no-warnings", "--no-plot", "--e2e"]
    assert main(argv) == 0
    assert "0 of 1 passed" in capsys.readouterr().out
    assert sorted(p.name for p in (project / "r").iterdir()) == [
        "failed_test_stories.yml", "story_report.json", "successful_test_stories.yml"]
    report = json.loads((project / "r" / "story_report.json").read_text())
    assert report["greet"]["f1-score"] == 1.0  # --e2e: the intents are scored too
    assert main(["test", "core", "-s", "extra.yml", "--out", "r3", "--no-errors"]) == 0
    assert not (project / "r3" / "failed_test_stories.yml").exists()
    # options before the part count as well
    assert main(["test", "--out", "r4", "--no-plot", "core", "-s", "extra.yml"]) == 0
    assert sorted(p.name for p in (project / "r4").iterdir()) == [
        "failed_test_stories.yml", "stories_with_warnings.yml", "story_report.json"]


def test_test_without_part_should_run_core_and_nlu(project, capsys):
    assert main(["test", "--out", "both"]) == 0
    out = capsys.readouterr().out
    assert "7 of 7 passed" in out and "NLU evaluation of" in out
    names = {p.name for p in (project / "both").iterdir()}
    assert {"story_report.json", "intent_report.json", "failed_test_stories.yml"} <= names


def test_no_test_stories_should_be_a_clear_error(project, capsys):
    shutil.rmtree(project / "tests")
    assert main(["test", "core"]) == 1
    assert "error: no test stories" in capsys.readouterr().err
    assert main(["test", "core", "--stories", "data/nlu.yml"]) == 1
    assert "holds no stories to test" in capsys.readouterr().err


def test_checkpoint_in_a_test_story_should_be_a_located_error(project, capsys):
    (project / "tests" / "test_parts.yml").write_text(
        "stories:\n- story: first part\n  steps:\n  - intent: greet\n  - action: utter_greet\n"
        "  - checkpoint: greeted\n")
    assert main(["test", "core"]) == 1
    err = capsys.readouterr().err
    assert "tests/test_parts.yml:6: error: the test story 'first part' uses the checkpoint " \
           "'greeted'; test stories are replayed whole." in err


def test_test_without_part_should_skip_a_part_without_data_and_say_so(project, capsys):
    shutil.rmtree(project / "data")
    assert main(["test"]) == 0
    out = capsys.readouterr().out
    assert "note: not tested, nlu: no NLU test data" in out and "7 of 7 passed" in out
    shutil.rmtree(project / "tests")
    assert main(["test"]) == 1
    assert "error: nothing to test" in capsys.readouterr().err


def test_a_loop_the_models_domain_lacks_should_be_a_located_error(project, capsys):
    # The policies predict the active loop, which the domain does not have: that crashed
    # the replay with "the policy was trained on another domain", no file, no line.
    (project / "tests" / "test_loop.yml").write_text(
        "stories:\n- story: a form here\n  steps:\n  - intent: greet\n  - action: utter_greet\n"
        "  - active_loop: restaurant_form\n  - intent: mood_great\n  - action: utter_happy\n")
    assert main(["test", "core"]) == 1
    err = capsys.readouterr().err
    assert "tests/test_loop.yml:6: error: the test story 'a form here' activates the loop " \
           "'restaurant_form', which is not an action of the model's domain" in err
    assert "trained on another domain" not in err


def test_test_without_part_should_stop_at_a_broken_file_it_found(project, capsys):
    # A test file with bad indentation in tests/ made `parley test` skip the NLU part
    # with "note: not tested, nlu: invalid YAML: …" (no file, no line) and exit 0.
    (project / "tests" / "test_broken.yml").write_text(
        "stories:\n- story: a\n  steps:\n  - intent: greet\n   - action: utter_greet\n")
    assert main(["test", "--out", "r"]) == 1
    captured = capsys.readouterr()
    assert "tests/test_broken.yml:5: error: invalid YAML" in captured.err
    assert "not tested" not in captured.out


def test_a_missing_stories_path_should_name_its_flag(project, capsys):
    # It said "Pass existing files or folders (e.g. --data data)": a flag these
    # commands do not have.
    assert main(["test", "core", "--stories", "nope.yml"]) == 1
    err = capsys.readouterr().err
    assert "error: the --stories path 'nope.yml' does not exist" in err and "--data" not in err
    assert main(["test", "--stories", "gone/"]) == 1
    err = capsys.readouterr().err
    assert "error: the --stories path 'gone/' does not exist" in err and "--data" not in err


def test_names_the_models_domain_lacks_should_be_warned_at_their_lines(project, capsys):
    # A typo in a test story ('greett') failed or passed without a word of why.
    (project / "tests" / "test_typos.yml").write_text(
        "stories:\n- story: typos\n  steps:\n  - intent: greett\n  - slot_was_set:\n"
        "    - nonslot: 3\n  - action: utter_greet\n")
    assert main(["test", "core", "--out", "r"]) == 0
    captured = capsys.readouterr()
    assert "tests/test_typos.yml:4: warning: the intent 'greett' is not in the model's " \
           "domain. Did you mean 'greet'? The story is replayed as written" in captured.err
    assert "tests/test_typos.yml:5: warning: the slot 'nonslot' is not in the model's " \
           "domain." in captured.err
    assert "7 of 8 passed" in captured.out


def test_an_or_alternative_that_passed_should_be_written_as_a_success(project, capsys):
    # The alternative that passed was in no file: not in failed_test_stories.yml (it
    # passed) and not in successful_test_stories.yml (its story failed as a whole).
    (project / "tests" / "test_or.yml").write_text(
        "stories:\n- story: either mood\n  steps:\n  - intent: greet\n"
        "  - action: utter_greet\n  - or:\n    - intent: mood_great\n"
        "    - intent: mood_unhappy\n  - action: utter_happy\n")
    assert main(["test", "core", "--out", "r", "--successes", "--stories",
                 "tests/test_or.yml"]) == 0
    assert "0 of 1 passed" in capsys.readouterr().out
    failed = (project / "r" / "failed_test_stories.yml").read_text()
    passed = (project / "r" / "successful_test_stories.yml").read_text()
    assert "intent: mood_unhappy" in failed and "intent: mood_great" not in failed
    assert "- story: either mood" in passed and "intent: mood_great" in passed
    assert "mood_unhappy" not in passed


def test_rules_in_test_files_should_be_left_out_with_a_warning_as_rasa_does(project, capsys):
    # Rasa's `rasa test core` replays the stories of test files only (its test
    # test_test_does_not_use_rules); Parley replayed rules too, so its figures differed.
    (project / "tests" / "test_rules.yml").write_text(
        "rules:\n- rule: bye\n  steps:\n  - intent: goodbye\n  - action: utter_greet\n")
    assert main(["test", "core", "--out", "r", "--fail-on-prediction-errors"]) == 0
    captured = capsys.readouterr()
    assert "on 7 test stories from tests" in captured.out and "7 of 7 passed" in captured.out
    assert "tests/test_rules.yml:2: warning: 1 rule of the test files is not tested, as in " \
           "Rasa" in captured.err
    assert main(["test", "core", "--stories", "tests/test_rules.yml"]) == 1
    err = capsys.readouterr().err
    assert "holds no stories to test" in err and "rules are not tested, as in Rasa" in err
