"""DIET through the whole training API: reproducible archives, finetuning, real data."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="DIETClassifier needs PyTorch (pip install 'parley[torch]')")

from parley.data.formats.nlu_yaml import read_nlu_file  # noqa: E402
from parley.model_training import train_nlu  # noqa: E402
from parley.serving.agent import load  # noqa: E402
from tests.conftest import FIXTURES, SHARED_DATA, needs_shared_data  # noqa: E402

DIET_CONFIG = """
recipe: default.v1
language: en
pipeline:
  - name: WhitespaceTokenizer
  - name: LexicalSyntacticFeaturizer
  - name: CountVectorsFeaturizer
  - name: CountVectorsFeaturizer
    analyzer: char_wb
    min_ngram: 1
    max_ngram: 4
  - name: DIETClassifier
    epochs: {epochs}
  - name: EntitySynonymMapper
  - name: ResponseSelector
    epochs: 5
  - name: FallbackClassifier
    threshold: 0.3
policies:
  - name: MemoizationPolicy
"""


def project(tmp_path: Path, source: Path, epochs: int) -> Path:
    target = tmp_path / source.name
    shutil.copytree(source, target)
    (target / "config.yml").write_text(DIET_CONFIG.format(epochs=epochs))
    return target


def train_in(path: Path, monkeypatch: pytest.MonkeyPatch, out: str, **kwargs) -> Path:
    monkeypatch.chdir(path)
    monkeypatch.setenv("PARLEY_CACHE_MAX_SIZE", "0")  # really train, twice
    model = train_nlu("config.yml", "data", out, **kwargs)
    assert model is not None
    return Path(path / model) if not Path(model).is_absolute() else Path(model)


def parses(model: Path, texts: list[str]) -> list[dict]:
    agent = load(model)
    return [agent.parse(t) for t in texts]


def test_training_twice_with_the_same_seed_gives_identical_predictions(tmp_path, monkeypatch):
    path = project(tmp_path, FIXTURES / "nlu_bench" / "tiny", epochs=8)
    texts = [m.text for m in read_nlu_file(path / "test" / "test_nlu.yml").examples]
    first = parses(train_in(path, monkeypatch, "first"), texts)
    second = parses(train_in(path, monkeypatch, "second"), texts)
    assert first == second
    assert all(p["intent"]["name"] for p in first)


@pytest.mark.slow
@needs_shared_data
def test_diet_on_snips_small_learns_and_finetuning_one_example_per_intent_keeps_accuracy(
        tmp_path, monkeypatch):
    path = project(tmp_path, SHARED_DATA / "snips-small", epochs=40)
    test = read_nlu_file(path / "test" / "test_nlu.yml").examples[::4]

    def accuracy(model: Path) -> float:
        agent = load(model)
        return sum(agent.parse(m.text)["intent"]["name"] == m.intent for m in test) / len(test)

    base = train_in(path, monkeypatch, "models")
    before = accuracy(base)
    assert before >= 0.7  # 0.78–0.83 measured after 40 of the config's 100 epochs
    # one new example per intent, taken from the test set's unused part
    extra, seen = [], set()
    for message in read_nlu_file(path / "test" / "test_nlu.yml").examples[1::4]:
        if message.intent not in seen:
            seen.add(message.intent)
            extra.append(f"- intent: {message.intent}\n  examples: |\n    - {message.text}\n")
    (path / "data" / "more.yml").write_text('version: "3.1"\nnlu:\n' + "".join(extra))
    tuned = train_in(path, monkeypatch, "models", model_to_finetune=str(base),
                     finetuning_epoch_fraction=0.2)
    assert accuracy(tuned) >= before - 0.02
