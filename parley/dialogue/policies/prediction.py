"""What a policy predicts: a probability for every action of the domain."""

from __future__ import annotations

from dataclasses import dataclass, field

from parley.data.domain import Domain
from parley.data.events import Event

__all__ = ["PolicyPrediction"]


@dataclass
class PolicyPrediction:
    """Probabilities over ``domain.action_names`` (Rasa's order) from one policy.

    ``events`` are applied before the predicted action runs whichever policy wins
    (Rasa's rule: a policy may always add events); ``optional_events`` only if this
    prediction wins. ``is_no_user_prediction`` (a loop's happy path) and
    ``is_end_to_end_prediction`` outrank predictions from user intents in the ensemble.
    ``hide_rule_turn`` marks a turn only rules know, which story-trained policies skip.
    ``reason`` says in a few words why the policy predicts this ("no story has this
    history"); the ensemble's winner adds why it won over the other policies.
    """

    probabilities: list[float]
    policy_name: str
    policy_priority: int = 1
    events: list[Event] = field(default_factory=list)
    optional_events: list[Event] = field(default_factory=list)
    is_end_to_end_prediction: bool = False
    is_no_user_prediction: bool = False
    hide_rule_turn: bool = False
    reason: str = ""

    @property
    def max_confidence(self) -> float:
        return max(self.probabilities, default=0.0)

    @property
    def max_confidence_index(self) -> int:
        """Index of the most probable action (the first one on ties), -1 if none."""
        if not self.probabilities:
            return -1
        return self.probabilities.index(self.max_confidence)

    def action_name(self, domain: Domain) -> str | None:
        """The predicted action, or None when the policy has no opinion (all zero)."""
        if self.max_confidence <= 0.0:
            return None
        return domain.action_names[self.max_confidence_index]

    def confidence_of(self, action: str, domain: Domain) -> float:
        return self.probabilities[domain.action_names.index(action)]
