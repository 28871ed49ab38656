"""The training run hands TED the NLU pipeline's features of the stories' texts, and the
loaded model those of each new message (Rasa's end-to-end features provider)."""

from __future__ import annotations

import asyncio
import json
import tarfile
import threading
from pathlib import Path
from typing import Any

import pytest

from parley.data.importer import TrainingDataImporter
from parley.dialogue.policies.ted import TEDPolicy
from parley.engine.cache import TrainingCache
from parley.engine.runner import LocalRunner
from parley.model_training import train
from parley.nlu.neural.diet import DIETClassifier
from parley.recipe import build_recipe
from parley.runtime.processor import MessageProcessor, UserMessage
from parley.serving.agent import load
from parley.training.fingerprints import node_fingerprints
from parley.training.plan import make_plan
from parley.training.request import TrainingRequest
from parley.training.run import NLU_FEATURIZERS, TEXT_FEATURES, TrainingRun
from parley.training.text_features import PipelineTextFeaturizer, story_texts

DOMAIN = """\
version: "3.1"
intents: [greet, inform]
responses:
  utter_greet: [{text: "hi, how are you?"}]
  utter_sushi: [{text: "sushi it is"}]
  utter_umbrella: [{text: "take an umbrella"}]
"""
NLU = """\
version: "3.1"
nlu:
- intent: greet
  examples: |
    - hi
    - hello
    - hey there
- intent: inform
  examples: |
    - I would like something
    - tell me about the weather
    - the food here
"""
# Only the user's words tell the two stories apart.
STORIES = """\
version: "3.1"
stories:
- story: sushi
  steps:
  - intent: greet
  - action: utter_greet
  - user: I could eat sushi every single day
  - action: utter_sushi
- story: rain
  steps:
  - intent: greet
  - action: utter_greet
  - user: the rain will not stop falling
  - action: utter_umbrella
"""
CONFIG = """\
recipe: default.v1
language: en
pipeline:
- name: WhitespaceTokenizer
- name: CountVectorsFeaturizer
- name: LogisticRegressionClassifier
policies:
- name: TEDPolicy
  epochs: {epochs}
  random_seed: 5
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "domain.yml").write_text(DOMAIN)
    (tmp_path / "data" / "nlu.yml").write_text(NLU)
    (tmp_path / "data" / "stories.yml").write_text(STORIES)
    (tmp_path / "config.yml").write_text(CONFIG.format(epochs=150))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PARLEY_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def _user(text: str, intent: str) -> list[dict]:
    return [{"event": "action", "name": "action_listen"},
            {"event": "user", "text": text,
             "parse_data": {"intent": {"name": intent, "confidence": 1.0}, "entities": []}}]


def _greeted_then(text: str) -> list[dict]:
    return [*_user("hi", "greet"), {"event": "action", "name": "utter_greet"},
            *_user(text, "inform")]


def _train(project: Path):
    with pytest.warns(UserWarning, match="end-to-end model is trained"):
        return train("domain.yml", "config.yml", ["data"], "models")


def test_ted_should_learn_the_stories_by_their_words_and_read_new_messages(project):
    agent = load(_train(project).model)
    [ted] = agent.policies
    assert sorted(ted.text_features_.vectors) == sorted(
        ["I could eat sushi every single day", "the rain will not stop falling"])
    assert ted.reads_user_text_
    # Both texts are parsed as the same intent: only their words decide.
    assert agent.predict_next_actions(_greeted_then("I could eat sushi every single day"))[0][
        "action"] == "utter_sushi"
    rain = agent.predict_next_actions(_greeted_then("the rain will not stop"))
    assert rain[0]["action"] == "utter_umbrella"
    assert "end-to-end" in rain[0]["reason"]
    # A live conversation: the processor parses each message and TED reads its words.
    processor = MessageProcessor(agent, seed=0)

    def say(text: str) -> list[str]:
        return [m["text"] for m in asyncio.run(processor.handle_message(UserMessage(text)))]

    assert say("hello") == ["hi, how are you?"]
    assert say("the rain will not stop falling") == ["take an umbrella"]


def test_the_story_text_features_should_be_the_pipelines(project):
    _train(project)
    importer = TrainingDataImporter("domain.yml", "config.yml", ["data"])
    assert story_texts(importer.stories) == ["I could eat sushi every single day",
                                             "the rain will not stop falling"]
    agent = load(sorted((project / "models").glob("*.tar.gz"))[-1])
    [ted] = agent.policies
    featurizer = agent.text_featurizer
    assert isinstance(featurizer, PipelineTextFeaturizer)
    # only the tokenizer and the featurizer run (not the classifier)
    assert [type(c).__name__ for c in featurizer.components] == [
        "WhitespaceTokenizer", "CountVectorsFeaturizer"]
    fresh = featurizer(["the rain will not stop falling"])
    assert fresh.dim == ted.featurizer_.text_dim
    assert (fresh.get("the rain will not stop falling")
            == ted.text_features_.get("the rain will not stop falling")).all()


def test_ted_should_depend_on_the_featurizers_only_with_end_to_end_stories(project):
    def ted_fingerprint() -> str:
        importer = TrainingDataImporter("domain.yml", "config.yml", ["data"])
        recipe = build_recipe(importer.config)
        return node_fingerprints(recipe, importer)[recipe.policies[0].name]

    config = project / "config.yml"
    before = ted_fingerprint()
    config.write_text(config.read_text().replace(
        "- name: CountVectorsFeaturizer", "- name: CountVectorsFeaturizer\n  max_ngram: 2"))
    assert ted_fingerprint() != before  # the words are read otherwise: TED retrains
    (project / "data" / "stories.yml").write_text(
        STORIES.replace("  - user: I could eat sushi every single day\n",
                        "  - intent: inform\n").replace(
            "  - user: the rain will not stop falling\n", "  - intent: greet\n"))
    intents_only = ted_fingerprint()
    config.write_text(CONFIG.format(epochs=150))
    assert ted_fingerprint() == intents_only  # no texts to read: the pipeline is not its input


def test_finetuning_should_keep_ted_reading_texts(project):
    first = _train(project)
    with pytest.warns(UserWarning, match="end-to-end model is trained"):
        result = train("domain.yml", "config.yml", ["data"], "models",
                       model_to_finetune=first.model, finetuning_epoch_fraction=0.2)
    agent = load(result.model)
    [ted] = agent.policies
    assert ted.reads_user_text_
    assert agent.predict_next_actions(_greeted_then("I could eat sushi every single day"))[0][
        "action"] == "utter_sushi"


def test_the_featurizers_key_should_choose_whose_features_ted_reads(project):
    (project / "config.yml").write_text(CONFIG.format(epochs=1).replace(
        "- name: CountVectorsFeaturizer\n",
        "- name: CountVectorsFeaturizer\n- name: LexicalSyntacticFeaturizer\n").replace(
        "  random_seed: 5\n", "  random_seed: 5\n  featurizers: [LexicalSyntacticFeaturizer]\n"))
    agent = load(_train(project).model)
    [ted] = agent.policies
    every = agent.text_featurizer(["the rain will not stop falling"])
    chosen = agent.text_featurizer(["the rain will not stop falling"],
                                   ["LexicalSyntacticFeaturizer"])
    assert 0 < chosen.dim < every.dim
    assert ted.featurizer_.text_dim == chosen.dim


def test_a_pipeline_without_featurizers_should_say_ted_cannot_read_the_texts(project):
    (project / "config.yml").write_text(CONFIG.format(epochs=1).replace(
        "- name: WhitespaceTokenizer\n- name: CountVectorsFeaturizer\n"
        "- name: LogisticRegressionClassifier\n", "- name: KeywordIntentClassifier\n"))
    with pytest.warns(UserWarning, match="no tokenizer or featurizer to read them"):
        model = _train(project).model
    [ted] = load(model).policies
    assert not ted.reads_user_text_ and ted.featurizer_.text_dim == 0


DIET_CONFIG = CONFIG.format(epochs=3).replace(
    "- name: LogisticRegressionClassifier\n", "- name: DIETClassifier\n  epochs: 3\n")


def _training_run(project: Path) -> Any:
    importer = TrainingDataImporter("domain.yml", "config.yml", ["data"])
    recipe = build_recipe(importer.config)
    cache = TrainingCache(project / "cache")
    request = TrainingRequest("both", project / "models")
    plan = make_plan(importer, recipe, cache, request)
    return TrainingRun(request, importer, recipe, plan.statuses, plan.model_fingerprint, cache)


def test_ted_should_start_once_the_featurizers_are_trained_not_after_diet(project, monkeypatch):
    (project / "config.yml").write_text(DIET_CONFIG)
    # (TED on a thread: the spies below see this process's calls only)
    monkeypatch.setenv("PARLEY_POLICY_PROCESS", "0")
    run = _training_run(project)
    needs = {task.name: task.needs for task in run.tasks(project / "graph")}
    assert needs[NLU_FEATURIZERS] == () and needs["nlu"] == (NLU_FEATURIZERS,)
    assert needs[TEXT_FEATURES] == (NLU_FEATURIZERS,)
    # DIET does not start training until TED has finished: with TED waiting for the whole
    # chain, as it did, this run would never end.
    ted_done = threading.Event()
    diet_fit, ted_fit = DIETClassifier.fit, TEDPolicy.fit

    def diet_after_ted(self: Any, *args: Any, **kwargs: Any) -> Any:
        assert ted_done.wait(120), "TED waited for DIET"
        return diet_fit(self, *args, **kwargs)

    def ted_then_say(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return ted_fit(self, *args, **kwargs)
        finally:
            ted_done.set()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DIETClassifier, "fit", diet_after_ted)
        patch.setattr(TEDPolicy, "fit", ted_then_say)
        dirs = _training_run(project).node_dirs(project / "work", LocalRunner(2))
    assert ted_done.is_set()
    assert list(dirs) == [n.name for n in run.recipe.nlu] + [n.name for n in run.recipe.policies]


def test_the_split_chain_should_train_the_same_models(project, monkeypatch):
    """Featurizing the texts beside DIET changes no model: the same seed saves the same
    files as when the texts waited for the whole chain."""
    (project / "config.yml").write_text(DIET_CONFIG)

    def digests(folder: str) -> dict[str, str]:
        monkeypatch.setenv("PARLEY_CACHE_DIR", str(project / folder / "cache"))
        with pytest.warns(UserWarning, match="end-to-end model is trained"):
            model = train("domain.yml", "config.yml", ["data"], folder).model
        with tarfile.open(model) as archive:
            member = next(m for m in archive.getmembers() if m.name.endswith("metadata.json"))
            return json.load(archive.extractfile(member))["component_digests"]  # type: ignore[arg-type]

    split = digests("split")
    monkeypatch.setattr(TrainingRun, "_featurizers_end", lambda self: len(self.recipe.nlu))
    assert NLU_FEATURIZERS not in {t.name for t in _training_run(project).tasks(project / "g")}
    whole = digests("whole")
    assert any("DIETClassifier" in name for name in split) and split == whole
