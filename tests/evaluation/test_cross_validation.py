"""``parley test nlu --cross-validation`` and ``-c``: Rasa's k-fold evaluation of a config."""

from __future__ import annotations

import importlib.util
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
from parley.evaluation import comparison, cross_validation
from parley.evaluation.comparison import stratified_split
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


def test_cli_defaults_should_be_the_evaluations():
    assert test_cmd.DEFAULT_FOLDS == cross_validation.DEFAULT_FOLDS
    assert test_cmd.DEFAULT_SEED == cross_validation.DEFAULT_SEED
    assert test_cmd.DEFAULT_RUNS == comparison.DEFAULT_RUNS
    assert test_cmd.DEFAULT_PERCENTAGES == comparison.DEFAULT_PERCENTAGES


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
def test_an_option_of_cross_validation_alone_should_be_refused_not_ignored(tiny, capsys):
    # (one -c without --cross-validation is taken, as rasa test takes it: test_nlu_reports)
    assert main(["test", "nlu", "--folds", "3"]) == 1
    assert "-f/--folds is used by --cross-validation only" in capsys.readouterr().err


def test_cross_validation_of_several_configs_should_be_a_clear_error(tiny, capsys):
    shutil.copy("config.yml", "other.yml")
    assert main(["test", "nlu", "--cross-validation", "-c", "config.yml", "other.yml"]) == 1
    assert "--cross-validation takes one config" in capsys.readouterr().err
    assert main(["test", "nlu", "-c", "config.yml", "other.yml", "-f", "2"]) == 1
    assert "-f/--folds is used by --cross-validation only" in capsys.readouterr().err
    assert main(["test", "nlu", "--cross-validation", "--runs", "2"]) == 1
    assert "-r/--runs is used by comparing several configs" in capsys.readouterr().err


def test_missing_config_should_name_it(tiny, capsys):
    assert main(["test", "nlu", "--cross-validation", "-c", "nope.yml"]) == 1
    assert "the config 'nope.yml' does not exist" in capsys.readouterr().err


def test_more_folds_than_examples_should_be_a_clear_error(tiny, capsys):
    assert main(["test", "nlu", "--cross-validation", "-f", "19"]) == 1
    assert "19 folds but only 18 NLU examples" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["test", "nlu", "--cross-validation", "-f", "2"],
                                  ["test", "nlu"], ["test", "core"], ["test"]])
def test_an_out_that_is_a_file_should_be_refused_before_any_work(tiny, capsys, argv):
    # Cross-validation trained every fold, then failed to write its reports with
    # "[Errno 17] File exists: 'results.txt' A file stands where a folder is needed".
    (tiny / "results.txt").write_text("mine")
    assert main([*argv, "--out", "results.txt", "--no-plot"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: --out results.txt is a file, but the reports are "
                                   "written into a folder.")
    assert "epochs" not in captured.err + captured.out
    assert (tiny / "results.txt").read_text() == "mine"


@pytest.mark.parametrize("folds", ["1", "0", "-3"])
def test_fewer_than_two_folds_should_be_a_clear_error(tiny, capsys, folds):
    # (stratified_folds' ValueError reached the CLI as "this is a bug in Parley")
    assert main(["test", "nlu", "--cross-validation", "-f", folds]) == 1
    err = capsys.readouterr().err
    assert f"--folds {folds}: cross-validation needs at least 2 folds" in err
    assert "bug" not in err


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


# --- comparing configs ------------------------------------------------------------------
def test_split_should_keep_int_count_times_share_of_each_label():
    labels = ["a"] * 6 + ["b"] * 5
    kept, left = stratified_split(labels, 0.8, np.random.default_rng(0))
    assert sorted(kept + left) == list(range(11))
    assert Counter(labels[i] for i in kept) == {"a": 4, "b": 4}  # int(6 * .8), int(5 * .8)


def _keyword_config() -> None:
    Path("keyword.yml").write_text(Path("config.yml").read_text().replace(
        "LogisticRegressionClassifier", "KeywordIntentClassifier"), encoding="utf-8")


def test_comparing_configs_should_write_rasas_results_and_per_run_reports(tiny, capsys):
    _keyword_config()
    assert main(["test", "nlu", "-c", "config.yml", "keyword.yml", "-r", "2",
                 "-p", "0", "50", "--out", "compare"]) == 0
    out = capsys.readouterr().out
    assert "Beginning comparison run 2/2" in out
    assert "Evaluating configuration 'keyword' with 50%_exclusion training data." in out
    compare = tiny / "compare"
    results = read(compare / "results.json")
    assert set(results) == {"config", "keyword"}
    assert all(len(runs) == 2 and all(len(r) == 2 for r in runs) for runs in results.values())
    # 80 % of each intent's 6 examples is kept for training: 4 × 3 intents, then half that.
    from parley.data.formats.nlu_yaml import read_nlu_file

    for percentage, size in ((0, 12), (50, 6)):
        train = read_nlu_file(compare / "run_1" / f"{percentage}%_exclusion" / "train" /
                              "train.yml")
        assert len(train.examples) == size
    assert len(read_nlu_file(compare / "run_1" / "test.yml").examples) == 6
    # results.json holds the weighted F1 of each step's own intent report
    report = read(compare / "run_2" / "50%_exclusion" / "config_report" / "intent_report.json")
    assert results["config"][1][1] == pytest.approx(report["weighted avg"]["f1-score"])
    if importlib.util.find_spec("matplotlib"):
        assert (compare / "nlu_model_comparison_graph.pdf").read_bytes()[:4] == b"%PDF"
    assert not list((tiny.parent / "tmp").iterdir())  # no model left behind


def test_comparing_should_be_deterministic_for_a_seed(tiny):
    _keyword_config()
    argv = ["test", "nlu", "-c", "config.yml", "keyword.yml", "-r", "1", "-p", "25",
            "--no-plot", "--seed", "3"]
    assert main([*argv, "--out", "a"]) == 0 and main([*argv, "--out", "b"]) == 0
    assert (tiny / "a" / "results.json").read_text() == (tiny / "b" / "results.json").read_text()
    assert (tiny / "a" / "run_1" / "test.yml").read_text() == \
        (tiny / "b" / "run_1" / "test.yml").read_text()


def test_a_config_that_fails_should_score_zero_with_a_warning(tiny, capsys):
    Path("broken.yml").write_text(Path("config.yml").read_text().replace(
        "LogisticRegressionClassifier", "NoSuchClassifier"), encoding="utf-8")
    assert main(["test", "nlu", "-c", "config.yml", "broken.yml", "-r", "1", "-p", "0",
                 "--no-plot"]) == 0
    err = capsys.readouterr().err
    assert "broken.yml: warning: training 'broken' with 0% left out failed" in err
    assert "Unknown NLU component 'NoSuchClassifier'" in err
    results = read(tiny / "results" / "results.json")
    assert results["broken"] == [[0.0]] and results["config"][0][0] > 0.0


def test_comparing_should_refuse_bad_percentages_and_a_lone_config_in_a_folder(tiny, capsys):
    _keyword_config()
    assert main(["test", "nlu", "-c", "config.yml", "keyword.yml", "-p", "100"]) == 1
    assert "each must be from 0 to 99" in capsys.readouterr().err
    Path("configs").mkdir()
    shutil.copy("config.yml", "configs/only.yml")
    assert main(["test", "nlu", "-c", "configs"]) == 1
    assert "comparing configs needs at least two" in capsys.readouterr().err


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
