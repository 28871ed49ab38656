"""StaticEmbeddingFeaturizer: pretrained dense features by table look-up, without torch.

Each word piece of a message has one fixed vector in a table distilled from a sentence
encoder (:mod:`parley.nlu.language_models.distill`, Model2Vec's idea): the piece run alone
through the model, its output mean-pooled, reduced by PCA and weighted down the more
frequent the piece is. A token's sequence feature is the mean of its pieces' vectors, the
sentence feature the mean over all the message's pieces. What a transformer would need
milliseconds for is a look-up and a mean: microseconds a message, numpy only.

The words a message shares with no training example still land near the ones that mean
the same ("cash" near "money"), which n-gram counts cannot give.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from parley.component import DENSE_FEATURES, TOKENS, NLUComponent
from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.errors import ConfigError, ModelArchiveError
from parley.nlu.features import FEATURES_KEY, Features
from parley.nlu.featurizers._tokens import tokens_of
from parley.nlu.language_models.static_table import (
    DEFAULT_TABLE, StaticTable, read_table, table_path,
)
from parley.params import Constraint, Str

if TYPE_CHECKING:
    from typing import Self


@functools.lru_cache(maxsize=4)
def _cached_table(path: str, mtime_ns: int, size: int) -> StaticTable:
    """One loaded table per file (and version of it): a process reads it once."""
    return read_table(Path(path))


def load_static_table(embeddings: str) -> StaticTable:
    path = table_path(embeddings).resolve()
    stat = path.stat()
    return _cached_table(str(path), stat.st_mtime_ns, stat.st_size)


class StaticEmbeddingFeaturizer(NLUComponent):
    """Dense sequence and sentence features from a static word-piece embedding table.

    ``embeddings`` names a table Parley ships (``minilm-l6-v2-static``, the default: 256
    dimensions distilled from all-MiniLM-L6-v2) or is the path of an ``.npz`` table that
    ``scripts/distill_static_embeddings.py`` wrote. The table is not copied into the model:
    the model keeps its hash, and loading refuses a different table under the same name.
    Needs a tokenizer before it; pieces the table lacks (``[UNK]``) add nothing.
    """

    name = "StaticEmbeddingFeaturizer"
    uses_packages = ("numpy",)
    needs = (TOKENS,)
    provides = (DENSE_FEATURES,)

    param_constraints: ClassVar[dict[str, Constraint]] = {
        "embeddings": Str(nonempty=True),
    }

    def __init__(self, *, embeddings: str = DEFAULT_TABLE) -> None:
        self.embeddings = embeddings

    def fit(self, training_data: TrainingData) -> Self:
        self.check_params()
        try:
            self._table = load_static_table(self.embeddings)
        except ConfigError as error:
            raise ConfigError(f"{self.name}: {error}") from None
        self.table_sha256_ = self._table.sha256
        return self

    @property
    def dim(self) -> int:
        self.check_is_fitted()
        return self._table.dim

    def process(self, messages: list[Message]) -> None:
        self.check_is_fitted()
        table = self._table
        ids_of = table.tokenizer.ids
        dim = table.dim
        for message, tokens in zip(messages, tokens_of(messages, self.name), strict=True):
            pieces = [ids_of(token.text) for token in tokens]
            every = [i for ids in pieces for i in ids]
            if every:
                rows = table.rows(every)
                sentence = rows.sum(axis=0, keepdims=True) * np.float32(1 / len(every))
            else:
                sentence = np.zeros((1, dim), dtype=np.float32)
                rows = sentence[:0]
            # The token rows are made when first read: a parse with the default pipeline
            # reads the sentence row alone.
            message.data.setdefault(FEATURES_KEY, []).append(
                Features(functools.partial(_token_rows, pieces, rows, dim), sentence, self.name))

    # --- persistence -------------------------------------------------------------------
    # The table ships with Parley (or is the user's file): the model keeps which one it was.
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"table_sha256": self.table_sha256_}, {}

    def _set_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        saved = str(state["table_sha256"])
        try:
            self.fit(TrainingData())
        except ConfigError as error:
            raise ModelArchiveError(f"the table this {self.name} was trained with cannot be "
                                    f"loaded: {error}") from None
        if saved != self.table_sha256_:
            raise ModelArchiveError(
                f"the embedding table '{self.embeddings}' is not the one this {self.name} was "
                "trained with (its hash differs); put the original table back or train again.")


def _token_rows(pieces: list[list[int]], rows: np.ndarray, dim: int) -> np.ndarray:
    """Each token's vector, the mean of its pieces' ``rows`` (zeros for a token of no
    piece): one reduceat per message, not a numpy call per token."""
    sequence = np.zeros((len(pieces), dim), dtype=np.float32)
    if not len(rows):  # no token has a piece
        return sequence
    if all(len(ids) == 1 for ids in pieces):  # a piece per token, the usual case
        return rows
    counts = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
    some = np.flatnonzero(counts)
    sequence[some] = np.add.reduceat(rows, (np.cumsum(counts) - counts)[some],
                                     axis=0) / counts[some, None]
    return sequence
