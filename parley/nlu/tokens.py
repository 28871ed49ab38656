"""The token a tokenizer writes into ``message.data["tokens"]``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Token:
    """A piece of a text; ``start``/``end`` are character offsets into that text."""

    text: str
    start: int
    end: int
