"""``parley test nlu --cross-validation`` and ``-c``: Rasa's k-fold evaluation of a config."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from parley.cli import test_cmd
from parley.cli.main import main
from parley.evaluation import cross_validation
from parley.evaluation.cross_validation import stratified_folds
from tests.conftest import FIXTURES, SHARED_DATA, needs_shared_data

TINY = FIXTURES / "nlu_bench" / "tiny"
EXTRACTORS = FIXTURES / "test_nlu"


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tiny project (3 intents × 6 examples), no model, as the working directory; the
    temporary folders of the run go to tmp/ so that a test can see none is left."""
    root = tmp_path / "tiny"
    shutil.copytree(TINY, root)
    (tmp_path / "tmp").mkdir()
    monkeypatch.chdir(root)
    monkeypatch.setenv("PARLEY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    return root


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


# --- the split --------------------------------------------------------------------------
def test_folds_should_partition_the_examples_and_keep_each_intents_share():
    labels = ["a"] * 10 + ["b"] * 7 + ["c"] * 3 + ["d"]
    folds = stratified_folds(labels, 3, seed=5)
    assert sorted(i for fold in folds for i in fold) == list(range(len(labels)))
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    for label, total in Counter(labels).items():
        per_fold = [sum(labels[i] == label for i in fold) for fold in folds]
        assert max(per_fold) - min(per_fold) <= 1 and sum(per_fold) == total, label


def test_folds_should_be_the_same_for_a_seed_and_differ_for_another():
    labels = ["a"] * 20 + ["b"] * 20
    assert stratified_folds(labels, 4, seed=1) == stratified_folds(labels, 4, seed=1)
    assert stratified_folds(labels, 4, seed=1) != stratified_folds(labels, 4, seed=2)


def test_folds_should_refuse_fewer_than_two_or_more_than_the_examples():
    with pytest.raises(ValueError, match="at least 2 folds"):
        stratified_folds(["a", "b"], 1)
    with pytest.raises(ValueError, match="3 folds but only 2 examples"):
        stratified_folds(["a", "b"], 3)


def test_cli_defaults_should_be_the_cross_validations():
    assert test_cmd.DEFAULT_FOLDS == cross_validation.DEFAULT_FOLDS
    assert test_cmd.DEFAULT_SEED == cross_validation.DEFAULT_SEED


# --- a whole run ------------------------------------------------------------------------
LINE = re.compile(r"^(train|test) (Accuracy|F1-score|Precision): (\d\.\d{3}) \((\d\.\d{3})\)$")


def test_cross_validation_should_write_the_reports_and_print_rasas_figures(tiny, capsys):
    assert main(["test", "nlu", "--cross-validation", "-c", "config.yml", "-f", "3"]) == 0
    out = capsys.readouterr().out
    assert "Fold 3/3: training on 12 examples, testing on 6" in out
    assert "CV evaluation (n=3)" in out and "Intent evaluation results" in out
    figures = read(tiny / "results" / "cross_validation_report.json")
    assert figures["folds"] == 3 and figures["seed"] == 0
    printed = [LINE.match(line).groups() for line in out.splitlines() if LINE.match(line)]
    assert len(printed) == 6  # train and test × Accuracy, F1-score, Precision
    for part, metric, mean, std in printed:
        values = figures["intent"][part][metric]["folds"]
        assert len(values) == 3
        assert float(mean) == pytest.approx(np.mean(values), abs=5e-4)
        assert float(std) == pytest.approx(np.std(values), abs=5e-4)
    # intent_report.json scores the test folds together: each example once.
    report = read(tiny / "results" / "intent_report.json")
    assert report["macro avg"]["support"] == 18
    test_accuracies = figures["intent"]["test"]["Accuracy"]["folds"]
    assert report["accuracy"] == pytest.approx(np.mean(test_accuracies))  # equal folds
    assert (tiny / "results" / "intent_errors.json").is_file()
    # the fold models and their data were in a temporary folder, now gone
    assert not list((tiny.parent / "tmp").iterdir())
    assert not (tiny / "models").exists()


def test_cross_validation_should_be_deterministic_for_a_seed(tiny):
    argv = ["test", "nlu", "--cross-validation", "-f", "2", "--no-plot", "--seed", "7"]
    assert main([*argv, "--out", "first"]) == 0
    assert main([*argv, "--out", "second"]) == 0
    for name in ("cross_validation_report.json", "intent_report.json", "intent_errors.json"):
        assert (tiny / "first" / name).read_text() == (tiny / "second" / name).read_text(), name
    assert read(tiny / "first" / "cross_validation_report.json")["seed"] == 7


def test_cross_validation_should_score_each_extractor_and_the_responses(tmp_path, monkeypatch,
                                                                        capsys):
    root = tmp_path / "project"
    shutil.copytree(EXTRACTORS, root)
    monkeypatch.chdir(root)
    monkeypatch.setenv("PARLEY_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["test", "nlu", "--cross-validation", "-f", "2", "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "Entity extractor: CRFEntityExtractor" in out
    assert "Entity extractor: RegexEntityExtractor" in out
    assert "Response Selection evaluation results" in out
    results = root / "results"
    figures = read(results / "cross_validation_report.json")
    assert set(figures["entity"]) == {"CRFEntityExtractor", "RegexEntityExtractor"}
    assert len(figures["response_selection"]["test"]["F1-score"]["folds"]) == 2
    # The regex extractor finds every topping of its lookup table, in any fold: all but
    # "shrooms" (a synonym of mushroom, not in the table), and nothing else.
    regex = read(results / "RegexEntityExtractor_report.json")
    assert regex["topping"]["support"] == 6
    assert regex["topping"]["recall"] == pytest.approx(5 / 6)
    assert regex["topping"]["precision"] == 1.0
    assert [e["text"] for e in read(results / "RegexEntityExtractor_errors.json")] == [
        "one shrooms pizza"]
    assert (results / "CRFEntityExtractor_report.json").is_file()
    responses = read(results / "response_selection_report.json")
    assert responses["macro avg"]["support"] == 12  # all faq examples, each tested once


# --- -c and the options of cross-validation ---------------------------------------------
def test_config_without_cross_validation_should_be_refused_not_ignored(tiny, capsys):
    assert main(["test", "nlu", "-c", "config.yml"]) == 1
    err = capsys.readouterr().err
    assert "-c/--config is used by --cross-validation only" in err
    assert main(["test", "-c", "config.yml"]) == 1  # both parts: the same
    assert "Add --cross-validation" in capsys.readouterr().err
    assert main(["test", "nlu", "--folds", "3"]) == 1
    assert "-f/--folds is used by --cross-validation only" in capsys.readouterr().err


def test_several_configs_should_be_a_clear_error(tiny, capsys):
    shutil.copy("config.yml", "other.yml")
    assert main(["test", "nlu", "-c", "config.yml", "other.yml"]) == 1
    assert "comparing several configs" in capsys.readouterr().err


def test_missing_config_should_name_it(tiny, capsys):
    assert main(["test", "nlu", "--cross-validation", "-c", "nope.yml"]) == 1
    assert "the config 'nope.yml' does not exist" in capsys.readouterr().err


def test_more_folds_than_examples_should_be_a_clear_error(tiny, capsys):
    assert main(["test", "nlu", "--cross-validation", "-f", "19"]) == 1
    assert "19 folds but only 18 NLU examples" in capsys.readouterr().err


def test_test_with_config_should_test_core_and_cross_validate_nlu(tiny, capsys):
    # `rasa test -c config.yml --cross-validation`: no model here, so the core part is
    # skipped with its reason and the NLU part cross-validates.
    assert main(["test", "-c", "config.yml", "--cross-validation", "-f", "2", "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "note: not tested, core:" in out and "CV evaluation (n=2)" in out
    assert (tiny / "results" / "cross_validation_report.json").is_file()


def test_test_with_cross_validation_should_still_fail_on_a_named_missing_model(tiny, capsys):
    assert main(["test", "--cross-validation", "--model", "nowhere"]) == 1
    assert "the model nowhere does not exist" in capsys.readouterr().err


@needs_shared_data
def test_cross_validation_on_a_real_bot_with_retrieval_intents(tmp_path, monkeypatch, capsys):
    bot = SHARED_DATA / "bots" / "rasa-example-responseselectorbot"
    if not bot.is_dir():
        pytest.skip(f"{bot} is not there")
    (tmp_path / "config.yml").write_text(
        "recipe: default.v1\nlanguage: en\npipeline:\n- name: WhitespaceTokenizer\n"
        "- name: CountVectorsFeaturizer\n- name: LogisticRegressionClassifier\n"
        "- name: ResponseSelector\n  epochs: 3\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PARLEY_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["test", "nlu", "--cross-validation", "-f", "2", "--no-plot",
                 "--nlu", str(bot / "data" / "nlu.yml"), "-d", str(bot / "domain.yml")]) == 0
    figures = read(tmp_path / "results" / "cross_validation_report.json")
    assert 0.0 <= figures["intent"]["test"]["Accuracy"]["mean"] <= 1.0
    responses = read(tmp_path / "results" / "response_selection_report.json")
    assert any(key.startswith("chitchat/") for key in responses)
