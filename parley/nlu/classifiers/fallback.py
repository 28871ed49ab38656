"""FallbackClassifier: predicts ``nlu_fallback`` when the intent prediction is unsure."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from parley.component import INTENT, StatelessNLUComponent
from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.nlu.classifiers._output import FALLBACK_INTENT, INTENT_KEY, INTENT_RANKING_KEY
from parley.params import Constraint, Float

if TYPE_CHECKING:
    from typing import Self


class FallbackClassifier(StatelessNLUComponent):
    """Replaces an unsure intent with ``nlu_fallback``, as Rasa does.

    Unsure means the top confidence is below ``threshold`` (a message without a predicted
    intent counts as confidence 0), or the top two of the ranking are less than
    ``ambiguity_threshold`` apart. The intent becomes ``{"name": "nlu_fallback",
    "confidence": threshold}`` and the same entry is put first in the ranking.
    """

    name = "FallbackClassifier"
    prepares_training_data = False
    needs = (INTENT,)
    provides = (INTENT,)

    param_constraints: ClassVar[dict[str, Constraint]] = {
        "threshold": Float(0, 1),
        "ambiguity_threshold": Float(0, 1),
    }

    def __init__(self, *, threshold: float = 0.3, ambiguity_threshold: float = 0.1) -> None:
        self.threshold = threshold
        self.ambiguity_threshold = ambiguity_threshold

    def fit(self, training_data: TrainingData) -> Self:
        self.check_params()
        self.fitted_ = True
        return self

    def should_fall_back(self, message: Message) -> bool:
        intent = message.data.get(INTENT_KEY) or {}
        confidence = intent.get("confidence") or 0.0
        if confidence < self.threshold:
            return True
        ranking = message.data.get(INTENT_RANKING_KEY) or []
        if len(ranking) >= 2:
            gap = ranking[0].get("confidence", 1.0) - ranking[1].get("confidence", 1.0)
            return bool(gap < self.ambiguity_threshold)
        return False

    def process(self, messages: list[Message]) -> None:
        self.check_is_fitted()
        for message in messages:
            if not self.should_fall_back(message):
                continue
            fallback: dict[str, Any] = {"name": FALLBACK_INTENT, "confidence": self.threshold}
            message.data[INTENT_KEY] = fallback
            message.data.setdefault(INTENT_RANKING_KEY, []).insert(0, dict(fallback))
