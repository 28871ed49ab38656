"""Entities as one tag per token and back: what sequence taggers (DIET, CRF) learn and predict.

With ``bilou=True`` a tag says where in the entity a token sits — ``B-`` begins, ``I-`` is
inside, ``L-`` is last, ``U-`` a one-token entity — so two entities of the same type next to
each other stay apart; without it a tag is the bare label and neighbouring tokens with the
same label merge. ``O`` marks tokens outside every entity. Roles and groups are tagged the
same way over the entity's tokens, each by its own tagger.

Shared by the NLU taggers (DIET, CRFEntityExtractor) and TEDPolicy's entity recognition on
end-to-end user texts, so it lives below both: a token is anything with character offsets
(``start``, ``end``), an entity anything with ``start``, ``end`` and the attribute tagged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Token(Protocol):
    """Where a token lies in its text (an NLU token, or a :class:`Span`)."""

    @property
    def start(self) -> int: ...

    @property
    def end(self) -> int: ...


class TaggedEntity(Protocol):
    """An annotated entity: its characters; ``entity``/``role``/``group`` read by name."""

    @property
    def start(self) -> int: ...

    @property
    def end(self) -> int: ...


class HasEntities(Protocol):
    @property
    def entities(self) -> Sequence[Any]: ...


@dataclass(frozen=True)
class Span:
    """A token's character offsets, where the token itself is not at hand (TEDPolicy keeps
    only these of the user texts it learned from)."""

    start: int
    end: int

NO_ENTITY = "O"
BILOU_PREFIXES = ("B-", "I-", "L-", "U-")
ATTRIBUTES = ("entity", "role", "group")


def label_of(tag: str) -> str:
    """``city`` for ``B-city`` (and for ``city``); ``O`` stays ``O``."""
    return tag[2:] if tag[:2] in BILOU_PREFIXES else tag


def covered_tokens(entity: TaggedEntity, tokens: Sequence[Token]) -> list[int]:
    """Indices of the tokens that overlap the entity's characters."""
    return [i for i, t in enumerate(tokens) if t.start < entity.end and t.end > entity.start]


def token_tags(message: HasEntities, tokens: Sequence[Token], attribute: str = "entity",
               bilou: bool = True) -> list[str]:
    """One tag per token for the message's annotated entities (``attribute``: entity,
    role or group; tokens of an entity without that attribute are ``O``).

    A token holds one tag: an entity that shares a token with one tagged before it is left
    out, so the tags always form whole BILOU spans (which :func:`bilou_moves` relies on).
    """
    tags = [NO_ENTITY] * len(tokens)
    for entity in message.entities:
        label = getattr(entity, attribute)
        if label is None:
            continue
        span = covered_tokens(entity, tokens)
        if not span or any(tags[i] != NO_ENTITY for i in span):
            continue
        if not bilou:
            for i in span:
                tags[i] = label
        elif len(span) == 1:
            tags[span[0]] = f"U-{label}"
        else:
            tags[span[0]] = f"B-{label}"
            for i in span[1:-1]:
                tags[i] = f"I-{label}"
            tags[span[-1]] = f"L-{label}"
    return tags


def tag_spans(tags: Sequence[str], bilou: bool = True) -> list[tuple[int, int, str]]:
    """``(first, last, label)`` token spans of the entities in a tag sequence.

    Predicted BILOU sequences are not always well formed; like Rasa, a span runs from a
    ``B-`` (or a stray ``I-``/``L-``) to its ``L-`` or the next ``O``/``B-``/``U-``, and takes
    the most common label among its tokens. Without BILOU a span is a run of one label.
    """
    spans: list[tuple[int, int, str]] = []
    start: int | None = None  # the open span's first token
    # (one loop without a closure: a parse runs this for every message)
    for i, tag in enumerate(tags):
        if tag == NO_ENTITY:
            if start is not None:
                spans.append(_span(tags, start, i - 1))
                start = None
        elif not bilou:
            if start is not None and label_of(tags[i - 1]) != tag:
                spans.append(_span(tags, start, i - 1))
                start = None
            if start is None:
                start = i
        elif tag[:2] in ("B-", "U-"):
            if start is not None:
                spans.append(_span(tags, start, i - 1))
            start = i
            if tag[:2] == "U-":
                spans.append(_span(tags, i, i))
                start = None
        else:  # I-, L- (or a bare label): continue the open span, or open one
            if start is None:
                start = i
            if tag[:2] == "L-":
                spans.append(_span(tags, start, i))
                start = None
    if start is not None:
        spans.append(_span(tags, start, len(tags) - 1))
    return spans


def bilou_moves(names: Sequence[str]) -> tuple[list[list[bool]], list[bool], list[bool]]:
    """Which BILOU tag may follow which (``allowed[i][j]``: ``names[j]`` after ``names[i]``),
    which may open a sequence and which may close it: inside an entity only ``I-`` or ``L-``
    of its own label follow ``B-``/``I-``; after ``O``, ``L-`` or ``U-`` comes ``O``, ``B-`` or
    ``U-``. Other names (a bare label) move freely."""
    def opens(name: str) -> bool:
        return name == NO_ENTITY or name[:2] in ("B-", "U-") or name[:2] not in BILOU_PREFIXES

    def closes(name: str) -> bool:
        return name == NO_ENTITY or name[:2] in ("L-", "U-") or name[:2] not in BILOU_PREFIXES

    def follows(before: str, after: str) -> bool:
        if before[:2] in ("B-", "I-"):
            return after[:2] in ("I-", "L-") and label_of(after) == label_of(before)
        return opens(after)

    allowed = [[follows(a, b) for b in names] for a in names]
    return allowed, [opens(n) for n in names], [closes(n) for n in names]


def _span(tags: Sequence[str], first: int, last: int) -> tuple[int, int, str]:
    labels = [label_of(t) for t in tags[first:last + 1]]
    if labels.count(labels[0]) == len(labels):  # one label (nearly always): no vote
        return first, last, labels[0]
    counts = Counter(labels)
    label = max(counts, key=lambda lab: (counts[lab], -_first_index(tags, first, lab)))
    return first, last, label


def _first_index(tags: Sequence[str], first: int, label: str) -> int:
    return next(i for i, t in enumerate(tags[first:]) if label_of(t) == label)


def decode_entities(
    text: str,
    tokens: Sequence[Token],
    tags: Mapping[str, Sequence[str]],
    confidences: Mapping[str, Sequence[float]] | None = None,
    bilou: bool = True,
    extractor: str = "",
    split_by_comma: Callable[[str], bool] | None = None,
) -> list[dict[str, Any]]:
    """Rasa entity dicts from per-token tags: ``tags["entity"]`` gives the spans,
    ``tags["role"]``/``tags["group"]`` (optional) the most common role/group inside each.

    ``confidences[attribute]`` holds one probability per token; an entity's confidence is
    the mean over its tokens (``confidence_entity``, ``confidence_role``, …).
    ``split_by_comma(label)`` true: an entity of that type is cut where a comma stands
    between two of its tokens ("paris, rome" → two entities), as Rasa's
    ``split_entities_by_comma`` does.
    """
    confidences = confidences or {}
    entities = []
    spans = tag_spans(tags["entity"], bilou)
    if split_by_comma is not None:
        spans = [piece for span in spans for piece in _split_at_commas(span, text, tokens, split_by_comma)]
    for first, last, label in spans:
        start, end = tokens[first].start, tokens[last].end
        entity: dict[str, Any] = {"entity": label, "start": start, "end": end,
                                  "value": text[start:end]}
        if "entity" in confidences:
            entity["confidence_entity"] = mean_confidence(confidences["entity"][first:last + 1])
        for attribute in ("role", "group"):
            if attribute not in tags:
                continue
            inner = [label_of(t) for t in tags[attribute][first:last + 1]]
            named = [t for t in inner if t != NO_ENTITY]
            if not named:
                continue
            counts = Counter(named)
            entity[attribute] = max(counts, key=lambda lab: (counts[lab], -named.index(lab)))
            if attribute in confidences:
                entity[f"confidence_{attribute}"] = mean_confidence(confidences[attribute][first:last + 1])
        if extractor:
            entity["extractor"] = extractor
        entities.append(entity)
    return entities


def _split_at_commas(span: tuple[int, int, str], text: str, tokens: Sequence[Token],
                     split: Callable[[str], bool]) -> list[tuple[int, int, str]]:
    first, last, label = span
    if not split(label):
        return [span]
    pieces, start = [], first
    for i in range(first, last):
        between = text[tokens[i].start:tokens[i + 1].start]
        if "," in between:
            pieces.append((start, i, label))
            start = i + 1
    pieces.append((start, last, label))
    return pieces


def comma_rule(setting: bool | dict[str, bool]) -> Callable[[str], bool]:
    """Rasa's ``split_entities_by_comma``: a flag for all types, or a per-type mapping
    (types not named follow the default, true)."""
    if isinstance(setting, dict):
        return lambda label: bool(setting.get(label, True))
    return lambda label: bool(setting)


def mean_confidence(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if len(values) else 0.0
