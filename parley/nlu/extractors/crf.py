"""CRFEntityExtractor: entities from a linear-chain conditional random field over tokens.

Rasa's component trains CRFsuite (through sklearn-crfsuite); this one trains the same model
with the same objective in numpy (:mod:`parley.nlu.extractors._crf`): one CRF for the entity
tags and, when the data has roles or groups, one CRF each for them that also sees the
token's entity tag. Token features are Rasa's (:mod:`parley.nlu.extractors._crf_features`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from parley.component import DENSE_FEATURES, ENTITIES, TOKENS, Finetunable, NLUComponent, finetune_epochs
from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.errors import ConfigError, DataError
from parley.ml.entity_tags import (
    NO_ENTITY,
    decode_entities,
    label_of,
    mean_confidence,
    tag_spans,
    token_tags,
)
from parley.nlu.extractors import ENTITIES_KEY
from parley.nlu.extractors._crf import ChainWeights, predict_chain, train_chain_crf
from parley.nlu.extractors._crf_single import AttributeIds, SequencePredictor
from parley.nlu.extractors._crf_features import (
    DEFAULT_FEATURES, DENSE, PATTERN, SPACY_FEATURES, TEXT_FEATURES, TokenBatch,
    attribute_entries, attribute_matrix, lookup, regex_rows, token_batch,
)
from parley.nlu.featurizers._tokens import tokens_of
from parley.nlu.tokens import Token
from parley.params import AnyOf, Bool, Constraint, FeatureWindow, Float, Int, ListOf, MappingOf, NoneOr, Str

if TYPE_CHECKING:
    from typing import Self

# The taggers, in the order they run: roles and groups see the entity tags.
ATTRIBUTES = ("entity", "role", "group")
SPLIT_DEFAULT = "split_entities_by_comma"
# What may stand between two tokens of one entity that is not split (Rasa's set).
_JOINING_CHARACTERS = frozenset(".,; ")
# CRFsuite's L-BFGS usually stops long before; a billion is a typo that would not finish.
MAX_ITERATIONS = 1_000_000


class _Tagger:
    """One trained CRF: its labels, its attribute vocabulary and its weights (and, made on
    the first message parsed alone, what tagging one message reuses)."""

    def __init__(self, labels: list[str], attributes: list[str], weights: ChainWeights) -> None:
        self.labels = labels
        self.attributes = attributes
        self.index = {name: i for i, name in enumerate(attributes)}
        self.weights = weights
        self._single: tuple[AttributeIds, SequencePredictor, np.ndarray] | None = None

    def single(self, window: list[list[str]]
               ) -> tuple[AttributeIds, SequencePredictor, np.ndarray]:
        """The attribute ids of ``window``, the one-sequence predictor and, per label,
        which labels share its bare label (BILOU confidences sum over them)."""
        if self._single is None or self._single[0].window != window:
            bare = np.array([label_of(t) for t in self.labels])
            self._single = (AttributeIds(self.index, window),
                            SequencePredictor(self.weights, len(self.attributes)),
                            bare[:, None] == bare[None, :])
        return self._single


class CRFEntityExtractor(NLUComponent, Finetunable):
    """Tags tokens with a CRF and turns the tags into entities (with roles and groups).

    Parameters are Rasa's: ``BILOU_flag`` (tag the beginning/inside/last/unit token of each
    entity), ``split_entities_by_comma`` (true, false, or a mapping entity type → bool;
    types not listed split), ``features`` (a window of feature lists, null for Rasa's
    default), ``max_iterations``, ``L1_c`` and ``L2_c`` (CRFsuite's ``c1``/``c2``) and
    ``featurizers`` (the dense featurizers ``text_dense_features`` reads; empty for all).

    Each entity found is ``{"entity", "start", "end", "value", "confidence_entity",
    ["role", "confidence_role"], ["group", "confidence_group"], "extractor"}``. Tags are
    the Viterbi path; a token's confidence is its marginal probability (with BILOU, summed
    over the B/I/L/U tags of its label, as Rasa does), an entity's the mean over its tokens.
    """

    name = "CRFEntityExtractor"
    prepares_training_data = False
    uses_packages = ("numpy", "scipy")
    needs = (TOKENS,)
    provides = (ENTITIES,)

    param_constraints: ClassVar[dict[str, Constraint]] = {
        "BILOU_flag": Bool(),
        "split_entities_by_comma": AnyOf(Bool(), MappingOf(Str(), Bool())),
        "features": NoneOr(FeatureWindow([*TEXT_FEATURES, PATTERN, DENSE], SPACY_FEATURES)),
        "max_iterations": Int(1, MAX_ITERATIONS),
        "L1_c": Float(min=0),
        "L2_c": Float(min=0),
        "featurizers": NoneOr(ListOf(Str(nonempty=True))),
    }

    def __init__(
        self,
        *,
        BILOU_flag: bool = True,  # noqa: N803 - Rasa's name
        split_entities_by_comma: bool | dict[str, bool] = True,
        features: list[list[str]] | None = None,
        max_iterations: int = 50,
        L1_c: float = 0.1,  # noqa: N803 - Rasa's name
        L2_c: float = 0.1,  # noqa: N803 - Rasa's name
        featurizers: list[str] | None = None,
    ) -> None:
        self.BILOU_flag = BILOU_flag
        self.split_entities_by_comma = split_entities_by_comma
        self.features = features
        self.max_iterations = max_iterations
        self.L1_c = L1_c
        self.L2_c = L2_c
        self.featurizers = featurizers

    # --- parameters ----------------------------------------------------------------------
    @classmethod
    def needs_with(cls, params: Mapping[str, Any]) -> tuple[str, ...]:
        """Tokens, and dense features when its ``features`` ask for them."""
        window = params.get("features")
        if isinstance(window, list) and any(
                isinstance(names, list) and DENSE in names for names in window):
            return (*cls.needs, DENSE_FEATURES)
        return cls.needs

    def _window(self) -> list[list[str]]:
        return DEFAULT_FEATURES if self.features is None else self.features

    def _splits(self, entity_type: str) -> bool:
        split = self.split_entities_by_comma
        if isinstance(split, bool):
            return split
        return bool(split.get(entity_type, True))

    def _uses_dense(self) -> bool:
        return any(DENSE in names for names in self._window())

    # --- training ------------------------------------------------------------------------
    def fit(self, training_data: TrainingData) -> Self:
        self.check_params()
        examples = [m for m in training_data.nlu_examples if m.text]
        self.taggers_: dict[str, _Tagger] = {}
        self.dense_layout_: list[list[Any]] = []
        if not any(m.entities for m in examples):
            return self  # nothing to learn: it will find no entities, as in Rasa
        all_tokens = tokens_of(examples, self.name)
        batch = self._batch(examples, all_tokens)
        if self._uses_dense() and batch.dense is None:
            raise ConfigError(
                f"{self.name}: features asks for text_dense_features but no dense featurizer"
                f"{' among ' + ', '.join(self.featurizers) if self.featurizers else ''} runs "
                "before it in the pipeline."
            )
        self.dense_layout_ = batch.dense_layout
        entity_tags = self._gold(examples, all_tokens, "entity")
        for attribute in ATTRIBUTES:
            if attribute != "entity" and not any(
                    getattr(e, attribute) for m in examples for e in m.entities):
                continue
            gold = entity_tags if attribute == "entity" else self._gold(examples, all_tokens, attribute)
            labels = sorted(set(gold))
            rows, names, values = attribute_entries(
                batch, self._window(), None if attribute == "entity" else entity_tags)
            attributes, ids = np.unique(names, return_inverse=True)
            x = attribute_matrix(rows, ids.reshape(-1), values, batch.n_tokens, len(attributes))
            weights, _ = train_chain_crf(
                x, np.searchsorted(np.array(labels), np.array(gold)), batch.lengths, len(labels),
                c1=float(self.L1_c), c2=float(self.L2_c), max_iter=self.max_iterations,
            )
            self.taggers_[attribute] = _pruned(labels, [str(a) for a in attributes], weights)
        return self

    def finetune(self, training_data: TrainingData, epoch_fraction: float) -> Self:
        """Continue from the learned weights on new data for ``ceil(max_iterations ×
        epoch_fraction)`` iterations. Attributes never seen before get no weight; entity
        types, roles or groups (or tags) the model does not know are a DataError.

        A model that learned no entities (its data had none) stays empty when the new data
        has none either, as training it again would; entities in the new data are new
        entity types, refused like any other."""
        self.check_is_fitted()
        examples = [m for m in training_data.nlu_examples if m.text]
        all_tokens = tokens_of(examples, self.name)
        iterations = finetune_epochs(self.max_iterations, epoch_fraction)
        golds = {a: self._gold(examples, all_tokens, a) for a in ATTRIBUTES}
        for attribute, gold in golds.items():
            tagger = self.taggers_.get(attribute)
            unknown = sorted(set(gold) - set(tagger.labels if tagger else [NO_ENTITY]))
            if unknown:
                kinds = "entity types" if attribute == "entity" else f"{attribute}s"
                raise DataError(
                    f"{self.name} cannot learn new {kinds} when finetuning: "
                    f"{', '.join(sorted({label_of(t) for t in unknown}))} (tags "
                    f"{', '.join(unknown)}). Train a new model instead."
                )
        if not self.taggers_:
            return self
        batch = self._batch(examples, all_tokens)
        for attribute, tagger in self.taggers_.items():
            rows, names, values = attribute_entries(
                batch, self._window(), None if attribute == "entity" else golds["entity"])
            x = attribute_matrix(rows, lookup(names, tagger.index), values, batch.n_tokens,
                                 len(tagger.attributes))
            y = np.searchsorted(np.array(tagger.labels), np.array(golds[attribute]))
            weights, _ = train_chain_crf(
                x, y, batch.lengths, len(tagger.labels), c1=float(self.L1_c),
                c2=float(self.L2_c), max_iter=iterations, start=tagger.weights,
            )
            self.taggers_[attribute] = _pruned(tagger.labels, tagger.attributes, weights)
        return self

    def _gold(self, examples: list[Message], all_tokens: list[list[Token]], attribute: str
              ) -> list[str]:
        """The annotated tag of every token of the examples, flat."""
        return [t for m, tokens in zip(examples, all_tokens, strict=True)
                for t in token_tags(m, tokens, attribute, self.BILOU_flag)]

    def _batch(self, messages: list[Message], all_tokens: list[list[Token]]) -> TokenBatch:
        return token_batch(messages, all_tokens, self.featurizers, self._uses_dense())

    # --- prediction ----------------------------------------------------------------------
    def predict_tags(self, messages: list[Message]
                     ) -> list[tuple[dict[str, list[str]], dict[str, list[float]]]]:
        """Per message: the tag of every token and its confidence, per tagger."""
        self.check_is_fitted()
        all_tokens = tokens_of(messages, self.name)
        if not self.taggers_:
            return [({}, {}) for _ in messages]
        if len(messages) == 1 and not self._uses_dense():
            return [self._predict_one(messages[0], all_tokens[0])]
        return self._predict_batch(messages, all_tokens)

    def _predict_batch(self, messages: list[Message], all_tokens: list[list[Token]]
                       ) -> list[tuple[dict[str, list[str]], dict[str, list[float]]]]:
        batch = self._batch(messages, all_tokens)
        if batch.dense_layout != self.dense_layout_:
            raise ValueError(
                f"{self.name} was trained on dense features {self.dense_layout_} but the "
                f"messages carry {batch.dense_layout}; use the pipeline it was trained in."
            )
        tags: dict[str, list[str]] = {}
        confidences: dict[str, np.ndarray] = {}
        for attribute, tagger in self.taggers_.items():
            rows, names, values = attribute_entries(
                batch, self._window(), tags["entity"] if attribute != "entity" else None)
            x = attribute_matrix(rows, lookup(names, tagger.index), values, batch.n_tokens,
                                 len(tagger.attributes))
            best, marginals = predict_chain(tagger.weights, x, batch.lengths)
            labels = np.array(tagger.labels)
            tags[attribute] = [str(t) for t in labels[best]]
            if self.BILOU_flag:
                bare = np.array([label_of(t) for t in tagger.labels])
                same = bare[None, :] == bare[best][:, None]
                confidences[attribute] = (marginals * same).sum(axis=1)
            else:
                confidences[attribute] = marginals[np.arange(len(best)), best]
        out = []
        offsets = np.concatenate([[0], np.cumsum(batch.lengths)])
        for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True):
            out.append(({k: v[a:b] for k, v in tags.items()},
                        {k: [float(c) for c in v[a:b]] for k, v in confidences.items()}))
        return out

    def _predict_one(self, message: Message, tokens: list[Token], entities_only: bool = False
                     ) -> tuple[dict[str, list[str]], dict[str, list[float]]]:
        """:meth:`predict_tags` of one message (what a parse asks for): the same attributes,
        emissions summed in the same order and the same chain arithmetic (so the same
        floats; :mod:`parley.nlu.extractors._crf_single`), without the batch's string
        arrays, sparse matrices and layout.

        ``entities_only``: the confidences of the tokens tagged as an entity (the only ones
        an entity reads) are those floats, the others NaN: with no entity the
        forward–backward pass (half the tagging) is not run, and its backward pass stops at
        the first entity token; role and group taggers are not run without an entity."""
        texts = [t.text for t in tokens]
        if not texts:
            return self._predict_batch([message], [tokens])[0]
        patterns = regex_rows(message)
        tags: dict[str, list[str]] = {}
        confidences: dict[str, list[float]] = {}
        inside: list[int] = []  # the tokens tagged as an entity
        for attribute, tagger in self.taggers_.items():
            if entities_only and attribute != "entity" and not inside:
                break  # no entity: nothing reads a role or a group
            attribute_ids, predictor, same = tagger.single(self._window())
            emissions = None
            if attribute == "entity" and (patterns is None or not patterns.data.any()):
                emissions = predictor.window_emissions(attribute_ids, texts)  # (the C kernel)
            if emissions is None:
                rows = attribute_ids.rows(texts, patterns,
                                          tags["entity"] if attribute != "entity" else None)
                if rows is None:  # pattern values other than 1: the batch path multiplies them
                    return self._predict_batch([message], [tokens])[0]
                emissions = predictor.emissions(rows)
            first = 0
            if not entities_only:
                best, marginals = predictor.predict(emissions)
            else:
                best = predictor.tags(emissions)
                if attribute == "entity":
                    labels = tagger.labels
                    inside = [i for i, b in enumerate(best.tolist()) if labels[b] != NO_ENTITY]
                if not inside:
                    tags[attribute] = [tagger.labels[b] for b in best.tolist()]
                    confidences[attribute] = [float("nan")] * len(texts)
                    continue
                first = inside[0]
                found = predictor.marginals_from(emissions, first)
                if found is None:  # float32 underflow: the batch code's fallbacks, all rows
                    first = 0
                    best, found = predictor.fallback(emissions)
                marginals = found
            tags[attribute] = [tagger.labels[b] for b in best.tolist()]
            if self.BILOU_flag:
                here = (marginals * same.take(best[first:], axis=0)).sum(axis=1).tolist()
            else:
                here = marginals[np.arange(len(marginals)), best[first:]].tolist()
            confidences[attribute] = [float("nan")] * first + here
        return tags, confidences

    def process(self, messages: list[Message]) -> None:
        self.check_is_fitted()
        if not messages:
            return
        if len(messages) == 1 and self.taggers_ and not self._uses_dense():
            tokens = tokens_of(messages, self.name)[0]
            predicted = [self._predict_one(messages[0], tokens, entities_only=True)]
        else:
            predicted = self.predict_tags(messages)
        for message, (tags, confidences) in zip(messages, predicted, strict=True):
            found = (self._entities(message.text, message.data["tokens"], tags, confidences)
                     if tags else [])
            message.data[ENTITIES_KEY] = [*message.data.get(ENTITIES_KEY, []), *found]

    def _entities(self, text: str, tokens: list[Token], tags: dict[str, list[str]],
                  confidences: dict[str, list[float]]) -> list[dict[str, Any]]:
        """Entity dicts: a span of tags is cut where Rasa cuts it — where its role or group
        changes, and where its tokens are more than one character apart unless at most three
        characters of ``.,;`` and spaces join them and the type is not split."""
        entities = []
        for first, last, label in tag_spans(tags["entity"], self.BILOU_flag):
            piece_start = first
            for i in range(first + 1, last + 2):
                if i <= last and not self._cut(text, tokens, tags, i, label):
                    continue
                entities.extend(self._piece_entities(text, tokens, tags, confidences,
                                                     piece_start, i))
                piece_start = i
        return entities

    def _piece_entities(self, text: str, tokens: list[Token], tags: dict[str, list[str]],
                        confidences: dict[str, list[float]], first: int, end: int
                        ) -> list[dict[str, Any]]:
        """decode_entities of the tokens ``first:end``; a piece of one entity label
        without roles or groups (nearly every one) is built here directly, the same dict."""
        entity_tags = tags["entity"]
        label = label_of(entity_tags[first])
        if len(tags) > 1 or any(label_of(t) != label for t in entity_tags[first + 1:end]) \
                or label == NO_ENTITY:
            piece = slice(first, end)
            return decode_entities(text, tokens[piece], {k: v[piece] for k, v in tags.items()},
                                   {k: v[piece] for k, v in confidences.items()},
                                   self.BILOU_flag, self.name)
        start, stop = tokens[first].start, tokens[end - 1].end
        entity: dict[str, Any] = {"entity": label, "start": start, "end": stop,
                                  "value": text[start:stop]}
        if "entity" in confidences:
            entity["confidence_entity"] = mean_confidence(confidences["entity"][first:end])
        if self.name:
            entity["extractor"] = self.name
        return [entity]

    def _cut(self, text: str, tokens: list[Token], tags: dict[str, list[str]], i: int,
             label: str) -> bool:
        for attribute in ("role", "group"):
            if attribute in tags and label_of(tags[attribute][i]) != label_of(tags[attribute][i - 1]):
                return True
        between = text[tokens[i - 1].end:tokens[i].start]
        if len(between) <= 1:
            return False
        joined = len(between) <= 3 and set(between) <= _JOINING_CHARACTERS
        return not joined or self._splits(label)

    # --- persistence ---------------------------------------------------------------------
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state = {"taggers": {a: {"labels": t.labels, "attributes": t.attributes}
                             for a, t in self.taggers_.items()},
                 "dense_layout": self.dense_layout_}
        arrays: dict[str, np.ndarray] = {}
        for attribute, tagger in self.taggers_.items():
            w = tagger.weights
            arrays.update({f"{attribute}_pair_attribute": w.pair_attribute,
                           f"{attribute}_pair_label": w.pair_label,
                           f"{attribute}_state": w.state,
                           f"{attribute}_transitions": w.transitions})
        return state, arrays

    def _set_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self.dense_layout_ = [[str(o), int(d)] for o, d in state["dense_layout"]]
        self.taggers_ = {}
        for attribute, saved in state["taggers"].items():
            labels = [str(t) for t in saved["labels"]]
            attributes = [str(a) for a in saved["attributes"]]
            weights = ChainWeights(
                arrays[f"{attribute}_pair_attribute"].astype(np.int64),
                arrays[f"{attribute}_pair_label"].astype(np.int64),
                arrays[f"{attribute}_state"].astype(np.float64),
                arrays[f"{attribute}_transitions"].astype(np.float64),
            )
            _check_shapes(weights, len(labels), len(attributes))
            self.taggers_[attribute] = _Tagger(labels, attributes, weights)


def _pruned(labels: list[str], attributes: list[str], weights: ChainWeights) -> _Tagger:
    """Drop the state weights L1 set to zero, and the attributes left without weights
    (CRFsuite also keeps only non-zero features in its model)."""
    keep = weights.state != 0
    used = np.unique(weights.pair_attribute[keep])
    new_id = np.full(len(attributes), -1, dtype=np.int64)
    new_id[used] = np.arange(len(used))
    pruned = ChainWeights(new_id[weights.pair_attribute[keep]], weights.pair_label[keep],
                          weights.state[keep], weights.transitions)
    return _Tagger(labels, [attributes[i] for i in used], pruned)


def _check_shapes(weights: ChainWeights, n_labels: int, n_attributes: int) -> None:
    n_pairs = len(weights.state)
    if (weights.transitions.shape != (n_labels, n_labels)
            or len(weights.pair_attribute) != n_pairs or len(weights.pair_label) != n_pairs
            or (n_pairs and (weights.pair_attribute.min() < 0
                             or weights.pair_attribute.max() >= n_attributes
                             or weights.pair_label.min() < 0
                             or weights.pair_label.max() >= n_labels))):
        raise ValueError("the weights do not fit the saved labels and attributes")
