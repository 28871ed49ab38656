"""benchmarks/core.py runs end to end on a real bot; a config that fails is reported."""

from __future__ import annotations

import json

import yaml

from benchmarks import core as bench
from tests.conftest import needs_shared_data
from tests.evaluation.conftest import MEMO_RULES

LOG = """Training with config.yml
  nlu_0_WhitespaceTokenizer: trained in 0.03s (no earlier model or cache entry)
  core_0_AugmentedMemoizationPolicy: trained in 0.25s (no earlier model or cache entry)
  core_1_RulePolicy: restored in 0.10s (found in the cache)
  nlu_1_CountVectorsFeaturizer: trained in 1.50s (no earlier model or cache entry)
Your model is at models/model.tar.gz
"""


def test_policy_times_should_come_from_the_training_log():
    assert bench.policy_times(LOG) == {"NLU": 1.53, "AugmentedMemoizationPolicy": 0.25,
                                       "RulePolicy": 0.10}


@needs_shared_data
def test_derived_configs_should_keep_the_pipeline_and_drop_or_add_policies(tmp_path):
    bot = bench.BOTS / "financial-demo"
    config = yaml.safe_load(bench.config_for(bot, "no-ted", tmp_path).read_text())
    own = yaml.safe_load((bot / "config-portable.yml").read_text())
    assert config["pipeline"] == own["pipeline"]
    assert [p["name"] for p in config["policies"]] == ["AugmentedMemoizationPolicy", "RulePolicy"]
    e2e = yaml.safe_load(bench.config_for(bench.BOTS / "rasa-example-e2ebot", "no-ted",
                                          tmp_path).read_text())
    assert [p["name"] for p in e2e["policies"]] == ["MemoizationPolicy", "RulePolicy"]
    unexpected = yaml.safe_load(bench.config_for(bot, "with-unexpected", tmp_path).read_text())
    assert unexpected["pipeline"] == own["pipeline"]
    names = [p["name"] for p in unexpected["policies"]]
    assert names.index("UnexpecTEDIntentPolicy") == names.index("TEDPolicy") - 1
    assert unexpected["policies"][names.index("UnexpecTEDIntentPolicy")] == bench.UNEXPECTED


@needs_shared_data
def test_benchmark_should_train_test_and_report_beside_rasa(tmp_path, capsys):
    target = tmp_path / "core.json"
    missing = tmp_path / "removed.yml"  # a policy Rasa 3 removed: it cannot train
    missing.write_text("language: en\npolicies:\n- name: FormPolicy\n")
    code = bench.main(["--bots", "rasa-init-moodbot", "--configs", str(missing), str(MEMO_RULES),
                       "--json", str(target)])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("| rasa-init-moodbot | memo-rules | ") for line in lines)
    failed, ran = json.loads(target.read_text())
    # a config Parley cannot train is reported, and the next one runs
    assert failed["config"] == "removed" and "FormPolicy" in failed["error"]
    assert any(line.startswith("| rasa-init-moodbot | removed | **failed**: ")
               for line in lines)
    assert (ran["passed"], ran["stories"], ran["action_accuracy"]) == (7, 7, 1.0)
    assert ran["parsed"] and ran["train_peak_mb"] > 10 and ran["train_wall_s"] > 0
    assert set(ran["policy_s"]) == {"NLU", "AugmentedMemoizationPolicy", "RulePolicy"}
    assert ran["speedup"] == 50.8 / ran["train_wall_s"]
    assert ran["rasa"]["passed"] == 7
