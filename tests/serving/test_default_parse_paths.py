"""Parley's default pipeline parsing one message at a time, held to the batch code on real
test messages.

A parse takes lean paths (kept per-token entries, CSR arrays instead of scipy matrices, the
CRF's one-sequence Viterbi and forward–backward); these must give what the batch code gives:
CountVectors' arrays and the CRF's tags and confidences bit for bit (against a batch of one:
a longer batch rounds the CRF's sums differently), the intent confidences to 1e-12, and a
second parse of the same texts (every kept entry warm) exactly the first.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from parley.data.formats.nlu_yaml import read_nlu_file
from parley.data.message import Message
from parley.model_training import train_nlu
from parley.nlu.features import features_of
from parley.serving.agent import load
from tests.conftest import REPO, SHARED_DATA, needs_shared_data


@pytest.fixture(scope="module")
def snips_default(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data (the benchmark sets) is not beside this clone")
    target = tmp_path_factory.mktemp("default") / "snips-small"
    shutil.copytree(SHARED_DATA / "snips-small", target)
    (target / "config.yml").write_text(
        (REPO / "parley" / "data" / "default_config.yml").read_text(encoding="utf-8"))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(target)
        patch.setenv("PARLEY_CACHE_MAX_SIZE", "0")
        return Path(target / train_nlu("config.yml", "data", "models", domain="domain.yml"))


def _texts() -> list[str]:
    return [m.text for m in read_nlu_file(
        SHARED_DATA / "snips-small" / "test" / "test_nlu.yml").examples[::3] if m.text]


@needs_shared_data
def test_parsing_again_should_give_exactly_the_first_results(snips_default: Path) -> None:
    agent = load(snips_default)
    texts = _texts()
    first = [agent.parse(text) for text in texts]
    assert [agent.parse(text) for text in texts] == first
    assert [load(snips_default).parse(text) for text in texts] == first
    assert any(p["entities"] for p in first)


@needs_shared_data
def test_each_component_alone_should_match_its_batch_code(snips_default: Path) -> None:
    agent = load(snips_default)
    names = [type(c).__name__ for c in agent.nlu_components]
    assert names.count("CountVectorsFeaturizer") == 2 and "CRFEntityExtractor" in names
    tagged = 0
    for text in _texts():
        alone, pair = [Message(text)], [Message(text), Message("play some jazz music")]
        for component in agent.nlu_components:
            name = type(component).__name__
            if name == "CRFEntityExtractor":
                tokens = alone[0].data["tokens"]
                one = component._predict_one(alone[0], tokens)  # noqa: SLF001 - both paths
                batch = component._predict_batch(alone, [tokens])[0]  # noqa: SLF001
                assert one == batch, text  # tags, and confidences as the same floats
                tagged += any(t != "O" for t in one[0]["entity"])
            component.process(alone)
            component.process(pair)
            if name == "CountVectorsFeaturizer":
                a, b = features_of(alone[0])[-1], features_of(pair[0])[-1]
                for x, y in ((a.sequence, b.sequence), (a.sentence, b.sentence)):
                    y.sort_indices()
                    assert x.shape == y.shape
                    for part in ("data", "indices", "indptr"):
                        assert np.array_equal(getattr(x, part), getattr(y, part)), (text, part)
            if name == "LogisticRegressionClassifier":
                one_ranking, pair_ranking = alone[0].data["intent_ranking"], pair[0].data["intent_ranking"]
                assert [r["name"] for r in one_ranking] == [r["name"] for r in pair_ranking]
                assert [r["confidence"] for r in one_ranking] == pytest.approx(
                    [r["confidence"] for r in pair_ranking], abs=1e-12)
    assert tagged > 20  # the entity paths ran on many messages
