"""benchmarks/nlu.py runs end to end on a tiny fixture project."""

from __future__ import annotations

import json

from benchmarks import nlu as bench
from tests.conftest import FIXTURES


def test_benchmark_should_train_score_and_write_table_and_json(tmp_path, capsys):
    target = tmp_path / "out" / "nlu.json"
    code = bench.main(["--data-root", str(FIXTURES / "nlu_bench"), "--datasets", "tiny", "absent",
                       "--configs", "lr", "--json", str(target), "--seed", "1"])
    assert code == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("| dataset | config | train wall s |")
    runs = json.loads(target.read_text())["runs"]
    tiny, absent = runs
    assert tiny["dataset"] == "tiny" and tiny["config"] == "lr" and "error" not in tiny
    assert tiny["test_messages"] == 6 and 0.0 <= tiny["intent_accuracy"] <= 1.0
    assert tiny["entity_f1"] > 0.5  # lr.yml (Parley's default) extracts entities with a CRF
    assert tiny["train_peak_mb"] > 10 and tiny["model_mb"] > 0
    assert tiny["parse_p99_ms"] >= tiny["parse_p50_ms"] > 0
    assert "lacks" in absent["error"]
    table = target.with_suffix(".md").read_text().splitlines()
    assert len(table) == 4 and table[2].startswith("| tiny | lr | ")
    assert "**failed**" in table[3]


def test_named_config_should_get_the_datasets_assistant_id(tmp_path):
    config = bench.config_for(FIXTURES / "nlu_bench" / "tiny", bench.CONFIGS / "lr.yml", tmp_path)
    text = config.read_text()
    assert text.startswith((bench.CONFIGS / "lr.yml").read_text())
    assert text.endswith("\nassistant_id: benchmark-tiny\nlanguage: en\n")
    own = FIXTURES / "nlu_bench" / "tiny" / "config.yml"
    assert bench.config_for(FIXTURES / "nlu_bench" / "tiny", own, tmp_path) == own


def test_rasa_figures_should_sit_beside_a_run():
    row = {"dataset": "snips-small", "config": "own", "error": "not available yet",
           "rasa": {"train_wall_s": 116.0, "intent_accuracy": 0.939, "entity_f1": 0.4}}
    cells = [c.strip() for c in bench.table_row(row).strip("|").split("|")]
    assert len(cells) == len(bench.COLUMNS)
    assert cells[2] == "**failed**: not available yet" and cells[-4:] == ["116", "0.939", "0.400", "—"]


def test_merging_replaces_a_rerun_and_keeps_the_others():
    old = [{"dataset": "a", "config": "own", "t": 1}, {"dataset": "b", "config": "own", "t": 1}]
    new = [{"dataset": "b", "config": "own", "t": 2}, {"dataset": "a", "config": "lr", "t": 2}]
    merged = bench.merge_runs(old, new)
    assert [(r["dataset"], r["config"], r["t"]) for r in merged] == [
        ("a", "own", 1), ("b", "own", 2), ("a", "lr", 2)]


def test_repeat_trains_cold_each_time_and_reports_the_median(tmp_path, monkeypatch):
    spawned = []
    spawn = bench._spawn

    def recording(kind, payload, cwd, timeout):
        spawned.append((kind, cwd, payload.get("out")))
        return spawn(kind, payload, cwd, timeout)

    monkeypatch.setattr(bench, "_spawn", recording)
    target = tmp_path / "nlu.json"
    code = bench.main(["--data-root", str(FIXTURES / "nlu_bench"), "--datasets", "tiny",
                       "--configs", "lr", "--json", str(target), "--repeat", "3"])
    assert code == 0
    (run,) = json.loads(target.read_text())["runs"]
    walls = run["train_wall_runs"]
    assert len(walls) == 3 and run["train_wall_s"] == sorted(walls)[1]
    trainings = [(cwd, out) for kind, cwd, out in spawned if kind == "train"]
    assert len(trainings) == 3 and len(set(trainings)) == 3  # no cache or model shared
    assert [kind for kind, _, _ in spawned].count("evaluate") == 1


def test_seeds_train_once_each_and_report_the_mean(tmp_path, capsys):
    target = tmp_path / "nlu.json"
    code = bench.main(["--data-root", str(FIXTURES / "nlu_bench"), "--datasets", "tiny",
                       "--configs", "own", "--json", str(target), "--seeds", "1", "2"])
    assert code == 0
    row = json.loads(target.read_text())["runs"][0]
    assert row["config"] == "own (mean of 2 seeds)" and row["seeds"] == [1, 2]
    per_seed = row["per_seed"]
    assert [one["seed"] for one in per_seed] == [1, 2]
    assert row["intent_accuracy"] == sum(one["intent_accuracy"] for one in per_seed) / 2
    assert min(o["train_wall_s"] for o in per_seed) <= row["train_wall_s"] <= max(
        o["train_wall_s"] for o in per_seed)
    out = capsys.readouterr().out
    assert "| tiny | own (mean of 2 seeds) |" in out and "tiny / own (mean of 2 seeds), seed 2:" in out
    assert "seed 1:" in target.with_suffix(".md").read_text()


def test_seed_and_seeds_together_are_refused(capsys):
    import pytest

    with pytest.raises(SystemExit):
        bench.main(["--seed", "1", "--seeds", "1", "2"])
    assert "not both" in capsys.readouterr().err
