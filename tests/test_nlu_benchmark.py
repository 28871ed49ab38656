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
    assert cells[2] == "**failed**: not available yet" and cells[10:14] == ["116", "0.939", "0.400", "—"]


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


class _FallbackAgent:
    """Answers nlu_fallback to every message, with the gold intent first behind it."""

    def __init__(self, gold_by_text):
        self.gold_by_text = gold_by_text

    def parse(self, text):
        gold = self.gold_by_text.get(text, "greet")
        ranking = [{"name": "nlu_fallback", "confidence": 0.3}, {"name": gold, "confidence": 0.29},
                   {"name": "other", "confidence": 0.2}]
        return {"text": text, "intent": dict(ranking[0]), "intent_ranking": ranking, "entities": []}


def test_rasa_columns_should_score_the_intent_as_returned_not_the_ranking(monkeypatch):
    import parley.serving.agent as agent_module
    from parley.data.importer import TrainingDataImporter

    test_file = FIXTURES / "nlu_bench" / "tiny" / "test" / "test_nlu.yml"
    messages = TrainingDataImporter(None, None, [test_file]).nlu_data.examples
    monkeypatch.setattr(agent_module, "load",
                        lambda path: _FallbackAgent({m.text: m.base_intent for m in messages}))
    scored = bench._child_evaluate({"model": "unused", "test": str(test_file)})
    assert scored["intent_accuracy"] == 0.0  # every answer was nlu_fallback
    assert scored["intent_ranking_accuracy"] == 1.0  # the classifier had them all right
    assert scored["fallback_rate"] == 1.0
    row = {"dataset": "snips-small", "config": "x", "train_wall_s": 1.0, "train_peak_mb": 1.0,
           "model_mb": 1.0, "parse_p50_ms": 1.0, "parse_p99_ms": 1.0, **scored,
           "rasa": {"train_wall_s": 116.0, "intent_accuracy": 0.939, "entity_f1": 0.4}}
    cells = dict(zip(bench.COLUMNS, [c.strip() for c in bench.table_row(row).strip("|").split("|")],
                     strict=True))
    assert cells["intent acc"] == "0.000" and cells["Rasa acc"] == "0.939"
    assert cells["ranking acc (fallback undone)"] == "1.000" and cells["fallback %"] == "100.0"


def test_held_out_intents_mode_should_report_oos_recall_and_plot(tmp_path):
    pytest = __import__("pytest")
    pytest.importorskip("matplotlib")
    target = tmp_path / "nlu.json"
    plots = tmp_path / "plots"
    code = bench.main(["--data-root", str(FIXTURES / "nlu_bench"), "--datasets", "tiny",
                       "--configs", "lr", "--json", str(target), "--held-out-intents", "0.34",
                       "--set", "calibration_folds=0", "--plots", str(plots)])
    assert code == 0
    (row,) = json.loads(target.read_text())["runs"]
    assert row["config"] == "lr (calibration_folds=0, 0.34 of intents held out)"
    assert len(row["held_out_intents"]) == 1 and "rasa" not in row
    assert 0.0 <= row["oos_recall"] <= 1.0 and row["oos_messages"] >= 1
    held = row["held_out_intents"][0]
    assert bench.held_out_intents(FIXTURES / "nlu_bench" / "tiny", 0.34) == [held]  # fixed split
    assert (plots / f"reliability-tiny-{bench._slug(row['config'])}.png").read_bytes()[:4] == b"\x89PNG"
