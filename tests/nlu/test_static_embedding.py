"""StaticEmbeddingFeaturizer, its table, and the distillation that makes the table."""

from __future__ import annotations

import importlib.util
import json
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.errors import ConfigError, ModelArchiveError
from parley.nlu.features import features_of
from parley.nlu.featurizers.static_embedding import StaticEmbeddingFeaturizer
from parley.nlu.language_models.static_table import (
    DEFAULT_TABLE, TABLES_DIR, read_table, table_path, write_table,
)
from parley.nlu.tokenizers.whitespace import WhitespaceTokenizer

REPO = Path(__file__).resolve().parents[2]
PIECES = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "book", "a", "flight", "##s", "cash"]
# Row i: the piece i's vector; specials zero, as the distillation leaves them.
VECTORS = np.zeros((len(PIECES), 3), dtype=np.float32)
VECTORS[5:] = [[1, 0, 0], [0, 1, 0], [0, 0, 2], [1, 1, 1], [-3, 0, 1]]


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "table.npz"
    write_table(path, PIECES, VECTORS, {"lowercase": True, "dims": 3})
    return path


def processed(featurizer: StaticEmbeddingFeaturizer, texts: list[str]) -> list[Message]:
    messages = [Message(text) for text in texts]
    tokenizer = WhitespaceTokenizer().fit(TrainingData())
    tokenizer.process(messages)
    featurizer.process(messages)
    return messages


def test_table_should_round_trip_within_int8_precision(table: Path) -> None:
    loaded = read_table(table)
    assert loaded.dim == 3 and loaded.about["dims"] == 3
    assert np.allclose(loaded.vectors, VECTORS, atol=np.abs(VECTORS).max() / 254 + 1e-7)
    assert loaded.tokenizer.ids("Books") == [5, 8]


def test_table_should_be_written_the_same_byte_for_byte(tmp_path: Path) -> None:
    write_table(tmp_path / "a.npz", PIECES, VECTORS, {"x": 1})
    write_table(tmp_path / "b.npz", PIECES, VECTORS, {"x": 1})
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_sentence_should_be_the_mean_of_the_pieces_and_tokens_of_their_own(table: Path) -> None:
    featurizer = StaticEmbeddingFeaturizer(embeddings=str(table)).fit(TrainingData())
    assert featurizer.dim == 3
    book, empty, unknown = processed(featurizer, ["Book flights", "", "zzz"])
    (record,) = features_of(book)
    assert record.origin == "StaticEmbeddingFeaturizer" and not record.is_sparse
    vectors = read_table(table).vectors
    # "Book" → book; "flights" → flight ##s
    assert np.allclose(record.sequence, [vectors[5], (vectors[7] + vectors[8]) / 2])
    assert np.allclose(record.sentence, [(vectors[5] + vectors[7] + vectors[8]) / 3])
    assert record.sentence.dtype == np.float32
    (nothing,) = features_of(empty)
    assert nothing.sequence.shape == (0, 3) and not nothing.sentence.any()
    (unk,) = features_of(unknown)  # [UNK]'s row is zero
    assert not unk.sentence.any() and unk.sequence.shape == (1, 3)


def test_save_and_load_should_find_the_same_table(table: Path, tmp_path: Path) -> None:
    featurizer = StaticEmbeddingFeaturizer(embeddings=str(table)).fit(TrainingData())
    featurizer.save(tmp_path / "saved")
    loaded = StaticEmbeddingFeaturizer.load(tmp_path / "saved")
    a, b = processed(featurizer, ["book a flight"]), processed(loaded, ["book a flight"])
    assert np.array_equal(features_of(a[0])[0].sentence, features_of(b[0])[0].sentence)
    other = VECTORS.copy()
    other[5, 0] = 5.0
    write_table(table, PIECES, other, {"lowercase": True, "dims": 3})
    with pytest.raises(ModelArchiveError, match="not the one this StaticEmbeddingFeaturizer"):
        StaticEmbeddingFeaturizer.load(tmp_path / "saved")


def test_a_missing_or_damaged_table_should_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither a table Parley ships"):
        StaticEmbeddingFeaturizer(embeddings=str(tmp_path / "nope.npz")).fit(TrainingData())
    bad = tmp_path / "bad.npz"
    np.savez(bad, pieces=np.array(PIECES), vectors=np.zeros((2, 3), dtype=np.int8),
             scales=np.ones(2, dtype=np.float32), about=np.array("{}"))
    with pytest.raises(ModelArchiveError, match="do not fit"):
        read_table(bad)
    # An object array would need pickle: it is refused, not unpickled.
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, pieces=np.array(PIECES, dtype=object), vectors=np.zeros((10, 3)),
             scales=np.ones(10), about=np.array("{}"))
    with pytest.raises(ModelArchiveError, match="cannot read"):
        read_table(pickled)


# --- the table Parley ships --------------------------------------------------------------
# The table ships in the package (the default config's featurizer must work on a fresh,
# torch-free install), so these do not skip without it: they fail.
SHIPPED = TABLES_DIR / f"{DEFAULT_TABLE}.npz"


def test_the_shipped_table_should_be_small_and_put_like_words_together() -> None:
    assert table_path(DEFAULT_TABLE) == SHIPPED
    assert SHIPPED.stat().st_size < 8_000_000
    table = read_table(SHIPPED)
    assert table.about["source_model"]["weights_bytes"] > 0

    def vector(text: str) -> np.ndarray:
        ids = table.tokenizer.ids(text)
        return table.vectors[ids].mean(axis=0)

    def cosine(a: str, b: str) -> float:
        u, v = vector(a), vector(b)
        return float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))

    assert cosine("withdraw cash", "take out money") > cosine("withdraw cash", "play a song")
    assert cosine("turn off the lights", "switch the lamp off") > cosine("turn off the lights",
                                                                         "what is the weather")


TRAVEL = """\
version: "3.1"
nlu:
- intent: greet
  examples: |
    - hello
    - hi there
    - good morning
- intent: book
  examples: |
    - book a flight to rome
    - I need a plane ticket
    - fly me to oslo
- intent: balance
  examples: |
    - how much money do I have
    - what is my account balance
    - show my balance
"""
CONFIG = """\
recipe: default.v1
language: en
pipeline:
  - name: WhitespaceTokenizer
  - name: StaticEmbeddingFeaturizer
  - name: CountVectorsFeaturizer
  - name: LogisticRegressionClassifier
    dense_norm: 2
    tfidf: true
    calibration_folds: 0
"""


def test_a_model_with_it_should_train_save_load_finetune_and_parse_without_torch(
        tmp_path: Path) -> None:
    from parley.model_training import train_nlu
    from parley.serving.agent import load

    nlu = tmp_path / "nlu.yml"
    nlu.write_text(TRAVEL, encoding="utf-8")
    config = tmp_path / "config.yml"
    config.write_text(CONFIG, encoding="utf-8")
    model = train_nlu(str(config), str(nlu), str(tmp_path / "models"))
    agent = load(model)
    assert agent.parse("a plane to paris")["intent"]["name"] == "book"
    nlu.write_text(TRAVEL + "    - what do I have in my account\n", encoding="utf-8")
    finetuned = train_nlu(str(config), str(nlu), str(tmp_path / "finetuned"),
                          model_to_finetune=str(model), finetuning_epoch_fraction=0.5)
    assert load(finetuned).parse("what do I have in my account")["intent"]["name"] == "balance"
    script = textwrap.dedent(f"""\
        import sys
        from parley.serving.agent import load
        agent = load({str(finetuned)!r})
        print(agent.parse("show me my balance")["intent"]["name"])
        print("torch" in sys.modules)
        """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["balance", "False"]


# --- distillation ------------------------------------------------------------------------
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="distillation runs the model in PyTorch")


def _tiny_bert(directory: Path, vocab: list[str]) -> Path:
    """A two-layer BERT with seeded random weights, in Hugging Face's file layout."""
    from parley.nlu.language_models.bert import BertConfig, BertModel

    settings = {"model_type": "bert", "vocab_size": len(vocab), "hidden_size": 8,
                "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 16,
                "max_position_embeddings": 16}
    model = BertModel(BertConfig.from_dict(settings, "tiny"))  # only its names and shapes
    rng = np.random.default_rng(0)
    header: dict[str, dict[str, object]] = {}
    chunks, offset = [], 0
    for name, tensor in model.state_dict().items():
        data = rng.normal(0, 0.5, tuple(tensor.shape)).astype("<f4").tobytes()
        header[name.replace("attention.heads", "attention.self")] = {
            "dtype": "F32", "shape": list(tensor.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    directory.mkdir(parents=True)
    raw = json.dumps(header).encode()
    (directory / "model.safetensors").write_bytes(struct.pack("<Q", len(raw)) + raw
                                                  + b"".join(chunks))
    (directory / "config.json").write_text(json.dumps(settings), encoding="utf-8")
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return directory


@needs_torch
def test_distillation_should_be_deterministic_and_zero_the_special_pieces(tmp_path: Path) -> None:
    from parley.nlu.language_models.distill import distill

    vocab = [*PIECES, "[unused0]", "the", "money", "song", "##ing"]
    model = _tiny_bert(tmp_path / "tiny", vocab)
    first = tmp_path / "first.npz"
    second = tmp_path / "second.npz"
    for path in (first, second):
        pieces, vectors, about = distill(model, dims=4)
        write_table(path, pieces, vectors, about)
    assert first.read_bytes() == second.read_bytes()
    table = read_table(first)
    assert table.vectors.shape == (len(vocab), 4) and pieces == vocab
    special = [vocab.index(p) for p in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]")]
    assert not table.vectors[special].any()
    assert np.abs(table.vectors[[vocab.index("book"), vocab.index("money")]]).sum(axis=1).min() > 0
    assert about["dims"] == 4 and about["source_model"]["weights_bytes"] > 0


def test_one_message_should_be_classified_as_in_a_batch(table: Path) -> None:
    """LogisticRegressionClassifier's one-message path (dense blocks scaled on the row's
    arrays) gives the batch path's confidences."""
    from parley.nlu.classifiers.logistic_regression import LogisticRegressionClassifier
    from parley.nlu.featurizers.count_vectors import CountVectorsFeaturizer

    texts = {"book a flight": "book", "books flights": "book", "cash": "money",
             "a cash book": "money", "flight": "book", "cash cash": "money"}
    tokenizer = WhitespaceTokenizer().fit(TrainingData())
    static = StaticEmbeddingFeaturizer(embeddings=str(table)).fit(TrainingData())
    examples = [Message(text, intent=intent) for text, intent in texts.items()]
    tokenizer.process(examples)
    counts = CountVectorsFeaturizer().fit(TrainingData(examples))
    for component in (static, counts):
        component.process(examples)
    classifier = LogisticRegressionClassifier(tfidf=True, dense_norm=2, calibration_folds=0)
    classifier.fit(TrainingData(examples))

    def messages(texts: list[str]) -> list[Message]:
        found = [Message(text) for text in texts]
        for component in (tokenizer, static, counts):
            component.process(found)
        return found

    queries = ["book a cash flight", "flights", "zzz"]
    batch = classifier.predict_proba(messages(queries))
    one = np.concatenate([classifier.predict_proba(messages([q])) for q in queries])
    assert np.allclose(one, batch, atol=1e-9)
