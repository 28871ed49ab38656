"""Finetuning a trained starter model: the success path and each refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.component import finetune_epochs
from parley.errors import ConfigError, DataError, ModelArchiveError
from parley.model_training import train
from parley.serving.agent import load
from parley.starter import create_starter_project


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    create_starter_project(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(project: Path, **kwargs):
    return train(str(project / "domain.yml"), str(project / "config.yml"),
                 [str(project / "data")], str(project / "models"), **kwargs)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_epochs_should_be_the_ceiling_of_the_fraction():
    assert finetune_epochs(100, 0.25) == 25
    assert finetune_epochs(10, 0.01) == 1
    assert finetune_epochs(3, 0.5) == 2


def test_finetuning_with_a_new_example_should_keep_the_model_working(project):
    old = run(project)
    edit(project / "data" / "nlu.yml", "      - howdy\n", "      - howdy\n      - hiya there\n")
    new = run(project, model_to_finetune=str(project / "models"), finetuning_epoch_fraction=0.5)
    assert new.model != old.model and new.code == 8
    agent = load(new.model)
    assert agent.parse("hiya there")["intent"]["name"] == "greet"
    assert agent.parse("how often should I water my cactus?")["intent"]["name"] == "ask_watering"


NO_ENTITIES = {
    "config.yml": "recipe: default.v1\nlanguage: en\n",  # Parley's default pipeline
    "domain.yml": (
        'version: "3.1"\nintents:\n  - greet\n  - goodbye\nresponses:\n'
        '  utter_greet:\n    - text: "Hello!"\n  utter_goodbye:\n    - text: "Bye!"\n'),
    "data/nlu.yml": (
        'version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - hello\n    - hi\n'
        '    - good morning\n- intent: goodbye\n  examples: |\n    - bye\n    - see you\n'
        '    - good night\n'),
    "data/rules.yml": (
        'version: "3.1"\nrules:\n- rule: greet\n  steps:\n  - intent: greet\n'
        '  - action: utter_greet\n'),
}


def test_default_pipeline_without_entities_should_finetune(tmp_path, monkeypatch):
    """CRFEntityExtractor learned no entities: finetuning keeps it empty instead of
    refusing the whole model."""
    monkeypatch.chdir(tmp_path)
    for name, text in NO_ENTITIES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    old = run(tmp_path)
    edit(tmp_path / "data" / "nlu.yml", "    - hi\n", "    - hi\n    - hey there\n")
    new = run(tmp_path, model_to_finetune=str(old.model), finetuning_epoch_fraction=0.5)
    assert new.model != old.model
    agent = load(new.model)
    parsed = agent.parse("hey there")
    assert parsed["intent"]["name"] == "greet" and parsed["entities"] == []


def test_a_missing_model_should_be_a_clear_error(project):
    with pytest.raises(ModelArchiveError, match="the model to finetune .*nope.tar.gz does not exist"):
        run(project, model_to_finetune=str(project / "nope.tar.gz"))
    (project / "empty").mkdir()
    with pytest.raises(ModelArchiveError, match=r"there is no model to finetune \(\*\.tar\.gz\) in"):
        run(project, model_to_finetune=str(project / "empty"))


def config_line(project: Path, text: str) -> int:
    """The 1-based line of config.yml that holds ``text``."""
    lines = (project / "config.yml").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One starter model for the refusals below, which never train."""
    root = tmp_path_factory.mktemp("base")
    create_starter_project(root)
    return Path(run(root).model)


@pytest.mark.parametrize("fraction", [0, -1, float("nan"), float("inf"), "0.5", True])
def test_an_epoch_fraction_not_a_finite_positive_number_should_be_refused(project, trained,
                                                                           fraction):
    # (inf multiplied the epochs into an OverflowError: a crash, not an answer)
    with pytest.raises(ConfigError, match="finetuning_epoch_fraction must be a finite number "
                                          "greater than 0"):
        run(project, model_to_finetune=str(trained), finetuning_epoch_fraction=fraction)


def test_a_changed_parameter_other_than_epochs_should_name_its_config_line(project, trained):
    edit(project / "config.yml", "    max_ngram: 4", "    max_ngram: 3")
    line = config_line(project, "max_ngram: 3")
    with pytest.raises(ConfigError) as raised:
        run(project, model_to_finetune=str(trained))
    assert str(raised.value).startswith(
        f"{project / 'config.yml'}:{line}: CountVectorsFeaturizer has other parameters than in "
        "the model (max_ngram 4 → 3); finetuning allows only other epoch counts.")


def test_a_parameter_removed_from_the_config_should_name_its_component(project, trained):
    edit(project / "config.yml", "    C: 10\n", "")
    line = config_line(project, "- name: LogisticRegressionClassifier")
    with pytest.raises(ConfigError, match=rf"config.yml:{line}: LogisticRegressionClassifier has "
                                          r"other parameters than in the model \(C 10 → 1.0\)"):
        run(project, model_to_finetune=str(trained))


def test_a_changed_policy_parameter_should_name_its_config_line(project, trained):
    edit(project / "config.yml", "  - name: MemoizationPolicy\n",
         "  - name: MemoizationPolicy\n    max_history: 3\n")
    line = config_line(project, "max_history: 3")
    with pytest.raises(ConfigError, match=rf"config.yml:{line}: MemoizationPolicy has other "
                                          r"parameters than in the model \(max_history 5 → 3\)"):
        run(project, model_to_finetune=str(trained))


def test_a_changed_pipeline_should_name_the_first_component_that_differs(project, trained):
    edit(project / "config.yml", "  - name: RegexFeaturizer\n", "")
    line = config_line(project, "- name: LexicalSyntacticFeaturizer")
    with pytest.raises(ConfigError, match=rf"config.yml:{line}: the config's pipeline differs "
                                          "from the model's"):
        run(project, model_to_finetune=str(trained))


def test_policies_removed_at_the_end_should_name_the_last_one_left(project, trained):
    edit(project / "config.yml", "  - name: RulePolicy\n", "")
    line = config_line(project, "- name: MemoizationPolicy")
    with pytest.raises(ConfigError, match=rf"config.yml:{line}: the config's policies differs "
                                          r"from the model's \(MemoizationPolicy, RulePolicy → "
                                          r"MemoizationPolicy\)"):
        run(project, model_to_finetune=str(trained))


def test_new_labels_should_be_refused(project):
    old = run(project)
    edit(project / "domain.yml", "  - ask_watering\n", "  - ask_watering\n  - ask_light\n")
    edit(project / "data" / "nlu.yml", "  - lookup: plant",
         "  - intent: ask_light\n    examples: |\n      - how much light does it need\n\n"
         "  - lookup: plant")
    with pytest.raises(DataError, match="cannot change the intents the model knows "
                                        r"\(new: ask_light\)"):
        run(project, model_to_finetune=old.model)


def test_a_changed_domain_should_be_refused(project):
    old = run(project)
    edit(project / "domain.yml", "  utter_goodbye:", "  utter_see_you:\n    - text: bye\n"
         "  utter_goodbye:")
    with pytest.raises(DataError, match="the domain changed"):
        run(project, model_to_finetune=old.model)


def test_another_model_format_should_be_refused(project, tmp_path):
    import json
    import tarfile

    old = run(project)
    workdir = tmp_path / "unpacked"
    with tarfile.open(old.model) as tar:
        tar.extractall(workdir, filter="data")
    meta = json.loads((workdir / "metadata.json").read_text())
    meta["model_format"] = 0
    (workdir / "metadata.json").write_text(json.dumps(meta))
    from parley.engine.archive import pack_archive

    older = pack_archive(workdir, tmp_path / "older.tar.gz")
    with pytest.raises(ModelArchiveError, match="is in model format 0"):
        run(project, model_to_finetune=str(older))


def test_a_default_written_out_should_still_finetune(project, trained):
    edit(project / "config.yml", "  - name: MemoizationPolicy\n",
         "  - name: MemoizationPolicy\n    max_history: 5\n")  # MemoizationPolicy's default
    result = run(project, model_to_finetune=str(trained), dry_run=True)
    assert result.model is None and result.dry_run_results is not None
