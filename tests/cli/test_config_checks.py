"""config.yml checked by ``parley data validate`` and ``parley train``; bugs said to be bugs."""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.cli.main import EXIT_BUG, main


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    main(["init", "--no-prompt", str(tmp_path)])
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PARLEY_DEBUG", raising=False)
    monkeypatch.setenv("PARLEY_CACHE_DIR", str(tmp_path / ".cache"))
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def line_of(path: Path, text: str) -> int:
    """The line of ``path`` that holds ``text``: the starter config may grow."""
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1)
                if text in line)


@pytest.mark.parametrize("old, new, says", [
    ("  - name: RulePolicy", "  - name: RulePolicy\n  - name: FormPolicy",
     "error: the policy 'FormPolicy' was removed in Rasa 3.0; use RulePolicy"),
    ("  - name: EntitySynonymMapper", "  - name: SpacyNLP",
     "error: 'SpacyNLP' is a Rasa component Parley does not have yet"),
    ("    C: 10", "    C: -3",
     "error: LogisticRegressionClassifier: C must be a finite number > 0, not -3."),
])
def test_validate_should_report_config_errors(project, capsys, old, new, says):
    edit(project / "config.yml", old, new)
    assert main(["data", "validate"]) == 1
    out = capsys.readouterr().out
    assert f"config.yml:{line_of(project / 'config.yml', new.splitlines()[-1])}: {says}" in out
    assert "Validation failed: 1 error(s)" in out


def test_validate_should_warn_of_unknown_keys(project, capsys):
    edit(project / "config.yml", "    tfidf: true", "    tfidf: true\n    token_pattern: x")
    assert main(["data", "validate"]) == 0
    assert main(["data", "validate", "--fail-on-warnings"]) == 1
    out = capsys.readouterr().out
    line = line_of(project / "config.yml", "token_pattern: x")
    assert (f"config.yml:{line}: warning: LogisticRegressionClassifier has no parameter "
            "'token_pattern'.") in out


def test_validate_should_place_pipeline_order_errors(project, capsys):
    edit(project / "config.yml", "  - name: WhitespaceTokenizer\n", "")
    assert main(["data", "validate"]) == 1
    assert "config.yml:7: error: RegexFeaturizer needs tokens" in capsys.readouterr().out


def test_dry_run_should_refuse_a_config_that_cannot_train(project, capsys):
    edit(project / "config.yml", "    tfidf: true", "    tfidf: true\n    featurizers: [nope]")
    assert main(["train", "--dry-run"]) == 1
    err = capsys.readouterr().err
    line = line_of(project / "config.yml", "featurizers: [nope]")
    # As `data validate` and every error about a file say it: file:line first, so that
    # editors and CI jump to it (it said "error: config.yml:20: ...").
    assert err.startswith(f"config.yml:{line}: error: LogisticRegressionClassifier: "
                          "featurizers names 'nope'")
    assert "Traceback" not in err


def test_a_config_error_found_while_training_should_say_its_place_first(project, capsys):
    edit(project / "config.yml", "  - name: WhitespaceTokenizer\n", "")
    assert main(["train", "--dry-run"]) == 1
    assert capsys.readouterr().err.startswith("config.yml:7: error: RegexFeaturizer needs "
                                              "tokens")


def test_strict_training_should_refuse_unknown_keys(project, capsys):
    edit(project / "config.yml", "  - name: MemoizationPolicy",
         "  - name: MemoizationPolicy\n    max_histroy: 3")
    assert main(["train", "--strict", "--dry-run"]) == 1
    err = capsys.readouterr().err
    line = line_of(project / "config.yml", "max_histroy: 3")
    assert (f"config.yml:{line}: error: MemoizationPolicy has no parameter 'max_histroy'. Did "
            "you mean 'max_history'?") in err
    assert "(strict mode, as with --strict, makes this an error)" in err
    assert main(["train", "core", "--strict", "--out", "models"]) == 1
    assert main(["train", "--dry-run"]) == 3  # without --strict: a warning, and it goes on
    assert "warning: MemoizationPolicy has no parameter 'max_histroy'" in capsys.readouterr().err


def test_a_bug_should_say_so_without_a_traceback(project, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("parley.data.validation.validate_project", broken)
    assert main(["data", "validate"]) == EXIT_BUG
    err = capsys.readouterr().err
    assert "this is a bug in Parley" in err and "RuntimeError: boom" in err
    assert "Traceback" not in err and "--debug" in err
    assert main(["--debug", "data", "validate"]) == EXIT_BUG
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv("PARLEY_DEBUG", "1")
    assert main(["data", "validate"]) == EXIT_BUG
    assert "Traceback" in capsys.readouterr().err


def test_validate_should_warn_of_policies_sharing_a_priority(project, capsys):
    edit(project / "config.yml", "  - name: RulePolicy", "  - name: RulePolicy\n    priority: 3")
    assert main(["data", "validate"]) == 0
    assert main(["data", "validate", "--fail-on-warnings"]) == 1
    line = line_of(project / "config.yml", "priority: 3")
    assert (f"config.yml:{line}: warning: the policies 'MemoizationPolicy', 'RulePolicy' have "
            "the same priority 3; when they are equally confident the one listed first wins.") \
        in capsys.readouterr().out
