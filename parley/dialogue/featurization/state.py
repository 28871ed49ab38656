"""Rasa's single-state featurizer: one dialogue state → a vector per attribute.

The attributes and what each holds, as in Rasa's ``SingleStateFeaturizer``:

- ``intent``: one-hot over the domain's intents (Rasa's defaults included);
- ``text``: the user's text, by the text features given (end-to-end turns);
- ``entities``: multi-hot over the entity labels the domain knows (``city``,
  ``city#from`` for roles and groups); the state already holds only those its intent
  uses (``use_entities`` / ``ignore_entities``);
- ``action_name``: one-hot over the domain's actions; ``action_text``: the bot's text, by
  the text features;
- ``slots``: each slot that influences the conversation, featurized by its type (see
  :func:`parley.data.tracker.slot_features`), side by side in domain order;
- ``active_loop``: one-hot over the domain's forms.

Intents and action names are one-hot, as Rasa's are when the NLU pipeline's featurizers
give them one token each (the usual case). Text features are optional: a
:class:`TextFeatures` maps each text to a vector (the NLU pipeline's sentence features,
handed in by the training layer); a text it lacks gets zeros.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from parley.data.domain import Domain
from parley.data.tracker import (
    ACTIVE_LOOP, PREVIOUS_ACTION, SHOULD_NOT_BE_SET, SLOTS, USER, DomainView, State,
)

__all__ = ["ATTRIBUTES", "StateFeaturizer", "TextFeatures", "TextFeaturizer", "TextTokens",
           "last_user_text", "shown_texts"]

INTENT = "intent"
TEXT = "text"
ENTITIES = "entities"
ACTION_NAME = "action_name"
ACTION_TEXT = "action_text"
# Every attribute a state can have, in the order the model concatenates them.
ATTRIBUTES = (INTENT, TEXT, ENTITIES, ACTION_NAME, ACTION_TEXT, SLOTS, ACTIVE_LOOP)


@dataclass(frozen=True)
class TextTokens:
    """A text's tokens as a policy that tags entities needs them: each token's character
    offsets (``spans``) and its features (``features``: tokens × width, the featurizers'
    sequence features side by side, dense)."""

    spans: tuple[tuple[int, int], ...]
    features: np.ndarray


@dataclass
class TextFeatures:
    """What the NLU pipeline's featurizers make of texts (user messages and bot utterances
    of end-to-end stories), as plain arrays: the dialogue side never sees NLU's types.

    ``vectors``: a sentence vector per text, ``dim`` wide (the featurizers' sentence
    features side by side). ``tokens``: for the texts asked with ``tokens=True`` (user
    texts whose entities TEDPolicy learns to tag), their :class:`TextTokens`. Made by the
    layers above (training for the stories' texts, the loaded model for each new message);
    see :class:`TextFeaturizer`.
    """

    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    dim: int = 0
    tokens: dict[str, TextTokens] = field(default_factory=dict)

    def get(self, text: str) -> np.ndarray:
        found = self.vectors.get(text)
        return found if found is not None else np.zeros(self.dim, dtype=np.float32)

    def __contains__(self, text: object) -> bool:
        return text in self.vectors

    def __bool__(self) -> bool:
        return self.dim > 0

    def merged(self, other: TextFeatures | None) -> TextFeatures:
        """These features and ``other``'s (which must be as wide) for texts not here."""
        if not other or not (other.vectors or other.tokens):
            return self
        if self.dim and other.dim != self.dim:
            raise ValueError(f"text features {other.dim} wide do not fit {self.dim}: the NLU "
                             "pipeline that made them is not the one the policy learned with")
        return TextFeatures({**other.vectors, **self.vectors}, self.dim or other.dim,
                            {**other.tokens, **self.tokens})

    def only(self, texts: Iterable[str]) -> TextFeatures:
        """The features of ``texts`` alone (those known)."""
        wanted = list(dict.fromkeys(texts))
        return TextFeatures({t: self.vectors[t] for t in wanted if t in self.vectors}, self.dim,
                            {t: self.tokens[t] for t in wanted if t in self.tokens})


class TextFeaturizer(Protocol):
    """Texts → their :class:`TextFeatures`, by the NLU pipeline's tokenizers and
    featurizers (only those named in ``featurizers``, when given; all for None or ``[]``);
    with ``tokens``, each text's :class:`TextTokens` too. The serving and training layers
    implement it; policies call it for texts they have not seen (a new user message)."""

    def __call__(self, texts: Sequence[str], featurizers: Sequence[str] | None = None,
                 tokens: bool = False) -> TextFeatures: ...


@dataclass
class StateFeaturizer:
    """The vocabularies of each attribute, from a domain (see the module docstring)."""

    intents: list[str]
    actions: list[str]
    entities: list[str]
    slots: list[tuple[str, int]]  # (slot, width of its features), in domain order
    loops: list[str]
    text_dim: int = 0  # width of the text features; 0 without end-to-end texts

    @classmethod
    def from_domain(cls, domain: Domain, text_dim: int = 0) -> StateFeaturizer:
        view = DomainView(domain)
        entities: set[str] = set()
        for intent in domain.intent_names:
            entities.update(view.used_entities(intent))
        slots = [(slot.name, len(view.features(slot, None))) for slot in view.featurized_slots]
        return cls(list(domain.intent_names), list(domain.action_names), sorted(entities),
                   [(name, width) for name, width in slots if width], list(domain.form_names),
                   text_dim)

    def widths(self) -> dict[str, int]:
        """Each attribute's vector width (0: the attribute is never featurized)."""
        return {INTENT: len(self.intents), TEXT: self.text_dim, ENTITIES: len(self.entities),
                ACTION_NAME: len(self.actions), ACTION_TEXT: self.text_dim,
                SLOTS: sum(width for _, width in self.slots), ACTIVE_LOOP: len(self.loops)}

    def encode(self, states: Sequence[State], texts: TextFeatures | None = None
               ) -> dict[str, np.ndarray]:
        """Each attribute's vectors of ``states`` (rows in order); what a state lacks is zeros,
        and so are names the vocabularies do not know (a model trained on another domain)."""
        widths = self.widths()
        out = {a: np.zeros((len(states), w), dtype=np.float32) for a, w in widths.items() if w}
        index = {INTENT: _positions(self.intents), ACTION_NAME: _positions(self.actions),
                 ENTITIES: _positions(self.entities), ACTIVE_LOOP: _positions(self.loops)}
        offsets: dict[str, tuple[int, int]] = {}
        start = 0
        for name, width in self.slots:
            offsets[name] = (start, width)
            start += width
        for row, state in enumerate(states):
            user = state.get(USER, {})
            action = state.get(PREVIOUS_ACTION, {})
            _one(out, INTENT, row, index[INTENT].get(user.get(INTENT)))
            for label in user.get(ENTITIES, ()):
                _one(out, ENTITIES, row, index[ENTITIES].get(label))
            _one(out, ACTION_NAME, row, index[ACTION_NAME].get(
                action.get(ACTION_NAME) or action.get(ACTION_TEXT)))
            _one(out, ACTIVE_LOOP, row, index[ACTIVE_LOOP].get(state.get(ACTIVE_LOOP, {}).get("name")))
            for name, value in state.get(SLOTS, {}).items():
                if name in offsets and value != SHOULD_NOT_BE_SET:
                    begin, width = offsets[name]
                    values = np.asarray(value, dtype=np.float32)[:width]
                    out[SLOTS][row, begin:begin + len(values)] = values
            if texts and self.text_dim:
                if user.get(TEXT) and not user.get(INTENT):
                    out[TEXT][row] = texts.get(user[TEXT])
                if action.get(ACTION_TEXT):
                    out[ACTION_TEXT][row] = texts.get(action[ACTION_TEXT])
        return out

    def encode_labels(self, texts: TextFeatures | None = None) -> dict[str, np.ndarray]:
        """The features of every action as a label: its name one-hot, and for the bot
        texts of end-to-end stories (actions named by their text) their text features."""
        out = {ACTION_NAME: np.eye(len(self.actions), dtype=np.float32)}
        if texts and self.text_dim:
            out[ACTION_TEXT] = np.stack([texts.get(a) for a in self.actions])
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"intents": self.intents, "actions": self.actions, "entities": self.entities,
                "slots": [list(s) for s in self.slots], "loops": self.loops,
                "text_dim": self.text_dim}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StateFeaturizer:
        return cls([str(x) for x in data["intents"]], [str(x) for x in data["actions"]],
                   [str(x) for x in data["entities"]],
                   [(str(n), int(w)) for n, w in data["slots"]], [str(x) for x in data["loops"]],
                   int(data["text_dim"]))


def shown_texts(states: Sequence[State]) -> tuple[list[str], bool, bool]:
    """The texts ``states`` show (user texts of turns without an intent, bot texts), each
    once in order; whether some user turn shows its text; whether some shows an intent."""
    texts: dict[str, None] = {}
    by_text = by_intent = False
    for state in states:
        user = state.get(USER, {})
        if user.get(INTENT):
            by_intent = True
        elif user.get(TEXT):
            by_text = True
            texts.setdefault(user[TEXT])
        if state.get(PREVIOUS_ACTION, {}).get(ACTION_TEXT):
            texts.setdefault(state[PREVIOUS_ACTION][ACTION_TEXT])
    return list(texts), by_text, by_intent


def last_user_text(states: Sequence[State]) -> str | None:
    """The latest state's user text, when it shows its text (not its intent)."""
    user = states[-1].get(USER, {}) if states else {}
    return None if user.get(INTENT) else user.get(TEXT)


def _positions(names: list[str]) -> dict[Any, int]:
    return {name: i for i, name in enumerate(names)}


def _one(out: dict[str, np.ndarray], attribute: str, row: int, column: int | None) -> None:
    if column is not None and attribute in out:
        out[attribute][row, column] = 1.0
