"""PolicyEnsemble: ask every policy, keep the winner as Rasa's DefaultPolicyPredictionEnsemble.

The rules, in Rasa's order:

1. A loop's happy path (``is_no_user_prediction``) outranks every other prediction.
2. Otherwise, among the predictions made from the user's input, an end-to-end one (from
   the user's text) outranks those made from the intent.
3. Among the predictions left, the most confident wins, whatever the priorities.
4. Equal confidence goes to the higher priority (Rasa's defaults: RulePolicy 6,
   MemoizationPolicy 3, UnexpecTEDIntentPolicy 2, TEDPolicy and others 1): rules over
   memoization over machine learning. Equal priority too: the policy listed first.

When the last action was rejected (``ActionExecutionRejected``), no policy may predict it
again. Every policy's ``events`` are kept; the winner's ``optional_events`` too. RulePolicy
gives ``core_fallback_action_name`` the confidence ``core_fallback_threshold`` when no rule
applies, so rule 3 makes it Rasa's core fallback: it wins whenever no policy is more
confident (and on a tie, by priority). Nothing here knows a policy by name: a learned
policy plugs in by returning a :class:`PolicyPrediction` like the others.

The winner's ``reason`` says why it won and, after a colon, the policy's own reason.
Right after a user message, :meth:`PolicyEnsemble.predict` adds Rasa's
``DefinePrevUserUtteredFeaturization`` to the winner's events: whether the message's text
(end-to-end) or its intent was used, which later states of the conversation follow.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from parley.data.domain import Domain
from parley.data.events import (
    ActionExecuted, ActionExecutionRejected, DefinePrevUserUtteredFeaturization, Event,
)
from parley.data.tracker import ACTION_LISTEN, DialogueStateTracker
from parley.dialogue.policies.base import Policy, shared_past_states
from parley.dialogue.policies.prediction import PolicyPrediction
from parley.errors import ConfigError, Issue, NotFittedError

if TYPE_CHECKING:
    from parley.dialogue.featurization.state import TextFeaturizer

__all__ = ["PolicyEnsemble", "pick_best", "same_priority_issues"]

ENSEMBLE_FILE = "ensemble.json"


def pick_best(predictions: Sequence[PolicyPrediction]) -> PolicyPrediction:
    """The winning prediction (see the module docstring), carrying every policy's
    ``events`` and a ``reason`` that says why it won."""
    if not predictions:
        raise ConfigError("no policy made a prediction; configure at least one policy.")
    no_user = any(p.is_no_user_prediction for p in predictions)
    end_to_end = any(p.is_end_to_end_prediction for p in predictions)
    events: list[Event] = []
    eligible: list[int] = []
    for index, prediction in enumerate(predictions):
        events += prediction.events
        if prediction.is_no_user_prediction != no_user:
            continue
        if not no_user and prediction.is_end_to_end_prediction != end_to_end:
            continue
        eligible.append(index)
    # the first one listed wins when confidence and priority are both equal, as in Rasa
    best = max(eligible, key=lambda i: (predictions[i].max_confidence,
                                        predictions[i].policy_priority, -i))
    winner = predictions[best]
    why = _why_it_won(winner, [predictions[i] for i in eligible if i != best],
                      len(eligible) < len(predictions), no_user)
    reason = f"{why}: {winner.reason}" if winner.reason else why
    return replace(winner, events=events + list(winner.optional_events), optional_events=[],
                   reason=reason)


def _why_it_won(winner: PolicyPrediction, rivals: list[PolicyPrediction], outranked: bool,
                no_user: bool) -> str:
    if outranked:
        if no_user:
            return ("a loop's happy path (no user input needed) outranks every other "
                    "prediction")
        return "a prediction from the user's text (end-to-end) outranks those from the intent"
    if not rivals:
        return "the only policy"
    runner_up = max(rivals, key=lambda p: (p.max_confidence, p.policy_priority))
    mine, theirs = winner.max_confidence, runner_up.max_confidence
    if mine > theirs:
        if theirs <= 0.0:
            return "the only policy to predict an action"
        return f"most confident ({mine:.2f}; next {runner_up.policy_name} {theirs:.2f})"
    if mine <= 0.0:
        return "no policy predicted an action"
    if winner.policy_priority > runner_up.policy_priority:
        return (f"as confident as {runner_up.policy_name} ({mine:.2f}) and of higher "
                f"priority ({winner.policy_priority} > {runner_up.policy_priority})")
    return (f"as confident as {runner_up.policy_name} ({mine:.2f}), of the same priority "
            f"({winner.policy_priority}), and listed first")


def rejected_action(tracker: DialogueStateTracker) -> str | None:
    """The action rejected last, if no action ran since (Rasa looks past other events)."""
    for event in reversed(tracker.events):
        if isinstance(event, ActionExecutionRejected):
            return event.action_name
        if isinstance(event, ActionExecuted):
            return None
    return None


def same_priority_issues(policies: Sequence[tuple[str, int, str | None, int | None]]
                         ) -> list[Issue]:
    """A warning per priority shared by several policies (name, priority, file, line), as
    Rasa gives: on equal confidence the one listed first wins, which is seldom meant."""
    by_priority: defaultdict[int, list[tuple[str, str | None, int | None]]] = defaultdict(list)
    for name, priority, file, line in policies:
        by_priority[priority].append((name, file, line))
    issues = []
    for priority, entries in by_priority.items():
        if len(entries) > 1:
            names = ", ".join(f"'{name}'" for name, _, _ in entries)
            _, file, line = entries[1]
            issues.append(Issue("warning", (
                f"the policies {names} have the same priority {priority}; when they are "
                "equally confident the one listed first wins. Give each policy its own "
                "priority."), file, line))
    return issues


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

    def predictions(self, tracker: DialogueStateTracker, domain: Domain,
                    featurize: TextFeaturizer | None = None) -> list[PolicyPrediction]:
        """Each policy's own prediction, in configuration order; ``featurize`` reads the
        conversation's texts for policies that use them (end-to-end)."""
        rule_only = self._rule_only_data()
        with shared_past_states():
            predictions: list[PolicyPrediction] = [
                p.predict_with_texts(tracker, domain, rule_only, featurize)
                if p.uses_text_features
                else p.predict(tracker, domain, rule_only_data=rule_only)
                for p in self.policies]
        rejected = rejected_action(tracker)
        if rejected in domain.action_names:
            index = domain.action_names.index(rejected)
            for prediction in predictions:
                prediction.probabilities[index] = 0.0
        return predictions

    def predict(self, tracker: DialogueStateTracker, domain: Domain,
                featurize: TextFeaturizer | None = None) -> PolicyPrediction:
        """The winner; right after a user message its events also say whether it was
        chosen from the message's text or intent (``DefinePrevUserUtteredFeaturization``),
        so that later states show the message the way it was used, as in Rasa."""
        winner = pick_best(self.predictions(tracker, domain, featurize))
        if tracker.latest_action_name == ACTION_LISTEN:
            winner.events.append(
                DefinePrevUserUtteredFeaturization(winner.is_end_to_end_prediction))
        return winner

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
