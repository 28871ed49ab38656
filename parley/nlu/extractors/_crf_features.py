"""The token attributes CRFEntityExtractor learns from, named as Rasa names its CRF features.

``features`` is a window of lists (before, token, after, …); a feature at window position
``s`` (-1, 0, +1, …) of token ``i`` describes token ``i + s``. Like Rasa's features handed to
CRFsuite, every feature becomes attribute strings with a value:

- ``low`` (the lower-cased text), ``prefix5/prefix2``, ``suffix5/3/2/1`` and ``bias``:
  one attribute per value, ``"-1:low:paris"``, with value 1;
- ``title``, ``upper``, ``digit``: ``"0:title"`` with value 1 when true (false adds
  nothing: CRFsuite multiplies the weight by 0);
- ``pattern``: ``"0:pattern:<j>"`` for every pattern of the RegexFeaturizer that matches the
  token. Parley's tokens do not carry pattern names, so the pattern is the column ``j`` of
  the RegexFeaturizer's sequence features (the same pattern as long as the pipeline is the
  same); without a RegexFeaturizer it adds nothing, as in Rasa;
- ``text_dense_features``: ``"0:text_dense_features:<d>"`` with the value of dimension
  ``d`` of the dense sequence features (language models) of the featurizers named in
  ``featurizers`` (all dense ones when empty);
- ``entity`` (added by the role and group taggers): the token's entity tag;
- ``BOS`` / ``EOS`` when a window position falls before the first / after the last token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from parley.data.message import Message
from parley.nlu.features import features_of
from parley.nlu.featurizers.lexical_syntactic import TOKEN_TEXT_FEATURES
from parley.nlu.tokens import Token

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

DEFAULT_FEATURES = [
    ["low", "title", "upper"],
    ["low", "bias", "prefix5", "prefix2", "suffix5", "suffix3", "suffix2", "upper", "title",
     "digit", "pattern"],
    ["low", "title", "upper"],
]
# The lexical-syntactic token features, except that Rasa's CRF "low" is the lower-cased
# text (the featurizer's is "is lower case"), plus a constant bias.
TEXT_FEATURES: dict[str, Callable[[str], Any]] = {
    **TOKEN_TEXT_FEATURES,
    "low": str.lower,
    "bias": lambda t: "bias",
}
PATTERN = "pattern"
DENSE = "text_dense_features"
ENTITY = "entity"
SPACY_FEATURES = ("pos", "pos2")
REGEX_ORIGIN = "RegexFeaturizer"


@dataclass
class TokenBatch:
    """The tokens of a batch of messages, flat (message-major), and what featurizers
    attached to them."""

    texts: list[str]
    lengths: np.ndarray
    patterns: csr_matrix | None  # n_tokens × n_patterns (RegexFeaturizer's sequence)
    dense: np.ndarray | None  # n_tokens × dim (dense sequence features)
    dense_layout: list[list[Any]]  # [origin, dim] of each dense block

    @property
    def n_tokens(self) -> int:
        return len(self.texts)


def token_batch(messages: Sequence[Message], all_tokens: Sequence[Sequence[Token]],
                dense_origins: Sequence[str] | None, want_dense: bool) -> TokenBatch:
    from scipy.sparse import csr_matrix, vstack

    texts = [t.text for tokens in all_tokens for t in tokens]
    lengths = np.array([len(tokens) for tokens in all_tokens], dtype=np.int64)
    pattern_blocks = []
    dense_blocks: list[np.ndarray] = []
    layout: list[list[Any]] = []
    for m_index, (message, tokens) in enumerate(zip(messages, all_tokens, strict=True)):
        records = features_of(message)
        regex = [f for f in records if f.origin == REGEX_ORIGIN and _is_sparse(f.sequence)]
        if regex:
            pattern_blocks.append(csr_matrix(regex[0].sequence))
        if want_dense:
            dense = [f for f in records if not _is_sparse(f.sequence)
                     and (not dense_origins or f.origin in dense_origins)]
            here = [[f.origin, int(f.sequence.shape[1])] for f in dense]
            if m_index == 0:
                layout = here
            elif here != layout:
                raise ValueError(f"message {message.text!r} carries dense features {here}, "
                                 f"others carry {layout}; all must pass the same featurizers")
            for f in dense:
                if f.sequence.shape[0] != len(tokens):
                    raise ValueError(
                        f"{f.origin} gave {f.sequence.shape[0]} dense token rows for the "
                        f"{len(tokens)} tokens of {message.text!r}."
                    )
            if dense:
                dense_blocks.append(np.hstack([np.asarray(f.sequence, dtype=np.float64)
                                               for f in dense]))
    patterns = None
    if pattern_blocks and len(pattern_blocks) == len(messages):
        patterns = vstack(pattern_blocks, format="csr")
    dense_all = np.vstack(dense_blocks) if dense_blocks and layout else None
    return TokenBatch(texts, lengths, patterns, dense_all, layout)


def _is_sparse(matrix: Any) -> bool:
    return not isinstance(matrix, np.ndarray)


def attribute_entries(batch: TokenBatch, window: list[list[str]],
                      entity_tags: Sequence[str] | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(token rows, attribute names, values)`` of every active attribute of the batch."""
    n = batch.n_tokens
    offsets = np.concatenate([[0], np.cumsum(batch.lengths)]).astype(np.int64)
    message_of = np.repeat(np.arange(len(batch.lengths)), batch.lengths)
    local = np.arange(n) - offsets[message_of]
    length = batch.lengths[message_of]
    unique, inverse = np.unique(np.array(batch.texts, dtype=str), return_inverse=True)
    inverse = inverse.reshape(-1)
    rows: list[np.ndarray] = []
    names: list[np.ndarray] = []
    values: list[np.ndarray] = []

    def add(token_rows: np.ndarray, token_names: np.ndarray, token_values: np.ndarray) -> None:
        rows.append(token_rows)
        names.append(token_names)
        values.append(token_values)

    half = len(window) // 2
    if half:
        bos = np.flatnonzero(local < half)
        eos = np.flatnonzero(local >= length - half)
        add(bos, np.full(len(bos), "BOS"), np.ones(len(bos)))
        add(eos, np.full(len(eos), "EOS"), np.ones(len(eos)))
    extra = [ENTITY] if entity_tags is not None else []
    for w_index, configured in enumerate(window):
        shift = w_index - half
        inside = np.flatnonzero((local + shift >= 0) & (local + shift < length))
        neighbour = inside + shift
        for feature in [*dict.fromkeys(configured), *extra]:
            prefix = f"{shift}:{feature}"
            if feature in TEXT_FEATURES:
                func = TEXT_FEATURES[feature]
                per_unique = [func(str(u)) for u in unique]
                if per_unique and isinstance(per_unique[0], bool):
                    per_text = np.array(per_unique, dtype=bool)[inverse]
                    hit = inside[per_text[neighbour]]
                    add(hit, np.full(len(hit), prefix), np.ones(len(hit)))
                else:
                    labels = np.array([f"{prefix}:{v}" for v in per_unique] or [""], dtype=str)
                    add(inside, labels[inverse[neighbour]], np.ones(len(inside)))
            elif feature == ENTITY and entity_tags is not None:
                tags = np.array(entity_tags, dtype=str)
                add(inside, np.char.add(f"{prefix}:", tags[neighbour]), np.ones(len(inside)))
            elif feature == PATTERN and batch.patterns is not None:
                block = batch.patterns[neighbour].tocoo()
                add(inside[block.row], np.char.add(f"{prefix}:", block.col.astype(str)),
                    block.data.astype(np.float64))
            elif feature == DENSE and batch.dense is not None:
                dim = batch.dense.shape[1]
                columns = np.array([f"{prefix}:{d}" for d in range(dim)], dtype=str)
                add(np.repeat(inside, dim), np.tile(columns, len(inside)),
                    batch.dense[neighbour].ravel())
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=str), np.zeros(0)
    row = np.concatenate(rows).astype(np.int64)
    value = np.concatenate(values)
    keep = value != 0
    return row[keep], np.concatenate(names)[keep], value[keep]


def attribute_matrix(rows: np.ndarray, ids: np.ndarray, values: np.ndarray, n_tokens: int,
                     n_attributes: int) -> csr_matrix:
    """The ``n_tokens × n_attributes`` matrix of the entries whose attribute is known."""
    from scipy.sparse import csr_matrix

    keep = ids >= 0
    return csr_matrix((values[keep], (rows[keep], ids[keep])), shape=(n_tokens, n_attributes))


def lookup(names: np.ndarray, index: dict[str, int]) -> np.ndarray:
    """Each name's id in ``index``, -1 for names it does not hold."""
    if not len(names):
        return np.zeros(0, dtype=np.int64)
    unique, inverse = np.unique(names, return_inverse=True)
    ids = np.array([index.get(str(u), -1) for u in unique], dtype=np.int64)
    return ids[inverse.reshape(-1)]


def regex_rows(message: Message) -> Any:
    """The message's RegexFeaturizer sequence rows (CSR), or None."""
    for record in features_of(message):
        if record.origin == REGEX_ORIGIN and _is_sparse(record.sequence):
            return record.sequence if record.sequence.format == "csr" else record.sequence.tocsr()
    return None
