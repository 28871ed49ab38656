"""The per-label scores every NLU report shares (intents, responses, entity types)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CONFUSIONS_SHOWN", "Scores"]

CONFUSIONS_SHOWN = 3  # the most frequent wrong predictions a report names per label


@dataclass(frozen=True)
class Scores:
    """Precision, recall and F1 of one label; ``support`` = how often it is gold."""

    precision: float
    recall: float
    f1: float
    support: int

    def as_dict(self) -> dict[str, Any]:
        """scikit-learn's ``classification_report`` keys, as Rasa writes them."""
        return {"precision": self.precision, "recall": self.recall, "f1-score": self.f1,
                "support": self.support}
