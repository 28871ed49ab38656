"""The intent keys classifiers write, in Rasa's parse shape."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from parley.data.message import Message

INTENT_KEY = "intent"
INTENT_RANKING_KEY = "intent_ranking"
FALLBACK_INTENT = "nlu_fallback"
# Rasa's default: report the 10 most likely intents; 0 reports all.
LABEL_RANKING_LENGTH = 10


def write_intent_rankings(messages: Sequence[Message], probabilities: np.ndarray,
                          classes: Sequence[str], ranking_length: int) -> None:
    """Write each message's ``intent`` and ``intent_ranking`` (most likely first, the top
    ``ranking_length``; 0 keeps all) from one row of class probabilities per message."""
    order = np.argsort(-probabilities, axis=1, kind="stable")
    if ranking_length > 0:
        order = order[:, :ranking_length]
    for message, p, ranked in zip(messages, probabilities.tolist(), order.tolist(), strict=True):
        ranking: list[dict[str, Any]] = [
            {"name": classes[j], "confidence": p[j]} for j in ranked
        ]
        message.data[INTENT_KEY] = dict(ranking[0])
        message.data[INTENT_RANKING_KEY] = ranking
