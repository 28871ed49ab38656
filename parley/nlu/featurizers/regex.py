"""RegexFeaturizer: one binary feature per regex / lookup-table pattern of the project."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from parley.component import SPARSE_FEATURES, TOKENS, NLUComponent
from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.nlu.features import attach_features
from parley.nlu.featurizers._tokens import token_offsets, tokens_of
from parley.nlu.patterns import Pattern, compile_patterns, extract_patterns
from parley.params import Bool, Constraint, Int, NoneOr

# Each extra pattern is a feature column that later layers size their weights by (DIET:
# columns × dense_dimension); projects have tens to thousands of patterns.
MAX_ADDITIONAL_PATTERNS = 100_000

if TYPE_CHECKING:
    from typing import Self


class RegexFeaturizer(NLUComponent):
    """Marks the tokens a pattern matches (sequence) and the patterns found (sentence).

    A token gets a 1 in a pattern's column when a match overlaps it; the sentence row has a
    1 for every pattern that matched some token. Patterns are the project's ``regex:``
    blocks (one per example) and ``lookup:`` tables (one per table). The feature width is
    the number of patterns plus ``number_additional_patterns`` (empty columns kept for
    patterns added by later finetuning; ``None`` keeps none). With no patterns at all the
    featurizer adds no features.
    """

    name = "RegexFeaturizer"
    needs = (TOKENS,)
    provides = (SPARSE_FEATURES,)

    param_constraints: ClassVar[dict[str, Constraint]] = {
        "case_sensitive": Bool(),
        "use_lookup_tables": Bool(),
        "use_regexes": Bool(),
        "use_word_boundaries": Bool(),
        "number_additional_patterns": NoneOr(Int(0, MAX_ADDITIONAL_PATTERNS)),
    }

    def __init__(
        self,
        *,
        case_sensitive: bool = True,
        use_lookup_tables: bool = True,
        use_regexes: bool = True,
        use_word_boundaries: bool = True,
        number_additional_patterns: int | None = None,
    ) -> None:
        self.case_sensitive = case_sensitive
        self.use_lookup_tables = use_lookup_tables
        self.use_regexes = use_regexes
        self.use_word_boundaries = use_word_boundaries
        self.number_additional_patterns = number_additional_patterns

    def fit(self, training_data: TrainingData) -> Self:
        self.check_params()
        self.patterns_ = extract_patterns(
            training_data,
            use_regexes=self.use_regexes,
            use_lookup_tables=self.use_lookup_tables,
            use_word_boundaries=self.use_word_boundaries,
        )
        self._compiled = compile_patterns(self.patterns_, self.case_sensitive, self.name)
        return self

    @property
    def dim(self) -> int:
        self.check_is_fitted()
        return len(self.patterns_) + (self.number_additional_patterns or 0)

    def process(self, messages: list[Message]) -> None:
        self.check_is_fitted()
        if not self.patterns_ or not messages:
            return
        from scipy.sparse import csr_matrix

        all_tokens = tokens_of(messages, self.name)
        offsets = token_offsets(all_tokens)
        seq_rows: list[np.ndarray] = []
        seq_cols: list[np.ndarray] = []
        sent_rows: list[int] = []
        sent_cols: list[int] = []
        for m_index, (message, tokens) in enumerate(zip(messages, all_tokens, strict=True)):
            if not tokens:
                continue
            starts = np.fromiter((t.start for t in tokens), dtype=np.int64, count=len(tokens))
            ends = np.fromiter((t.end for t in tokens), dtype=np.int64, count=len(tokens))
            for p_index, regex in enumerate(self._compiled):
                hit = np.zeros(len(tokens), dtype=bool)
                for match in regex.finditer(message.text):
                    hit |= (starts < match.end()) & (ends > match.start())
                if hit.any():
                    rows = np.flatnonzero(hit) + offsets[m_index]
                    seq_rows.append(rows)
                    seq_cols.append(np.full(len(rows), p_index))
                    sent_rows.append(m_index)
                    sent_cols.append(p_index)
        rows = np.concatenate(seq_rows) if seq_rows else np.zeros(0, dtype=np.int64)
        cols = np.concatenate(seq_cols) if seq_cols else np.zeros(0, dtype=np.int64)
        sequence = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(offsets[-1], self.dim))
        sentence = csr_matrix(
            (np.ones(len(sent_rows)), (sent_rows, sent_cols)), shape=(len(messages), self.dim)
        )
        attach_features(messages, sequence, sentence, offsets, self.name)

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"patterns": [[p.name, p.pattern] for p in self.patterns_]}, {}

    def _set_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self.patterns_ = [Pattern(str(name), str(pattern)) for name, pattern in state["patterns"]]
        self._compiled = compile_patterns(self.patterns_, self.case_sensitive, self.name)

