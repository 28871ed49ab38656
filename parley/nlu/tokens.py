"""The token a tokenizer writes into ``message.data["tokens"]``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Token:
    """A piece of a text; ``start``/``end`` are character offsets into that text."""

    text: str
    start: int
    end: int


_new = object.__new__


def make_token(text: str, start: int, end: int) -> Token:
    """``Token(text, start, end)`` at less than half the cost: the frozen dataclass's
    ``__init__`` sets each field through ``object.__setattr__``, a tenth of a parse's
    tokenizing; the fields go straight into the instance dict here (equal, hashed and
    printed as any Token)."""
    token = _new(Token)
    fields = token.__dict__
    fields["text"] = text
    fields["start"] = start
    fields["end"] = end
    return token
