"""What all policies share: priorities, prediction vectors, state histories, JSON storage.

The state helpers follow Rasa's ``MaxHistoryTrackerFeaturizer`` without a state
featurizer: a training example is the history of states before an action (the last
``max_history`` of them) labelled with that action; a prediction uses the states now.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Generator
from contextlib import contextmanager
from contextvars import ContextVar
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from parley.component import Component
from parley.data.domain import Domain
from parley.data.events import ActionExecuted
from parley.data.tracker import (
    ACTION_NAME, PREVIOUS_ACTION, USER, DialogueStateTracker, State, prev_action_is_listen,
)
from parley.dialogue.policies.prediction import PolicyPrediction
from parley.errors import ConfigError, DataError

if TYPE_CHECKING:
    from typing import Self

    import numpy as np

    from parley.dialogue.featurization.state import TextFeaturizer

__all__ = [
    "ACTION_UNLIKELY_INTENT", "FinetunablePolicy", "Policy", "action_label",
    "check_actions_in_domain", "feature_key", "is_unlikely_intent_state", "nlu_confidence_score",
    "prediction_states", "state_histories", "training_states_and_labels", "unambiguous_lookup",
]

LOOKUP_FILE = "lookup.json"
# UnexpecTEDIntentPolicy's warning: an action that changes nothing in the conversation.
ACTION_UNLIKELY_INTENT = "action_unlikely_intent"


def feature_key(states: Sequence[State]) -> str:
    """The lookup key of a state history: its JSON with sorted keys."""
    return json.dumps(list(states), sort_keys=True)


def state_histories(
    trackers: Sequence[DialogueStateTracker], domain: Domain, max_history: int | None,
    omit_unset_slots: bool = False,
) -> Iterator[tuple[DialogueStateTracker, ActionExecuted, list[State]]]:
    """Every action of the trackers with the states before it (the last ``max_history``).

    Actions marked ``unpredictable`` (a story's opening action) are left out: nothing
    comes before them to learn from. What the policies learn and what the story conflict
    check compares are these same histories.
    """
    for tracker in trackers:
        states = tracker.past_states(domain, omit_unset_slots=omit_unset_slots)
        index = 0
        for event in tracker.applied_events():
            if not isinstance(event, ActionExecuted):
                continue
            index += 1
            if event.unpredictable:
                continue
            history = states[:index]
            if max_history:
                history = history[-max_history:]
            yield tracker, event, history


def action_label(event: ActionExecuted) -> str:
    """What a policy learns to predict for an action: its name, or its text (``bot:``)."""
    return event.action_name or event.action_text or ""


def training_states_and_labels(
    trackers: Sequence[DialogueStateTracker], domain: Domain, max_history: int | None,
    omit_unset_slots: bool = False, names: list[str] | None = None,
) -> tuple[list[list[State]], list[str]]:
    """Every (state history, next action) example of the trackers, each kept once; with
    ``names``, the name of the tracker (story or rule) each example came from first."""
    seen: set[tuple[str, str]] = set()
    histories: list[list[State]] = []
    labels: list[str] = []
    for tracker, event, history in state_histories(trackers, domain, max_history,
                                                   omit_unset_slots):
        label = action_label(event)
        key = (feature_key(history), label)
        if key in seen:
            continue
        seen.add(key)
        histories.append(history)
        labels.append(label)
        if names is not None:
            names.append(tracker.sender_id)
    return histories, labels


def is_unlikely_intent_state(state: State) -> bool:
    """Whether the state follows ``action_unlikely_intent``."""
    return state.get(PREVIOUS_ACTION, {}).get(ACTION_NAME) == ACTION_UNLIKELY_INTENT


# The past states of the conversation being predicted, shared by the policies of one
# ensemble prediction (see :func:`shared_past_states`): four policies rebuilt them for each
# prediction, a quarter of the moodbot's handle-message time.
_PAST_STATES: ContextVar[dict[tuple[int, int, bool, int], tuple[Any, ...]] | None] = \
    ContextVar("parley_past_states", default=None)


@contextmanager
def shared_past_states() -> Generator[None, None, None]:
    """Within the block, :func:`prediction_states` computes each tracker's past states once
    per set of options. The tracker must not change inside the block; what callers get is
    copied as far as :func:`prediction_states` changes it (the states and their user
    sub-states), and no caller changes anything deeper."""
    token = _PAST_STATES.set({})
    try:
        yield
    finally:
        _PAST_STATES.reset(token)


def prediction_states(
    tracker: DialogueStateTracker, domain: Domain, max_history: int | None,
    use_text_for_last_user_input: bool = False, ignore_rule_only_turns: bool = False,
    rule_only_data: dict[str, Any] | None = None,
) -> list[State]:
    """The states a policy predicts from.

    Earlier user turns show their intent (their text only when there is no intent);
    the latest one shows its text or its intent as asked, as Rasa does. The policies that
    learn from stories only (``ignore_rule_only_turns``; Rasa's ``ML_DATA`` policies:
    memoization, TED, UnexpecTED) also do not see ``action_unlikely_intent``: after that
    warning they predict as if it had not run, as in Rasa. Rules see it.
    """
    memo = _PAST_STATES.get()
    key = (id(tracker), id(domain), ignore_rule_only_turns, id(rule_only_data))
    if memo is not None and key in memo:
        states = memo[key][-1]
    else:
        states = tracker.past_states(domain, ignore_rule_only_turns=ignore_rule_only_turns,
                                     rule_only_data=rule_only_data)
        if memo is not None:
            # Holding the objects keeps their ids from being reused within the block
            # (AugmentedMemoizationPolicy makes and drops trackers as it predicts).
            memo[key] = (tracker, domain, rule_only_data, states)
    if ignore_rule_only_turns:
        states = [s for s in states if not is_unlikely_intent_state(s)]
    if max_history:
        states = states[-max_history:]
    # Only the states and their user sub-states change below: copy those (states may share
    # a user sub-state, past_states substitutes one for another), nothing deeper. A deep
    # copy took a quarter of the moodbot's handle-message time.
    states = [{**state, USER: dict(state[USER])} if USER in state else dict(state)
              for state in states]
    if states and prev_action_is_listen(states[-1]) and USER in states[-1]:
        user = states[-1][USER]
        if use_text_for_last_user_input:
            user.pop("intent", None)
            user.pop("entities", None)
        else:
            user.pop("text", None)
    for state in states:
        user = state.get(USER, {})
        if user.get("intent") and user.get("text"):
            del user["text"]
        if USER in state and not state[USER]:
            del state[USER]
    return states


def unambiguous_lookup(keys: Iterable[str | None], labels: Iterable[str]) -> dict[str, str]:
    """``key → label`` for the keys always followed by the same label.

    A key seen with two different labels is ambiguous and dropped for good, however often
    it comes again; ``None`` keys are skipped. Memoization and rules learn this way.
    """
    lookup: dict[str, str] = {}
    ambiguous: set[str] = set()
    for key, label in zip(keys, labels, strict=True):
        if key is None or key in ambiguous:
            continue
        if key in lookup and lookup[key] != label:
            ambiguous.add(key)
            del lookup[key]
        elif key not in lookup:
            lookup[key] = label
    return lookup


def nlu_confidence_score(tracker: DialogueStateTracker) -> float:
    """The latest intent's NLU confidence, as a policy with ``use_nlu_confidence_as_score``
    scores its prediction: 1 when the intent has none (an external intent, as Rasa stores
    it, or an event posted with a null confidence), as Rasa's default for a missing one."""
    confidence = (tracker.latest_message.intent or {}).get("confidence")
    return 1.0 if confidence is None else float(confidence)


def check_actions_in_domain(labels: Sequence[str], domain: Domain, policy: str) -> None:
    """Training data naming actions the domain lacks cannot be predicted: say which."""
    unknown = sorted(set(labels) - set(domain.action_names))
    if unknown:
        raise DataError(
            f"{policy}: the stories or rules use actions that are not in the domain: "
            f"{', '.join(unknown)}.",
            hint="Declare them under actions: (or as responses) in the domain.")


class Policy(Component, ABC):
    """Base of the dialogue policies: ``fit(trackers, domain)``, ``predict(tracker, domain)``.

    ``priority`` breaks ties between equally confident policies (Rasa's values:
    RulePolicy 6, MemoizationPolicy 3, UnexpecTEDIntentPolicy 2, others 1). Persistence is
    :class:`~parley.component.Component`'s template: a policy implements ``_state`` and
    ``_set_state``, and what it learned goes to ``lookup.json``.
    """

    state_file: ClassVar[str] = LOOKUP_FILE

    default_priority: ClassVar[int] = 1
    # Whether the policy learns from rule trackers, story trackers or both.
    uses_rules: ClassVar[bool] = False
    uses_stories: ClassVar[bool] = True
    # Whether it reads the words of end-to-end turns: then training hands ``fit`` (and
    # ``finetune``) ``text_features=`` and the ensemble predicts through
    # :meth:`predict_with_texts`.
    uses_text_features: ClassVar[bool] = False

    priority: int

    def default_predictions(self, domain: Domain) -> list[float]:
        return [0.0] * len(domain.action_names)

    @abstractmethod
    def fit(self, trackers: Sequence[DialogueStateTracker], domain: Domain) -> Self:
        """Learn from the training trackers; return ``self``."""

    @abstractmethod
    def predict(self, tracker: DialogueStateTracker, domain: Domain,
                rule_only_data: dict[str, Any] | None = None) -> PolicyPrediction:
        """The probability of every action of the domain being next."""

    def predict_with_texts(self, tracker: DialogueStateTracker, domain: Domain,
                           rule_only_data: dict[str, Any] | None = None,
                           featurize: TextFeaturizer | None = None) -> PolicyPrediction:
        """:meth:`predict`, with ``featurize`` to read the conversation's texts (the
        loaded model's NLU featurizers); only policies that read texts use it."""
        return self.predict(tracker, domain, rule_only_data=rule_only_data)

    @abstractmethod
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]: ...

    @abstractmethod
    def _set_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None: ...

    def rule_only_data(self) -> dict[str, Any] | None:
        """Slots and loops only rules use (RulePolicy knows them; others return None)."""
        return None

    @staticmethod
    def _action_index(action: str, domain: Domain) -> int:
        try:
            return domain.action_names.index(action)
        except ValueError:
            raise ConfigError(
                f"the action '{action}' is not in the domain; the policy was trained on "
                "another domain. Train again with this domain.") from None


class FinetunablePolicy(ABC):
    """A policy that continues training from what it learned (``model_to_finetune``):
    the dialogue side of :class:`parley.component.Finetunable`. Policies that are not
    learn their new data from scratch, as Rasa's memoization and rules do."""

    @abstractmethod
    def finetune(self, trackers: Sequence[DialogueStateTracker], domain: Domain,
                 epoch_fraction: float) -> Self:
        """Continue on ``trackers`` for ``finetune_epochs(epochs, epoch_fraction)``."""
