"""Entity scores per token, as ``rasa test nlu`` computes each extractor's report.

Each token of a test message gets a label from the gold entities and one from an
extractor's predictions: the entity that covers most of the token's characters (a token an
entity only partly covers counts too), written ``type[.group][.role]``, or ``no_entity``.
The two label lists of all messages together are then scored as scikit-learn's
``classification_report`` with the gold labels other than ``no_entity``
(``<extractor>_report.json``): precision, recall, ``f1-score`` and support (tokens) per label,
``micro avg`` (over those labels: tokens outside every entity are not counted as found),
``macro avg``, ``weighted avg``, and ``confused_with`` (among the three labels most often
predicted on a label's tokens, the other entity labels). Beside the report, as Rasa gives
them: the token accuracy (``no_entity`` tokens included) and the weighted precision and F1.

A message is an error when one of its tokens is labelled wrong, a success when one of its
entity tokens is labelled right (Rasa's ``<extractor>_errors.json`` / ``_successes.json``).

Gold entities of different types that share characters (``[large salami][{"entity":
"size"}, {"entity": "topping"}]``) cannot each label their tokens: Rasa's ``rasa test nlu``
stops with an error on them, and so does Parley (:func:`refuse_overlapping_gold`), naming
the example's file and line. Overlapping entities of one type are scored, as in Rasa.

This is a different measure from :mod:`parley.evaluation.entities`' exact spans (an entity
right only when start, end, type and role all match), which the NLU benchmark reports.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from parley.component import TOKENS
from parley.data.message import Entity, Message
from parley.errors import DataError
from parley.evaluation.entities import NO_ENTITY, EntityError, entity_dict, entity_label
from parley.evaluation.scores import CONFUSIONS_SHOWN, Scores
from parley.nlu.tokens import Token

__all__ = ["TokenEntityReport", "overlapping_types", "pipeline_tokenizer",
           "refuse_overlapping_gold", "token_entity_report", "token_labels"]

AnyEntity = Entity | dict[str, Any]
Tokenize = Callable[[str], Sequence[Token]]


def _span(entity: AnyEntity) -> tuple[int, int]:
    if isinstance(entity, Entity):
        return entity.start, entity.end
    return int(entity["start"]), int(entity["end"])


def _type(entity: AnyEntity) -> str:
    return entity.entity if isinstance(entity, Entity) else str(entity["entity"])


def overlapping_types(entities: Sequence[AnyEntity]) -> tuple[AnyEntity, AnyEntity] | None:
    """Two entities of different types that share characters, or None. Found as Rasa
    finds them: in order of start, each entity against the next one (so an overlap with an
    entity of the same type in between goes through, as in Rasa: data Rasa tests, Parley
    tests; each token then takes the entity covering most of it)."""
    ordered = sorted(entities, key=lambda e: _span(e)[0])
    for this, following in zip(ordered, ordered[1:], strict=False):
        if _span(following)[0] < _span(this)[1] and _type(following) != _type(this):
            return this, following
    return None


def refuse_overlapping_gold(messages: Iterable[Message]) -> None:
    """Stop, as ``rasa test nlu`` stops, at the first test example whose gold entities of
    different types overlap: each token takes one label, so they cannot be scored."""
    for message in messages:
        pair = overlapping_types(message.entities)
        if pair is None:
            continue
        shown = " and ".join(
            f"'{message.text[_span(e)[0]:_span(e)[1]]}' ({_type(e)}, characters "
            f"{_span(e)[0]}-{_span(e)[1]})" for e in pair)
        raise DataError(
            f"the test example '{message.text}' has overlapping entities of different "
            f"types: {shown}. Entities are scored per token, and a token takes one entity "
            "label (rasa test nlu stops on them too).",
            file=message.file, line=message.line,
            hint="Annotate one entity type on these characters, or leave the example out "
                 "of the test data.")


def _overlap(token: Token, entity: AnyEntity) -> int:
    start, end = _span(entity)
    return max(0, min(token.end, end) - max(token.start, start))


def _best_fit(token: Token, entities: Sequence[AnyEntity]) -> AnyEntity | None:
    """The entity sharing most characters with ``token`` (the first of equals), or None."""
    best, shared = None, 0
    for entity in entities:
        overlap = _overlap(token, entity)
        if overlap > shared:
            best, shared = entity, overlap
    return best


def token_labels(tokens: Sequence[Token], entities: Sequence[AnyEntity]) -> list[str]:
    """Each token's label: its best-fitting entity's ``type[.group][.role]``, or
    ``no_entity``."""
    labels = []
    for token in tokens:
        entity = _best_fit(token, entities)
        labels.append(NO_ENTITY if entity is None else entity_label(entity))
    return labels


def _confidence(entity: AnyEntity | None) -> float:
    value = entity_dict(entity).get("confidence_entity") if entity is not None else None
    return float(value) if isinstance(value, (int, float)) else 0.0


@dataclass
class TokenEntityReport:
    """One extractor's entities scored per token, as Rasa scores them."""

    targets: list[str]  # every token's gold label, all messages together
    predictions: list[str]  # every token's predicted label
    errors: list[EntityError]
    successes: list[EntityError] = field(default_factory=list, repr=False)
    # (confidence, right?) of every token labelled with an entity: the entity histogram.
    confidences: list[tuple[float | None, bool]] = field(default_factory=list, repr=False)

    @property
    def labels(self) -> list[str]:
        """The labels scored: the gold ones other than ``no_entity``."""
        return sorted(set(self.targets) - {NO_ENTITY})

    @property
    def label_pairs(self) -> list[tuple[str, str]]:
        """(gold, predicted) of every token: the entity confusion matrix."""
        return list(zip(self.targets, self.predictions, strict=True))

    @property
    def scores(self) -> dict[str, Scores]:
        gold = Counter(self.targets)
        predicted = Counter(self.predictions)
        right = Counter(t for t, p in self.label_pairs if t == p)
        out = {}
        for label in self.labels:
            precision = right[label] / predicted[label] if predicted[label] else 0.0
            recall = right[label] / gold[label] if gold[label] else 0.0
            both = gold[label] + predicted[label]
            out[label] = Scores(precision, recall, 2 * right[label] / both if both else 0.0,
                                gold[label])
        return out

    @property
    def accuracy(self) -> float:
        """The share of tokens labelled right, ``no_entity`` tokens included (Rasa's
        ``accuracy`` of an extractor)."""
        if not self.targets:
            return 0.0
        return sum(t == p for t, p in self.label_pairs) / len(self.targets)

    def _average(self, attr: str, weighted: bool) -> float:
        scores = list(self.scores.values())
        total = sum(s.support for s in scores)
        if not scores or (weighted and not total):
            return 0.0
        if weighted:
            return sum(getattr(s, attr) * s.support for s in scores) / total
        return sum(getattr(s, attr) for s in scores) / len(scores)

    @property
    def weighted_precision(self) -> float:
        return self._average("precision", weighted=True)

    @property
    def weighted_f1(self) -> float:
        return self._average("f1", weighted=True)

    @property
    def micro(self) -> Scores:
        """Precision, recall and F1 over the scored labels' tokens together."""
        labels = set(self.labels)
        right = sum(t == p for t, p in self.label_pairs if t in labels)
        predicted = sum(p in labels for p in self.predictions)
        gold = sum(t in labels for t in self.targets)
        precision = right / predicted if predicted else 0.0
        recall = right / gold if gold else 0.0
        f1 = 2 * right / (gold + predicted) if gold + predicted else 0.0
        return Scores(precision, recall, f1, gold)

    def confusions(self) -> dict[str, dict[str, int]]:
        """Per scored label, the other entity labels among the three predicted most often
        on its tokens (Rasa's ``confused_with``)."""
        every = sorted(set(self.targets) | set(self.predictions))
        out: dict[str, dict[str, int]] = {}
        for label in self.labels:
            row = Counter(p for t, p in self.label_pairs if t == label)
            # Most often first; of equals, the later label first, as Rasa's argsort gives.
            ranked = sorted(every, key=lambda name: (row[name], every.index(name)),
                            reverse=True)[:min(CONFUSIONS_SHOWN, len(every))]
            out[label] = {name: row[name] for name in ranked
                          if name not in (label, NO_ENTITY) and row[name] > 0}
        return out

    def as_dict(self) -> dict[str, Any]:
        """Rasa's ``<extractor>_report.json``; ``{}`` without gold entities, as Rasa's."""
        if not self.labels:
            return {}
        confusions = self.confusions()
        scores = self.scores
        out: dict[str, Any] = {label: {**s.as_dict(), "confused_with": confusions[label]}
                               for label, s in scores.items()}
        support = sum(s.support for s in scores.values())
        if set(self.labels) == set(self.targets) | set(self.predictions):
            out["accuracy"] = self.accuracy  # every label scored: scikit-learn's accuracy row
        else:
            out["micro avg"] = self.micro.as_dict()
        for name, weighted in (("macro avg", False), ("weighted avg", True)):
            out[name] = {"precision": self._average("precision", weighted),
                         "recall": self._average("recall", weighted),
                         "f1-score": self._average("f1", weighted), "support": support}
        return out

    def errors_as_dicts(self) -> list[dict[str, Any]]:
        return [e.as_dict() for e in self.errors]

    def successes_as_dicts(self) -> list[dict[str, Any]]:
        return [e.as_dict() for e in self.successes]


def token_entity_report(texts: Sequence[str], tokens: Sequence[Sequence[Token]],
                        gold: Sequence[Sequence[AnyEntity]],
                        predicted: Sequence[Sequence[AnyEntity]]) -> TokenEntityReport:
    """Label each message's tokens from its gold and its predicted entities and score them
    all together."""
    targets: list[str] = []
    predictions: list[str] = []
    errors, successes = [], []
    confidences: list[tuple[float | None, bool]] = []
    for text, message_tokens, gold_entities, predicted_entities in zip(
            texts, tokens, gold, predicted, strict=True):
        wanted = token_labels(message_tokens, gold_entities)
        found = token_labels(message_tokens, predicted_entities)
        targets += wanted
        predictions += found
        for token, t, p in zip(message_tokens, wanted, found, strict=True):
            if p != NO_ENTITY:
                confidences.append((_confidence(_best_fit(token, predicted_entities)), t == p))
        compared = EntityError(text, [entity_dict(e) for e in gold_entities],
                               [entity_dict(e) for e in predicted_entities])
        if wanted != found:
            errors.append(compared)
        if any(t == p != NO_ENTITY for t, p in zip(wanted, found, strict=True)):
            successes.append(compared)
    return TokenEntityReport(targets, predictions, errors, successes, confidences)


def pipeline_tokenizer(components: Iterable[Any]) -> Tokenize:
    """How the pipeline tokenizes a text (its tokenizer's ``tokenize``): the tokens Rasa
    aligns entities to. A pipeline without one gets the default WhitespaceTokenizer's."""
    for component in components:
        if TOKENS in getattr(type(component), "provides", ()) and \
                callable(getattr(component, "tokenize", None)):
            return component.tokenize  # type: ignore[no-any-return]
    from parley.data.training_data import TrainingData
    from parley.nlu.tokenizers.whitespace import WhitespaceTokenizer

    return WhitespaceTokenizer().fit(TrainingData()).tokenize
