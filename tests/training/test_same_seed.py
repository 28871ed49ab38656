"""The same seed gives the same model, whatever the training engine's threads do: DIET and
TED train (and build their networks) on two runner threads at once."""

from __future__ import annotations

import gc
import json
import tarfile
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="DIET and TED need PyTorch (pip install 'parley[torch]')")

from parley.model_training import train  # noqa: E402
from tests.training.tiny_configs import TINY_PIPELINE  # noqa: E402

DOMAIN = """\
version: "3.1"
intents: [greet, ask_weather, thank]
responses:
  utter_greet: [{text: "hi"}]
  utter_weather: [{text: "sunny"}]
  utter_welcome: [{text: "you are welcome"}]
"""
NLU = """\
version: "3.1"
nlu:
- intent: greet
  examples: |
    - hi
    - hello there
    - good morning
- intent: ask_weather
  examples: |
    - what is the weather like
    - will it rain today
    - is it sunny
- intent: thank
  examples: |
    - thanks
    - thank you so much
    - cheers
"""
STORIES = """\
version: "3.1"
stories:
- story: weather
  steps:
  - intent: greet
  - action: utter_greet
  - intent: ask_weather
  - action: utter_weather
  - intent: thank
  - action: utter_welcome
- story: straight to the weather
  steps:
  - intent: ask_weather
  - action: utter_weather
"""
CONFIG = TINY_PIPELINE + """\
policies:
- name: TEDPolicy
  epochs: 3
  max_history: 3
  evaluate_on_number_of_examples: 1
  evaluate_every_number_of_epochs: 1
"""


def _digests(root: Path, name: str) -> dict[str, str]:
    (root / "data").mkdir(parents=True)
    (root / "domain.yml").write_text(DOMAIN)
    (root / "config.yml").write_text(CONFIG)
    (root / "data" / "nlu.yml").write_text(NLU)
    (root / "data" / "stories.yml").write_text(STORIES)
    result = train(str(root / "domain.yml"), str(root / "config.yml"), [str(root / "data")],
                   str(root / "models"), fixed_model_name=name)
    with tarfile.open(result.model) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("metadata.json"))
        metadata = json.load(archive.extractfile(member))  # type: ignore[arg-type]
    return metadata["component_digests"]


def test_two_trainings_with_the_same_seed_should_save_the_same_models(tmp_path, monkeypatch):
    monkeypatch.setenv("PARLEY_CACHE_DIR", str(tmp_path / "cache"))
    first = _digests(tmp_path / "one", "one")
    monkeypatch.setenv("PARLEY_CACHE_DIR", str(tmp_path / "cache-two"))  # nothing restored
    second = _digests(tmp_path / "two", "two")
    trained = [name for name in first if "DIETClassifier" in name or "TEDPolicy" in name]
    assert len(trained) == 2
    assert first == second


def test_the_trackers_should_be_freed_before_ted_trains(tmp_path, monkeypatch):
    """The training trackers (~110 MB for financial-demo) are gone once the policies have
    learned from them: TED's long training does not hold them."""
    import weakref

    from parley.dialogue import generator
    from parley.dialogue.neural.training import TEDTrainer

    made: list[weakref.ref] = []
    seen: list[int] = []
    generate = generator.generate_trackers

    def watched(*args, **kwargs):
        trackers = generate(*args, **kwargs)
        made.extend(weakref.ref(t) for t in trackers)
        return trackers

    def train_watched(self, epochs=None):
        gc.collect()
        seen.append(sum(ref() is not None for ref in made))
        return train(self, epochs)

    train = TEDTrainer.train
    monkeypatch.setattr(generator, "generate_trackers", watched)
    monkeypatch.setattr(TEDTrainer, "train", train_watched)
    monkeypatch.setenv("PARLEY_CACHE_DIR", str(tmp_path / "cache"))
    # (TED on a thread of this process, whose memory this test watches; in a process of its
    # own, parley/training/policy_process.py, this process lets go of them once it started)
    monkeypatch.setenv("PARLEY_POLICY_PROCESS", "0")
    _digests(tmp_path / "bot", "bot")
    assert made and seen == [0]
