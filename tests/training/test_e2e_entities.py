"""End to end through the real pipeline: stories annotate entities in ``user:`` texts,
TEDPolicy learns to tag them from the pipeline's token features, and a live conversation
gets the entities TED finds in a message it answers from the words (Rasa's TED)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from parley.data.events import ActionExecuted, EntitiesAdded, UserUttered
from parley.data.importer import TrainingDataImporter
from parley.data.tracker import DialogueStateTracker
from parley.model_training import train
from parley.runtime.processor import MessageProcessor, UserMessage
from parley.serving.agent import load
from parley.training.text_features import PipelineTextFeaturizer, tagged_user_texts

DOMAIN = """\
version: "3.1"
intents: [greet, inform]
entities: [cuisine]
responses:
  utter_greet: [{text: "hi, hungry?"}]
  utter_search: [{text: "searching"}]
  utter_sorry: [{text: "maybe later then"}]
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
    - I could go for something
    - something would be great
    - not at all
    - the food here
"""
STORIES = """\
version: "3.1"
stories:
- story: sushi
  steps:
  - intent: greet
  - action: utter_greet
  - user: I could go for [sushi](cuisine) tonight
  - action: utter_search
- story: pizza
  steps:
  - intent: greet
  - action: utter_greet
  - user: some [pizza](cuisine) would be great
  - action: utter_search
- story: tacos
  steps:
  - intent: greet
  - action: utter_greet
  - user: I could go for [tacos](cuisine)
  - action: utter_search
- story: not hungry
  steps:
  - intent: greet
  - action: utter_greet
  - user: not hungry at all
  - action: utter_sorry
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
  epochs: 150
  random_seed: 5
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("e2e_entities")
    (root / "data").mkdir()
    (root / "domain.yml").write_text(DOMAIN)
    (root / "data" / "nlu.yml").write_text(NLU)
    (root / "data" / "stories.yml").write_text(STORIES)
    (root / "config.yml").write_text(CONFIG)
    return root


@pytest.fixture(scope="module")
def model(project: Path) -> Path:
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project)
        patch.setenv("PARLEY_CACHE_DIR", str(project / "cache"))
        with pytest.warns(UserWarning, match="end-to-end model is trained"):
            return project / train("domain.yml", "config.yml", ["data"], "models").model


def test_the_run_should_hand_ted_the_tokens_of_the_annotated_user_texts(project):
    importer = TrainingDataImporter(project / "domain.yml", project / "config.yml",
                                    [project / "data"])
    assert tagged_user_texts(importer.stories) == [
        "I could go for sushi tonight", "some pizza would be great", "I could go for tacos",
        "not hungry at all"]


def test_the_pipeline_should_give_tokens_and_their_features(model):
    agent = load(model)
    featurizer = agent.text_featurizer
    assert isinstance(featurizer, PipelineTextFeaturizer)
    found = featurizer(["some sushi please"], tokens=True)
    tokens = found.tokens["some sushi please"]
    assert tokens.spans == ((0, 4), (5, 10), (11, 17))
    assert tokens.features.shape == (3, found.dim)  # CountVectors: a word's row per token
    assert featurizer(["some sushi please"]).tokens == {}  # only when asked


def test_a_conversation_should_get_the_entities_ted_finds(model):
    agent = load(model)
    [ted] = agent.policies
    assert ted.model_.entities is not None
    processor = MessageProcessor(agent, seed=0)

    def say(text: str) -> list[str]:
        return [m["text"] for m in asyncio.run(processor.handle_message(UserMessage(text)))]

    assert say("hello") == ["hi, hungry?"]
    assert say("I could go for pizza tonight") == ["searching"]
    tracker = asyncio.run(processor.get_tracker("default"))
    [added] = [e for e in tracker.events if isinstance(e, EntitiesAdded)]
    assert [(e["entity"], e["value"], e["extractor"]) for e in added.entities] == [
        ("cuisine", "pizza", "TEDPolicy")]
    assert [e["value"] for e in tracker.latest_message.entities] == ["pizza"]


def test_the_numpy_head_should_tag_as_the_torch_head_on_the_pipeline_features(model):
    from tests.dialogue.test_ted_entities import head_against_torch

    agent = load(model)
    [ted] = agent.policies
    largest = 0.0
    for text in ["I could go for pizza tonight", "some sushi would be great",
                 "I could go for tacos", "not hungry at all", "pizza"]:
        tracker = DialogueStateTracker.from_domain("t", agent.domain)
        for event in (ActionExecuted(action_name="action_listen"),
                      UserUttered(text="hi", intent={"name": "greet", "confidence": 1.0}),
                      ActionExecuted(action_name="utter_greet"),
                      ActionExecuted(action_name="action_listen"), UserUttered(text=text)):
            tracker.update(event)
        largest = max(largest, head_against_torch(ted, tracker, agent.domain,
                                                  agent.text_featurizer))
    assert largest < 1e-5


def test_tagging_entities_should_not_import_torch(model):
    script = textwrap.dedent(f"""\
        import asyncio, sys
        from parley.data.events import EntitiesAdded
        from parley.runtime.processor import MessageProcessor, UserMessage
        from parley.serving.agent import load
        processor = MessageProcessor(load({str(model)!r}), seed=0)
        for text in ["hello", "I could go for pizza tonight"]:
            asyncio.run(processor.handle_message(UserMessage(text)))
        tracker = asyncio.run(processor.get_tracker("default"))
        [added] = [e for e in tracker.events if isinstance(e, EntitiesAdded)]
        assert [e["value"] for e in added.entities] == ["pizza"], added.entities
        print("torch" in sys.modules)
        """)
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"}, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
