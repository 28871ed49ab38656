"""What the featurizers need from the tokenizer's output."""

from __future__ import annotations

from collections.abc import Sequence, Sized

import numpy as np

from parley.data.message import Message
from parley.errors import ConfigError
from parley.nlu.tokenizers.whitespace import TOKENS_KEY
from parley.nlu.tokens import Token


def tokens_of(messages: Sequence[Message], component: str) -> list[list[Token]]:
    """Each message's tokens; a clear error when no tokenizer ran before ``component``."""
    result = []
    for message in messages:
        tokens = message.data.get(TOKENS_KEY)
        if tokens is None:
            raise ConfigError(
                f"{component} needs tokens, but the message {message.text!r} has none; "
                "put a tokenizer (e.g. WhitespaceTokenizer) before it in the pipeline."
            )
        result.append(tokens)
    return result


def token_offsets(all_tokens: Sequence[Sized]) -> np.ndarray:
    """Row offsets of each message's tokens in a matrix of all tokens of the batch."""
    offsets = np.zeros(len(all_tokens) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in all_tokens], out=offsets[1:])
    return offsets
