"""``parley data validate --max-history`` and ``parley data validate stories``: conflicts."""

from __future__ import annotations

import pytest

from parley.cli.main import main

CONFLICT = """
  - story: greeting answered by the bot challenge
    steps:
      - intent: greet
      - action: utter_iamabot
"""


@pytest.fixture
def conflicting(tmp_path, monkeypatch):
    """The starter project with a story that answers a greeting differently."""
    main(["init", "--no-prompt", str(tmp_path)])
    stories = tmp_path / "data" / "stories.yml"
    text = stories.read_text()
    stories.write_text(text + CONFLICT)
    monkeypatch.chdir(tmp_path)
    return text.count("\n") + CONFLICT.count("\n")  # the line of the new action


def test_validate_should_warn_of_conflicting_stories_with_both_lines(conflicting, capsys):
    assert main(["data", "validate"]) == 0  # a warning, as in Rasa
    out = capsys.readouterr().out
    assert "story structure: 1 conflict(s) among 5 stories, comparing the last 5 states " \
           "before each action (MemoizationPolicy's max_history, the smallest of the " \
           "policies')" in out
    assert "data/stories.yml:7: warning: story structure conflict after intent 'greet' " \
           "(the last 5 states): 'utter_greet' in story 'greeting, then a watering " \
           "question' (data/stories.yml:7); 'utter_iamabot' in story 'greeting answered " \
           f"by the bot challenge' (data/stories.yml:{conflicting})." in out
    assert "Validation passed: 0 errors, 1 warning(s)." in out


def test_validate_should_fail_on_conflicts_with_fail_on_warnings(conflicting, capsys):
    assert main(["data", "validate", "--fail-on-warnings"]) == 1
    assert "Validation failed: 0 error(s), 1 warning(s)." in capsys.readouterr().out


def test_validate_stories_should_check_only_the_story_structure(conflicting, tmp_path,
                                                               capsys):
    domain = tmp_path / "domain.yml"  # an unused intent: a warning of the full validation
    domain.write_text(domain.read_text().replace("  - ask_watering\n",
                                                 "  - ask_watering\n  - spare\n"))
    assert main(["data", "validate", "--max-history", "2"]) == 0
    assert capsys.readouterr().out.count("warning:") == 2
    assert main(["data", "validate", "stories", "--max-history", "2",
                 "--fail-on-warnings"]) == 1
    out = capsys.readouterr().out
    assert "comparing the last 2 states before each action (given with --max-history)" in out
    assert "(the last 2 states)" in out
    assert out.count("warning:") == 1


def test_validate_should_pass_the_starter_stories_at_any_max_history(tmp_path, monkeypatch,
                                                                      capsys):
    main(["init", "--no-prompt", str(tmp_path)])
    monkeypatch.chdir(tmp_path)
    for n in ("1", "3"):
        assert main(["data", "validate", "--max-history", n, "--fail-on-warnings"]) == 0
    assert "0 conflict(s) among 4 stories" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["0", "-2", "five"])
def test_max_history_should_be_a_positive_integer(conflicting, capsys, value):
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "validate", "--max-history", value])
    assert exit_info.value.code == 2
    assert f"the value of `--max-history {value}` is not a positive integer" in \
        capsys.readouterr().err


def test_train_should_warn_of_the_history_memoization_drops(conflicting, tmp_path,
                                                            monkeypatch, capsys):
    monkeypatch.setenv("PARLEY_CACHE_DIR", str(tmp_path / ".cache"))
    assert main(["train", "core", "--quiet", "--out", str(tmp_path / "models")]) == 0
    err = capsys.readouterr().err
    assert err.count("MemoizationPolicy does not memorize a history") == 1
    assert "data/stories.yml:7: warning: MemoizationPolicy does not memorize a history: " \
           "story structure conflict after intent 'greet'" in err
    assert f"(data/stories.yml:{conflicting})" in err
