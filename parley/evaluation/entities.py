"""Exact-span entity scores: Parley's own measure, beside Rasa's per-token one.

A predicted entity is right only when start, end, type and role all match a gold one, each
gold entity matched at most once (the value is not compared: a synonym mapped value still
counts). This is the entity F1 the NLU benchmark reports (and ``parley test nlu``'s summary,
named as exact spans). The report files of ``parley test nlu`` score each extractor per
token, as Rasa does: see :mod:`parley.evaluation.entity_tokens`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from parley.component import ENTITIES
from parley.data.message import Entity
from parley.evaluation.scores import CONFUSIONS_SHOWN, Scores

__all__ = ["ENTITY_PROCESSORS", "NO_ENTITY", "PRETRAINED_EXTRACTORS", "EntityError",
           "EntityReport", "entity_dict", "entity_extractors", "entity_label", "entity_report"]

# Rasa leaves these out of entity evaluation: they are not trained on the project's data.
PRETRAINED_EXTRACTORS = frozenset({"DucklingEntityExtractor", "SpacyEntityExtractor"})
# Components that change entities others found without finding any themselves.
ENTITY_PROCESSORS = frozenset({"EntitySynonymMapper"})


def _entity_key(entity: Entity | dict[str, Any]) -> tuple[int, int, str, str | None]:
    if isinstance(entity, Entity):
        return entity.start, entity.end, entity.entity, entity.role
    return int(entity["start"]), int(entity["end"]), str(entity["entity"]), entity.get("role")


def entity_dict(entity: Entity | dict[str, Any]) -> dict[str, Any]:
    if isinstance(entity, Entity):
        return entity.to_dict()
    return {k: v for k, v in entity.items() if k in ("start", "end", "value", "entity", "role",
                                                     "group", "confidence_entity", "extractor")}


NO_ENTITY = "no_entity"  # Rasa's label for "no entity here" in its entity confusion matrix


@dataclass(frozen=True)
class EntityError:
    """A test message whose predicted entities differ from the gold ones (or, among the
    successes, match them)."""

    text: str
    gold: list[dict[str, Any]]
    predicted: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        """Rasa's ``<extractor>_errors.json`` / ``_successes.json`` entry."""
        return {"text": self.text, "entities": self.gold, "predicted_entities": self.predicted}


@dataclass
class EntityReport:
    """Exact-match entity scores: micro over all entities and per entity type."""

    n_gold: int
    n_predicted: int
    n_correct: int
    types: dict[str, Scores]
    errors: list[EntityError]
    # Messages with entities, all found and none spurious.
    successes: list[EntityError] = field(default_factory=list, repr=False)
    # (gold, predicted) label of every span either side names, "no_entity" for none: the
    # confusion matrix of the entity plots. Labels are "type[.group][.role]", as Rasa's.
    label_pairs: list[tuple[str, str]] = field(default_factory=list, repr=False)
    # (confidence, right?) of every predicted entity: the entity histogram.
    confidences: list[tuple[float | None, bool]] = field(default_factory=list, repr=False)

    @property
    def precision(self) -> float:
        return self.n_correct / self.n_predicted if self.n_predicted else 0.0

    @property
    def recall(self) -> float:
        return self.n_correct / self.n_gold if self.n_gold else 0.0

    @property
    def f1(self) -> float | None:
        """Micro-F1; ``None`` when the test set has no gold entities to find."""
        if not self.n_gold:
            return None
        return 2 * self.n_correct / (self.n_gold + self.n_predicted)

    def _weighted(self, attr: str) -> float:
        """Averaged over the gold types, weighted by support (scikit-learn's "weighted")."""
        total = sum(s.support for s in self.types.values())
        if not total:
            return 0.0
        return sum(getattr(s, attr) * s.support for s in self.types.values()) / total

    @property
    def weighted_f1(self) -> float:
        return self._weighted("f1")

    @property
    def weighted_precision(self) -> float:
        return self._weighted("precision")

    def confusions(self) -> dict[str, dict[str, int]]:
        """Per gold entity type, the other types predicted on its characters, most
        frequent first (Rasa's ``confused_with``; "no_entity" is not a confusion)."""
        wrong: dict[str, Counter[str]] = {}
        for gold, predicted in self.label_pairs:
            gold_type, predicted_type = gold.split(".")[0], predicted.split(".")[0]
            if NO_ENTITY not in (gold, predicted) and gold_type != predicted_type:
                wrong.setdefault(gold_type, Counter())[predicted_type] += 1
        return {g: dict(c.most_common(CONFUSIONS_SHOWN)) for g, c in wrong.items()}

    def as_dict(self) -> dict[str, Any]:
        """A report in the shape of Rasa's (per type, with ``confused_with``), exact-span
        scores, with the exact-match counts in ``micro avg`` (``entity_report`` of
        :meth:`parley.nlu.evaluation.NLUReport.as_dict`)."""
        confusions = self.confusions()
        out: dict[str, Any] = {name: {**s.as_dict(), "confused_with": confusions.get(name, {})}
                               for name, s in self.types.items()}
        out["micro avg"] = {"precision": self.precision, "recall": self.recall,
                            "f1-score": self.f1, "support": self.n_gold,
                            "predicted": self.n_predicted, "correct": self.n_correct}
        scores = list(self.types.values())
        out["macro avg"] = {
            "precision": float(np.mean([s.precision for s in scores])) if scores else 0.0,
            "recall": float(np.mean([s.recall for s in scores])) if scores else 0.0,
            "f1-score": float(np.mean([s.f1 for s in scores])) if scores else 0.0,
            "support": self.n_gold,
        }
        out["weighted avg"] = {"precision": self.weighted_precision,
                               "recall": self._weighted("recall"),
                               "f1-score": self.weighted_f1, "support": self.n_gold}
        return out

    def errors_as_dicts(self) -> list[dict[str, Any]]:
        """Rasa's ``<extractor>_errors.json`` shape."""
        return [e.as_dict() for e in self.errors]

    def successes_as_dicts(self) -> list[dict[str, Any]]:
        """Rasa's ``<extractor>_successes.json`` shape."""
        return [e.as_dict() for e in self.successes]


def entity_label(entity: Entity | dict[str, Any]) -> str:
    """Rasa's concatenated label: ``city``, ``city.destination``, ``city.1.destination``."""
    if isinstance(entity, Entity):
        parts = [entity.entity, entity.group, entity.role]
    else:
        parts = [entity["entity"], entity.get("group"), entity.get("role")]
    return ".".join(str(p) for p in parts if p is not None)


def _span_pairs(gold: Sequence[Entity | dict[str, Any]],
                predicted: Sequence[Entity | dict[str, Any]]) -> list[tuple[str, str]]:
    """Each gold entity against the prediction on the same characters (or no_entity),
    then each prediction on characters no gold entity covers."""
    spans: dict[tuple[int, int], list[str]] = {}
    for entity in predicted:
        start, end = _entity_key(entity)[:2]
        spans.setdefault((start, end), []).append(entity_label(entity))
    pairs = []
    for entity in gold:
        start, end = _entity_key(entity)[:2]
        waiting = spans.get((start, end)) or []
        pairs.append((entity_label(entity), waiting.pop(0) if waiting else NO_ENTITY))
    pairs.extend((NO_ENTITY, label) for labels in spans.values() for label in labels)
    return pairs


def entity_report(texts: Sequence[str], gold: Sequence[Sequence[Entity | dict[str, Any]]],
                  predicted: Sequence[Sequence[Entity | dict[str, Any]]]) -> EntityReport:
    """Match each message's predictions to its gold entities (multiset, exact keys)."""
    tp: Counter[str] = Counter()
    n_gold: Counter[str] = Counter()
    n_pred: Counter[str] = Counter()
    errors, successes = [], []
    pairs: list[tuple[str, str]] = []
    confidences: list[tuple[float | None, bool]] = []
    for text, gold_entities, predicted_entities in zip(texts, gold, predicted, strict=True):
        unmatched = Counter(_entity_key(e) for e in gold_entities)
        n_gold.update(key[2] for key in unmatched.elements())
        all_right = True
        for entity in predicted_entities:
            key = _entity_key(entity)
            n_pred[key[2]] += 1
            right = unmatched[key] > 0
            if right:
                unmatched[key] -= 1
                tp[key[2]] += 1
            else:
                all_right = False
            confidences.append((entity_dict(entity).get("confidence_entity"), right))
        pairs.extend(_span_pairs(gold_entities, predicted_entities))
        compared = EntityError(text, [entity_dict(e) for e in gold_entities],
                               [entity_dict(e) for e in predicted_entities])
        if not all_right or any(unmatched.values()):
            errors.append(compared)
        elif gold_entities:
            successes.append(compared)
    types = {}
    for name in sorted(set(n_gold) | set(n_pred)):
        precision = tp[name] / n_pred[name] if n_pred[name] else 0.0
        recall = tp[name] / n_gold[name] if n_gold[name] else 0.0
        f1 = 2 * tp[name] / (n_gold[name] + n_pred[name])
        types[name] = Scores(precision, recall, f1, n_gold[name])
    return EntityReport(sum(n_gold.values()), sum(n_pred.values()), sum(tp.values()), types,
                        errors, successes, pairs, confidences)


def entity_extractors(components: Iterable[Any]) -> list[str]:
    """The names of the pipeline's trained entity extractors, in pipeline order, as Rasa
    picks them: components that provide entities, not the synonym mapper, not a pretrained
    extractor, not a DIETClassifier told ``entity_recognition: false``."""
    names: list[str] = []
    for component in components:
        name = getattr(type(component), "name", "") or type(component).__name__
        if (ENTITIES not in getattr(type(component), "provides", ())
                or getattr(component, "entity_recognition", True) is False
                or name in ENTITY_PROCESSORS or name in PRETRAINED_EXTRACTORS):
            continue
        if name not in names:
            names.append(name)
    return names
