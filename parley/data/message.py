"""A user message and its annotations: the unit NLU trains on and predicts for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Retrieval intents are written ``faq/ask_name``: intent ``faq``, response key ``ask_name``.
RESPONSE_KEY_SEPARATOR = "/"
# Multi-intents are written ``greet+ask_name``.
MULTI_INTENT_SEPARATOR = "+"


@dataclass(frozen=True)
class Entity:
    """An entity annotated (or found) in a text; ``start``/``end`` are character offsets."""

    start: int
    end: int
    value: Any
    entity: str
    role: str | None = None
    group: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Rasa's parse JSON shape; role/group only when set."""
        out: dict[str, Any] = {
            "start": self.start, "end": self.end, "value": self.value, "entity": self.entity,
        }
        if self.role is not None:
            out["role"] = self.role
        if self.group is not None:
            out["group"] = self.group
        return out


@dataclass
class Message:
    """A text with its intent and entities.

    ``intent`` is the full label as written (``faq/ask_name`` for retrieval intents);
    ``data`` holds what pipeline components attach (tokens, features, predictions).
    ``file``/``line`` say where a training example came from, for error messages.
    """

    text: str
    intent: str | None = None
    entities: list[Entity] = field(default_factory=list)
    metadata: dict[str, Any] | None = None
    file: str | None = field(default=None, compare=False, repr=False)
    line: int | None = field(default=None, compare=False, repr=False)
    data: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def base_intent(self) -> str | None:
        """``faq`` for ``faq/ask_name``; the intent itself otherwise."""
        if self.intent is None:
            return None
        return self.intent.split(RESPONSE_KEY_SEPARATOR, 1)[0]

    @property
    def response_key(self) -> str | None:
        """``ask_name`` for ``faq/ask_name``; None for ordinary intents."""
        if self.intent is None or RESPONSE_KEY_SEPARATOR not in self.intent:
            return None
        return self.intent.split(RESPONSE_KEY_SEPARATOR, 1)[1]
