"""PolicyEnsemble: ask every policy, keep the winner as Rasa does.

The winner is the most confident prediction; equal confidences go to the higher
priority. Two kinds of prediction outrank the rest whatever their confidence: a loop's
happy path (``is_no_user_prediction``) and, among predictions from the user's input, an
end-to-end one. When the last event rejected an action, no policy may predict it again.
Every policy's ``events`` are kept; the winner's ``optional_events`` too. With RulePolicy
in the ensemble, its fallback (``core_fallback_threshold`` on ``core_fallback_action_name``)
wins whenever no policy is more confident: that is Rasa's core fallback.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from parley.data.domain import Domain
from parley.data.events import ActionExecutionRejected, Event
from parley.data.tracker import DialogueStateTracker
from parley.dialogue.policies.base import Policy
from parley.dialogue.policies.prediction import PolicyPrediction
from parley.errors import ConfigError, NotFittedError

__all__ = ["PolicyEnsemble", "pick_best"]

ENSEMBLE_FILE = "ensemble.json"


def pick_best(predictions: Sequence[PolicyPrediction]) -> PolicyPrediction:
    """The winning prediction, carrying every policy's ``events``."""
    if not predictions:
        raise ConfigError("no policy made a prediction; configure at least one policy.")
    no_user = any(p.is_no_user_prediction for p in predictions)
    end_to_end = any(p.is_end_to_end_prediction for p in predictions)
    events: list[Event] = []
    best_index, best = 0, (-1.0, -1)
    for index, prediction in enumerate(predictions):
        events += prediction.events
        if prediction.is_no_user_prediction != no_user:
            continue
        if not no_user and prediction.is_end_to_end_prediction != end_to_end:
            continue
        score = (prediction.max_confidence, prediction.policy_priority)
        if score > best:
            best_index, best = index, score
    winner = predictions[best_index]
    return replace(winner, events=events + list(winner.optional_events), optional_events=[],
                   is_no_user_prediction=no_user, is_end_to_end_prediction=end_to_end)


class PolicyEnsemble:
    """The configured policies, trained and asked together."""

    def __init__(self, policies: Sequence[Policy]) -> None:
        self.policies = list(policies)

    def fit(self, trackers: Sequence[DialogueStateTracker], domain: Domain) -> PolicyEnsemble:
        for policy in self.policies:
            policy.fit(trackers, domain)
        return self

    def _rule_only_data(self) -> dict[str, Any] | None:
        for policy in self.policies:
            data = policy.rule_only_data()
            if data is not None:
                return data
        return None

    def predictions(self, tracker: DialogueStateTracker,
                    domain: Domain) -> list[PolicyPrediction]:
        """Each policy's own prediction, in configuration order."""
        rule_only = self._rule_only_data()
        predictions: list[PolicyPrediction] = [
            p.predict(tracker, domain, rule_only_data=rule_only) for p in self.policies]
        last = tracker.events[-1] if tracker.events else None
        if isinstance(last, ActionExecutionRejected) and last.action_name in domain.action_names:
            rejected = domain.action_names.index(last.action_name)
            for prediction in predictions:
                prediction.probabilities[rejected] = 0.0
        return predictions

    def predict(self, tracker: DialogueStateTracker, domain: Domain) -> PolicyPrediction:
        return pick_best(self.predictions(tracker, domain))

    def save(self, directory: str | Path) -> None:
        """Each policy in ``<index>_<name>/``, listed in ``ensemble.json``."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        entries = []
        for index, policy in enumerate(self.policies):
            sub = f"{index}_{policy.name}"
            policy.save(path / sub)
            entries.append({"name": policy.name, "directory": sub})
        (path / ENSEMBLE_FILE).write_text(json.dumps({"policies": entries}, indent=1))

    @classmethod
    def load(cls, directory: str | Path) -> PolicyEnsemble:
        from parley.registry import POLICY, get_class

        path = Path(directory)
        if not (path / ENSEMBLE_FILE).is_file():
            raise NotFittedError(f"{path} holds no trained policies ({ENSEMBLE_FILE} missing).")
        entries = json.loads((path / ENSEMBLE_FILE).read_text())["policies"]
        # get_class(…, POLICY) returns Policy subclasses only (the registry checks the kind).
        return cls([cast(Policy, get_class(e["name"], POLICY).load(path / e["directory"]))
                    for e in entries])
