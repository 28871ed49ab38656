"""``parley test nlu``: scores a trained model and writes Rasa's report files."""

from __future__ import annotations

import json
import shutil

import pytest

from parley.cli.main import main
from tests.conftest import FIXTURES

TINY = FIXTURES / "nlu_bench" / "tiny"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The tiny fixture project with one NLU model trained into models/."""
    root = tmp_path_factory.mktemp("tiny")
    shutil.copytree(TINY, root, dirs_exist_ok=True)
    code = main(["train", "nlu", "-c", str(root / "config.yml"), "-u", str(root / "data"),
                 "--out", str(root / "models"), "--fixed-model-name", "nlu"])
    assert code == 0
    return root


def test_should_find_test_folder_write_reports_and_print_summary(project, monkeypatch, capsys):
    monkeypatch.chdir(project)
    assert main(["test", "nlu"]) == 0
    out = capsys.readouterr().out
    assert "on 6 messages from test" in out
    assert "intents:   accuracy" in out and "entities (exact spans): F1 0.000" in out
    assert "Reports are in results/" in out
    report = json.loads((project / "results" / "intent_report.json").read_text())
    assert set(report) >= {"greet", "goodbye", "order_pizza", "accuracy", "macro avg"}
    # The pipeline has no entity extractor: no entity report, as Rasa writes none.
    assert sorted(p.name for p in (project / "results").glob("*_report.json")) == [
        "intent_report.json"]
    assert isinstance(json.loads((project / "results" / "intent_errors.json").read_text()), list)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_should_write_rasas_plots_and_report_calibration(project, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "plots"
    assert main(["test", "nlu", "--model", str(project / "models" / "nlu.tar.gz"),
                 "--nlu", str(project / "test"), "--out", str(out)]) == 0
    assert "expected calibration error" in capsys.readouterr().out
    for name in ("intent_confusion_matrix.png", "intent_histogram.png",
                 "intent_reliability.png"):
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE, name
    calibration = json.loads((out / "intent_calibration.json").read_text())
    assert sum(b["count"] for b in calibration["bins"]) == calibration["messages"] == 6
    assert 0.0 <= calibration["expected_calibration_error"] <= 1.0


def test_no_plot_should_write_no_png(project, tmp_path):
    out = tmp_path / "noplots"
    assert main(["test", "nlu", "--model", str(project / "models" / "nlu.tar.gz"),
                 "--nlu", str(project / "test"), "--out", str(out), "--no-plot"]) == 0
    assert not list(out.glob("*.png")) and (out / "intent_report.json").is_file()


def test_should_take_model_nlu_and_out_flags(project, tmp_path, capsys):
    out = tmp_path / "reports"
    argv = ["test", "nlu", "--model", str(project / "models" / "nlu.tar.gz"),
            "--nlu", str(project / "data" / "nlu.yml"), "--out", str(out), "--no-errors"]
    assert main(argv) == 0
    assert "on 18 messages" in capsys.readouterr().out
    assert (out / "intent_report.json").is_file()
    assert not (out / "intent_errors.json").exists()


def test_should_fall_back_to_data_with_a_note(project, tmp_path, monkeypatch, capsys):
    shutil.copytree(project / "data", tmp_path / "data")
    shutil.copytree(project / "models", tmp_path / "models")
    monkeypatch.chdir(tmp_path)
    assert main(["test", "nlu"]) == 0
    out = capsys.readouterr().out
    assert "note: no NLU test data in test/ or tests/" in out and "from data" in out


def test_missing_model_should_be_a_clear_error(tmp_path, monkeypatch, capsys):
    shutil.copytree(TINY / "test", tmp_path / "test")
    monkeypatch.chdir(tmp_path)
    assert main(["test", "nlu", "--model", "nowhere"]) == 1
    assert "error: the model nowhere does not exist;" in capsys.readouterr().err


def test_no_test_data_should_be_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["test", "nlu"]) == 1
    assert "error: no NLU test data" in capsys.readouterr().err
    # (it said "Pass existing files or folders (e.g. --data data)": a flag `test` lacks)
    assert main(["test", "nlu", "--nlu", "missing.yml"]) == 1
    err = capsys.readouterr().err
    assert "error: the --nlu path 'missing.yml' does not exist" in err and "--data" not in err


def test_test_without_part_should_test_both_parts_of_the_model(tmp_path, monkeypatch, capsys):
    # Both parts, as `rasa test` (tests/evaluation/test_core_cli.py runs it on a model).
    monkeypatch.chdir(tmp_path)
    assert main(["test"]) == 1
    assert "error: the model models does not exist" in capsys.readouterr().err
