"""One message at a time and a batch at once give the same parse results.

Parsing one message takes lean paths a batch does not (one thread, attention blocks as wide
as the message, kept label embeddings and term ids); these tests hold them to the batch's
answers on real test messages, for Rasa's default (DIET) pipeline and Parley's default.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from parley.data.formats.nlu_yaml import read_nlu_file
from parley.model_training import train_nlu
from parley.serving.agent import load
from tests.conftest import REPO, SHARED_DATA, needs_shared_data

DIET_CONFIG = """
recipe: default.v1
language: en
pipeline:
  - name: WhitespaceTokenizer
  - name: RegexFeaturizer
  - name: LexicalSyntacticFeaturizer
  - name: CountVectorsFeaturizer
  - name: CountVectorsFeaturizer
    analyzer: char_wb
    min_ngram: 1
    max_ngram: 4
  - name: DIETClassifier
    epochs: 3
  - name: EntitySynonymMapper
  - name: FallbackClassifier
    threshold: 0.3
"""


def _trained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: str) -> Path:
    target = tmp_path / "snips-small"
    shutil.copytree(SHARED_DATA / "snips-small", target)
    (target / "config.yml").write_text(config)
    monkeypatch.chdir(target)
    monkeypatch.setenv("PARLEY_CACHE_MAX_SIZE", "0")
    return Path(target / train_nlu("config.yml", "data", "models", domain="domain.yml"))


def _same(one: dict, other: dict) -> None:
    assert one["intent"]["name"] == other["intent"]["name"], one["text"]
    assert one["intent"]["confidence"] == pytest.approx(other["intent"]["confidence"], abs=1e-5)
    assert ([r["confidence"] for r in one["intent_ranking"]]
            == pytest.approx([r["confidence"] for r in other["intent_ranking"]], abs=1e-5))

    def spans(parse: dict) -> list[tuple]:
        return [(e["entity"], e["start"], e["end"], e["value"]) for e in parse["entities"]]

    assert spans(one) == spans(other), one["text"]
    for e, f in zip(one["entities"], other["entities"], strict=True):
        assert e.get("confidence_entity") == pytest.approx(f.get("confidence_entity"), abs=1e-5)


@pytest.mark.parametrize("config", [DIET_CONFIG, None], ids=["diet", "parley-default"])
@needs_shared_data
def test_parsing_one_at_a_time_should_match_parsing_a_batch(tmp_path, monkeypatch, config):
    if config is None:
        config = (REPO / "benchmarks" / "configs" / "lr.yml").read_text() + "language: en\n"
    else:
        pytest.importorskip("torch", reason="DIETClassifier needs PyTorch")
    model = _trained(tmp_path, monkeypatch, config)
    texts = [m.text for m in read_nlu_file(
        SHARED_DATA / "snips-small" / "test" / "test_nlu.yml").examples[::5]]
    agent = load(model)
    batch = agent.parse_batch(texts)
    single = [agent.parse(text) for text in texts]
    assert [p["text"] for p in batch] == texts
    for one, other in zip(single, batch, strict=True):
        _same(one, other)
    assert any(p["entities"] for p in single)  # the entity paths ran too


def test_parse_batch_should_read_intent_messages_and_parse_the_rest(trained):
    agent = load(trained)
    texts = ["/greet", "how often should I water my cactus?", "/goodbye"]
    parsed = agent.parse_batch(texts)
    assert [p["intent"]["name"] for p in parsed] == ["greet", "ask_watering", "goodbye"]
    assert parsed[1] == agent.parse(texts[1])
