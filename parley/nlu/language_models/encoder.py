"""Text → BERT hidden states, in length-sorted batches: the model files put to work."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from parley.errors import ModelArchiveError
from parley.nlu.language_models.bert import BertConfig, BertModel
from parley.nlu.language_models.safetensors import read_safetensors
from parley.nlu.language_models.wordpiece import WordPieceTokenizer, read_vocab

# BERT's positions stop at 512; no model of this kind takes longer inputs.
MAX_LENGTH = 512
# Sequences per forward pass, and a cap on batch × padded length (memory of long inputs).
BATCH_SIZE = 64
MAX_BATCH_TOKENS = 8_192


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ModelArchiveError(f"cannot read {path}: {error}") from None


def _tokenizer_options(directory: Path) -> dict[str, Any]:
    """Lower-casing and accent options of ``tokenizer_config.json``, when it has them."""
    path = directory / "tokenizer_config.json"
    config = _read_json(path) if path.is_file() else {}
    if not isinstance(config, dict):
        raise ModelArchiveError(f"{path} is not a JSON object.")
    options: dict[str, Any] = {}
    for key, option in (("do_lower_case", "lowercase"), ("strip_accents", "strip_accents"),
                        ("tokenize_chinese_chars", "tokenize_chinese_chars")):
        value = config.get(key)
        if value is not None:
            if not isinstance(value, bool):
                raise ModelArchiveError(f"{path}: '{key}' must be true or false, not {value!r}.")
            options[option] = value
    return options


class TextEncoder:
    """A WordPiece tokenizer and a BERT model that go together.

    ``hidden_states`` runs the model on many id sequences at once: sorted by length so each
    batch pads little, in ``torch.inference_mode``. Results do not depend on the order of
    the input, only (to float rounding) on which sequences share a batch.
    """

    def __init__(self, tokenizer: WordPieceTokenizer, model: BertModel, *,
                 batch_size: int = BATCH_SIZE) -> None:
        self.tokenizer = tokenizer
        self.model = model
        self.batch_size = batch_size
        self.max_length = min(MAX_LENGTH, model.config.max_position_embeddings)

    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    def _batches(self, lengths: Sequence[int]) -> list[list[int]]:
        order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
        batches: list[list[int]] = []
        current: list[int] = []
        for index in order:
            # sorted ascending, so this sequence is the longest of the batch so far
            if current and (len(current) >= self.batch_size
                            or (len(current) + 1) * lengths[index] > MAX_BATCH_TOKENS):
                batches.append(current)
                current = []
            current.append(index)
        if current:
            batches.append(current)
        return batches

    def hidden_states(self, sequences: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """The last layer's float32 ``length × hidden`` states of each id sequence (ids
        already with ``[CLS]``/``[SEP]``, at most ``max_length`` long)."""
        lengths = [len(s) for s in sequences]
        if any(not 0 < n <= self.max_length for n in lengths):
            raise ValueError(f"sequences must have 1 to {self.max_length} ids")
        results: list[np.ndarray] = [np.empty(0)] * len(sequences)
        pad = self.tokenizer.pad_id
        with torch.inference_mode():
            for batch in self._batches(lengths):
                width = lengths[batch[-1]]
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, index in enumerate(batch):
                    ids[row, :lengths[index]] = torch.tensor(sequences[index], dtype=torch.long)
                    mask[row, :lengths[index]] = 1
                states = self.model(ids, mask).numpy()
                for row, index in enumerate(batch):
                    results[index] = states[row, :lengths[index]].copy()
        return results

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Mean-pooled ``n × hidden`` embeddings of whole texts (word pieces past
        ``max_length`` dropped), as sentence-transformers computes them before
        normalising."""
        keep = self.max_length - 2
        t = self.tokenizer
        sequences = [[t.cls_id, *t.ids(text)[:keep], t.sep_id] for text in texts]
        states = self.hidden_states(sequences)
        if not states:
            return np.zeros((0, self.hidden_size), dtype=np.float32)
        return np.stack([s.mean(axis=0) for s in states]).astype(np.float32)


def load_encoder(directory: Path) -> TextEncoder:
    """Read the tokenizer and weights in ``directory`` (see :mod:`.model_files`)."""
    config = BertConfig.from_dict(_read_json(directory / "config.json"),
                                  str(directory / "config.json"))
    vocab = read_vocab(directory / "vocab.txt")
    if max(vocab.values()) >= config.vocab_size:
        raise ModelArchiveError(f"{directory / 'vocab.txt'} has {max(vocab.values()) + 1} "
                                f"entries but the model only {config.vocab_size}.")
    tokenizer = WordPieceTokenizer(vocab, **_tokenizer_options(directory))
    weights = directory / "model.safetensors"
    model = BertModel.from_weights(config, read_safetensors(weights), str(weights))
    return TextEncoder(tokenizer, model)
