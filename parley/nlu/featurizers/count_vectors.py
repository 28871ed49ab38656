"""CountVectorsFeaturizer: bag of word or character n-grams, without scikit-learn.

Follows Rasa's use of scikit-learn's ``CountVectorizer``: the tokenizer's tokens are
cleaned (digit-only words become ``__NUMBER__``, lower-cased, out-of-vocabulary words
become ``OOV_token``), then each token is analysed on its own for its sequence row and the
tokens joined by spaces are analysed for the sentence row. Words are ``\\w+`` runs.

The work is done once per distinct token, not per occurrence: each distinct token's
n-gram counts form a small matrix ``U``; the sequence rows are rows of ``U`` and, where
n-grams cannot cross token borders (``char_wb``, or word unigrams), the sentence rows are
``M @ U`` with ``M`` counting tokens per message.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from itertools import accumulate
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from parley.component import SPARSE_FEATURES, TOKENS, NLUComponent
from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.errors import warn
from parley.nlu.features import (
    FEATURES_KEY, CSRArrays, Features, LaterArrays, attach_features, count_entries, ranges,
)
from parley.nlu.featurizers._tokens import token_offsets, tokens_of
from parley.params import (
    AnyOf, Bool, Choice, Constraint, Float, Hint, Int, ListOf, MappingOf, NoneOr, Rule, Str,
)

if TYPE_CHECKING:
    from typing import Self

    from scipy.sparse import csr_matrix

_NUMBER = re.compile(r"\b[0-9]+\b")
NUMBER_TOKEN = "__NUMBER__"
_WORD = re.compile(r"\b\w+\b")
_SPACES = re.compile(r"\s\s+")
ANALYZERS = ("word", "char", "char_wb")
# The analyzers loop over every n-gram length up to max_ngram for each token and text, so a
# huge value hangs training; useful character n-grams stop near 10, words near 5.
MAX_NGRAM = 100
# Distinct tokens whose term ids are kept between calls (then the store starts afresh):
# ~100 bytes each with their ids.
KEPT_TOKENS = 100_000
_DOCUMENT_FREQUENCY = AnyOf(Int(min=0), Float(min=0, max=1))


class CountVectorsFeaturizer(NLUComponent):
    """Counts word (``analyzer: word``) or character n-grams (``char``, ``char_wb``).

    Parameters keep Rasa's names and defaults. ``min_df``/``max_df`` are document counts
    when whole numbers and fractions of the documents when floats; ``max_features`` keeps
    the most frequent terms. ``OOV_token``/``OOV_words`` work with the word analyzer only.
    ``stop_words`` takes a list (the built-in ``english`` list of scikit-learn is not
    bundled). ``use_lemma`` has no effect while no tokenizer sets lemmas, and only the
    message text is featurized, so ``use_shared_vocab`` has nothing to share yet.
    """

    name = "CountVectorsFeaturizer"
    needs = (TOKENS,)
    provides = (SPARSE_FEATURES,)

    param_constraints: ClassVar[dict[str, Constraint]] = {
        "analyzer": Choice(*ANALYZERS),
        "min_ngram": Int(1, MAX_NGRAM),
        "max_ngram": Int(1, MAX_NGRAM),
        "min_df": _DOCUMENT_FREQUENCY,
        "max_df": _DOCUMENT_FREQUENCY,
        "max_features": NoneOr(Int(min=1)),
        "lowercase": Bool(),
        "strip_accents": NoneOr(Choice("ascii", "unicode")),
        "stop_words": NoneOr(Hint(ListOf(Str()), "Give the stop words as a list; Parley does "
                                  "not bundle scikit-learn's built-in lists.")),
        "OOV_token": NoneOr(Str()),
        "OOV_words": NoneOr(ListOf(Str())),
        "use_shared_vocab": Bool(),
        "use_lemma": Bool(),
        "additional_vocabulary_size": NoneOr(MappingOf(
            Choice("text", "response", "action_text"), NoneOr(Int(0, 10_000_000)))),
    }
    param_rules: ClassVar[tuple[Rule, ...]] = (
        Rule(("min_ngram", "max_ngram"), lambda low, high: None if low <= high else
             f"min_ngram ({low}) must not be greater than max_ngram ({high})."),
        # Both counts or both fractions can be compared now (scikit-learn's check); a count
        # beside a fraction only against the data, where an empty vocabulary warns.
        Rule(("min_df", "max_df"), lambda low, high: None
             if isinstance(low, int) != isinstance(high, int) or low <= high else
             f"min_df ({low}) must not be greater than max_df ({high}): no word could be kept."),
    )

    def __init__(
        self,
        *,
        analyzer: str = "word",
        min_ngram: int = 1,
        max_ngram: int = 1,
        min_df: int | float = 1,
        max_df: int | float = 1.0,
        max_features: int | None = None,
        lowercase: bool = True,
        strip_accents: str | None = None,
        stop_words: list[str] | None = None,
        OOV_token: str | None = None,  # noqa: N803 - Rasa's name
        OOV_words: list[str] | None = None,  # noqa: N803 - Rasa's name
        use_shared_vocab: bool = False,
        use_lemma: bool = True,
        additional_vocabulary_size: dict[str, int | None] | None = None,
    ) -> None:
        self.analyzer = analyzer
        self.min_ngram = min_ngram
        self.max_ngram = max_ngram
        self.min_df = min_df
        self.max_df = max_df
        self.max_features = max_features
        self.lowercase = lowercase
        self.strip_accents = strip_accents
        self.stop_words = stop_words
        self.OOV_token = OOV_token
        self.OOV_words = OOV_words
        self.use_shared_vocab = use_shared_vocab
        self.use_lemma = use_lemma
        self.additional_vocabulary_size = additional_vocabulary_size

    def _oov_token(self) -> str | None:
        if self.analyzer != "word" or not self.OOV_token:
            return None
        return self.OOV_token.lower() if self.lowercase else self.OOV_token

    # --- analysis ----------------------------------------------------------------------
    def _preprocess(self, text: str) -> str:
        if self.strip_accents == "ascii":
            text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
        elif self.strip_accents == "unicode":
            decomposed = unicodedata.normalize("NFKD", text)
            if decomposed != text:
                text = "".join(c for c in decomposed if not unicodedata.combining(c))
        return text.lower() if self.lowercase else text

    def _analyzer(self) -> Callable[[str], list[str]]:
        low, high = self.min_ngram, self.max_ngram
        stop = set(self.stop_words or ())

        def word(doc: str) -> list[str]:
            words = [w for w in _WORD.findall(self._preprocess(doc)) if w not in stop]
            if high == 1:
                return words
            return [" ".join(words[i:i + n]) for n in range(low, high + 1)
                    for i in range(len(words) - n + 1)]

        def char(doc: str) -> list[str]:
            doc = _SPACES.sub(" ", self._preprocess(doc))
            return [doc[i:i + n] for n in range(low, high + 1) for i in range(len(doc) - n + 1)]

        def char_wb(doc: str) -> list[str]:
            grams: list[str] = []
            for w in self._preprocess(doc).split():
                w = f" {w} "
                for n in range(low, high + 1):
                    if len(w) <= n:  # a short word counts once, whole
                        grams.append(w)
                        break
                    grams.extend(w[i:i + n] for i in range(len(w) - n + 1))
            return grams

        return {"word": word, "char": char, "char_wb": char_wb}[self.analyzer]

    def _sentence_is_sum_of_tokens(self) -> bool:
        return self.analyzer == "char_wb" or (self.analyzer == "word" and self.max_ngram == 1)

    # --- training ----------------------------------------------------------------------
    def fit(self, training_data: TrainingData) -> Self:
        self.check_params()
        messages = training_data.examples
        oov = self._oov_token()
        oov_words = {w.lower() if self.lowercase else w for w in (self.OOV_words or ())}
        replace = {w: oov for w in oov_words} if oov else {}
        token_lists = self._clean_tokens(messages, lambda t: replace.get(t, t))
        terms: dict[str, int] = {}
        _, counts = self._count(token_lists, terms, grow=True)
        self.vocabulary_ = self._prune(counts, terms, len(messages))
        if terms and not self.vocabulary_:
            warn(f"{self.name}: min_df {self.min_df!r}, max_df {self.max_df!r} and "
                 f"max_features {self.max_features!r} leave no word of the {len(terms):,} seen "
                 "in training; this featurizer adds no features.")
        return self

    def _prune(self, counts: csr_matrix, terms: dict[str, int], n_docs: int) -> dict[str, int]:
        counts = counts.tocsc()
        counts.sum_duplicates()
        df = np.diff(counts.indptr)
        tf = np.asarray(counts.sum(axis=0)).ravel()
        high = self.max_df if isinstance(self.max_df, int) else self.max_df * n_docs
        low = self.min_df if isinstance(self.min_df, int) else self.min_df * n_docs
        keep = np.flatnonzero((df >= low) & (df <= high))
        if self.max_features is not None and len(keep) > self.max_features:
            names = np.array(list(terms), dtype=object)
            # most frequent first; ties by term so the choice does not depend on order
            order = sorted(keep.tolist(), key=lambda i: (-tf[i], names[i]))
            keep = np.array(order[: self.max_features])
        by_id = list(terms)
        return {term: i for i, term in enumerate(sorted(by_id[j] for j in keep.tolist()))}

    # --- featurization -----------------------------------------------------------------
    def _clean_tokens(
        self, messages: list[Message], oov: Callable[[str], str]
    ) -> list[list[str]]:
        cleaned: dict[str, str] = {}
        result = []
        for tokens in tokens_of(messages, self.name):
            row = []
            for token in tokens:
                text = cleaned.get(token.text)
                if text is None:
                    text = _NUMBER.sub(NUMBER_TOKEN, token.text)
                    text = oov(text.lower() if self.lowercase else text)
                    cleaned[token.text] = text
                row.append(text)
            result.append(row)
        return result

    def _count(
        self, token_lists: list[list[str]], vocabulary: dict[str, int], grow: bool
    ) -> tuple[csr_matrix, csr_matrix]:
        """(per-token counts, per-message counts) of the batch over ``vocabulary``.

        With ``grow`` every new n-gram is added to ``vocabulary`` (fitting); otherwise
        unknown n-grams are dropped.
        """
        from scipy.sparse import csr_matrix

        def term_id(gram: str) -> int | None:
            if grow:
                return vocabulary.setdefault(gram, len(vocabulary))
            return vocabulary.get(gram)

        analyze = self._analyzer()
        distinct: dict[str, int] = {}
        flat = np.fromiter(
            (distinct.setdefault(t, len(distinct)) for tokens in token_lists for t in tokens),
            dtype=np.int64,
        )
        if grow:
            t_rows, t_cols = _coordinates(enumerate(distinct), analyze, term_id)
        else:
            t_rows, t_cols = self._known_coordinates(distinct, analyze, vocabulary)
        if not self._sentence_is_sum_of_tokens():
            docs = ((i, " ".join(tokens)) for i, tokens in enumerate(token_lists))
            s_rows, s_cols = _coordinates(docs, analyze, term_id)
        width = len(vocabulary)
        # CSR arrays built directly (scipy's COO → CSR conversions, products and fancy
        # indexing cost ~0.3 ms a call, most of a message's featurization); the counts are
        # whole numbers, so the sums are exactly those of the matrix products.
        per_token = count_entries(np.asarray(t_rows, dtype=np.int64),
                                  np.asarray(t_cols, dtype=np.int64), np.ones(len(t_rows)),
                                  len(distinct), width)
        offsets = token_offsets(token_lists)
        starts, stops = per_token[2][flat], per_token[2][flat + 1]
        taken = ranges(starts, stops - starts)
        seq_indptr = np.zeros(len(flat) + 1, dtype=np.int64)
        np.cumsum(stops - starts, out=seq_indptr[1:])
        sequence = csr_matrix((per_token[0][taken], per_token[1][taken], seq_indptr),
                              shape=(len(flat), width))
        if self._sentence_is_sum_of_tokens():
            message_of = np.repeat(np.arange(len(token_lists)), np.diff(offsets))
            entry_message = np.repeat(message_of, stops - starts)
            data, indices, indptr = count_entries(entry_message, per_token[1][taken],
                                            per_token[0][taken], len(token_lists), width)
        else:
            data, indices, indptr = count_entries(np.asarray(s_rows, dtype=np.int64),
                                            np.asarray(s_cols, dtype=np.int64),
                                            np.ones(len(s_rows)), len(token_lists), width)
        sentence = csr_matrix((data, indices, indptr), shape=(len(token_lists), width))
        return sequence, sentence

    def _known_coordinates(self, distinct: Mapping[str, int], analyze: Callable[[str], list[str]],
                           vocabulary: dict[str, int]) -> tuple[list[int], list[int]]:
        """:func:`_coordinates` of the distinct tokens over a fixed vocabulary, each token's
        term ids kept between calls: words come again and again, and cutting a word into
        character n-grams is most of featurizing it."""
        rows: list[int] = []
        cols: list[int] = []
        for row, text in enumerate(distinct):
            ids = self._term_ids(text, analyze, vocabulary)
            rows.extend([row] * len(ids))
            cols.extend(ids)
        return rows, cols

    def process(self, messages: list[Message]) -> None:
        self.check_is_fitted()
        if not messages or not self.vocabulary_:
            return
        if len(messages) == 1:  # a parse: no batch to vectorise over
            sequence, sentence = self._count_one(
                [t.text for t in tokens_of(messages, self.name)[0]])
            messages[0].data.setdefault(FEATURES_KEY, []).append(
                Features.from_csr_arrays(sequence, sentence, len(self.vocabulary_), self.name))
            return
        token_lists = self._clean_tokens(messages, self._out_of_vocabulary())
        sequence, sentence = self._count(token_lists, self.vocabulary_, grow=False)
        attach_features(messages, sequence, sentence, token_offsets(token_lists), self.name)

    def _out_of_vocabulary(self) -> Callable[[str], str]:
        """What a cleaned word becomes when predicting: ``OOV_token`` if it is not in the
        vocabulary (with ``OOV_token`` set and learned), else itself."""
        oov, vocabulary = self._oov_token(), self.vocabulary_
        if oov is not None and oov in vocabulary:
            return lambda t: t if t in vocabulary else oov
        return lambda t: t

    def _count_one(self, texts: list[str]) -> tuple[LaterArrays, CSRArrays]:
        """:meth:`_count` of one message's token texts over the vocabulary — the CSR
        arrays of the same matrices (float64 counts, sorted columns) — from each distinct
        token's counts, kept between calls: numpy's sorting and scipy's conversions cost
        more than the counting for a few tokens. The sequence rows come as a function that
        makes them: a parse with the default pipeline never reads them."""
        entries = [self._token_entry(t) for t in texts]

        def sequence() -> CSRArrays:
            counted = [_token_counts(entry) for entry in entries]
            indptr = np.fromiter(accumulate((len(ids) for ids, _ in counted), initial=0),
                                 dtype=np.int64, count=len(entries) + 1)
            if not entries:
                return np.zeros(0), np.zeros(0, dtype=np.int32), indptr
            return (np.concatenate([times for _, times in counted]),
                    np.concatenate([ids for ids, _ in counted]), indptr)

        if not entries:
            return sequence, (np.zeros(0), np.zeros(0, dtype=np.int32),
                              np.zeros(2, dtype=np.int64))
        if self._sentence_is_sum_of_tokens():  # counts are whole numbers: any order sums
            # each token's ids once per count (kept), then counted: one sort, where the
            # inverse of a unique and a weighted bincount cost an argsort and a scatter more
            columns, counts = np.unique(np.concatenate([entry[1] for entry in entries]),
                                        return_counts=True)
            values = counts.astype(np.float64)
        else:
            vocabulary = self.vocabulary_
            analyze = self.__dict__["_kept_entries"][2]  # _token_entry made it
            total = _counted([i for gram in analyze(" ".join(e[0] for e in entries))
                              if (i := vocabulary.get(gram)) is not None])
            values = np.fromiter(total.values(), dtype=np.float64, count=len(total))
            columns = np.fromiter(total, dtype=np.int32, count=len(total))
        return sequence, (values, columns, np.array([0, len(columns)], dtype=np.int64))

    def _token_entry(self, text: str) -> list[Any]:
        """One token text cleaned as :meth:`_clean_tokens` cleans it for prediction, its
        known term ids, increasing, each as often as it occurs (int32), and a slot for its
        distinct ids and counts (:func:`_token_counts`, made when a sequence row is first
        read: a default parse never reads one); kept between calls."""
        vocabulary = self.vocabulary_
        kept = self.__dict__.get("_kept_entries")
        if kept is None or kept[0] is not vocabulary or len(kept[1]) > KEPT_TOKENS:
            kept = self.__dict__["_kept_entries"] = (
                vocabulary, {}, self._analyzer(), self._out_of_vocabulary())
        entry = kept[1].get(text)
        if entry is None:
            _, known, analyze, oov = kept
            cleaned = _NUMBER.sub(NUMBER_TOKEN, text)
            cleaned = oov(cleaned.lower() if self.lowercase else cleaned)
            ids = [i for gram in analyze(cleaned) if (i := vocabulary.get(gram)) is not None]
            ids.sort()
            entry = known[text] = [cleaned, np.array(ids, dtype=np.int32), None]
        return entry  # type: ignore[no-any-return]

    def _term_ids(self, text: str, analyze: Callable[[str], list[str]],
                  vocabulary: dict[str, int]) -> list[int]:
        """The known term ids of one token's n-grams, kept between calls (as
        :meth:`_known_coordinates` keeps them)."""
        kept = self.__dict__.get("_kept_terms")
        if kept is None or kept[0] is not vocabulary or len(kept[1]) > KEPT_TOKENS:
            kept = self.__dict__["_kept_terms"] = (vocabulary, {})
        known: dict[str, list[int]] = kept[1]
        ids = known.get(text)
        if ids is None:
            ids = known[text] = [i for gram in analyze(text)
                                 if (i := vocabulary.get(gram)) is not None]
        return ids

    # --- persistence -------------------------------------------------------------------
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"vocabulary": sorted(self.vocabulary_, key=self.vocabulary_.__getitem__)}, {}

    def _set_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self.vocabulary_ = {str(term): i for i, term in enumerate(state["vocabulary"])}


def _coordinates(
    items: Iterable[tuple[int, str]],
    analyze: Callable[[str], list[str]],
    term_id: Callable[[str], int | None],
) -> tuple[list[int], list[int]]:
    rows: list[int] = []
    cols: list[int] = []
    for row, text in items:
        for gram in analyze(text):
            col = term_id(gram)
            if col is not None:
                rows.append(row)
                cols.append(col)
    return rows, cols


def _token_counts(entry: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """A kept token entry's distinct ids (int32, increasing) and their counts (float64),
    made once."""
    if entry[2] is None:
        ids, counts = np.unique(entry[1], return_counts=True)
        entry[2] = (ids, counts.astype(np.float64))
    return entry[2]  # type: ignore[no-any-return]


def _counted(ids: list[int]) -> dict[int, float]:
    """Each id's count, ids in increasing order."""
    counts: dict[int, float] = {}
    for i in sorted(ids):
        counts[i] = counts.get(i, 0.0) + 1.0
    return counts
