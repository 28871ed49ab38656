"""Rasa's tracker featurizers: training trackers → examples over a table of distinct states.

- :func:`max_history_examples` (Rasa's ``MaxHistoryTrackerFeaturizer``, TED's): one example
  per action of every story, the last ``max_history`` states before it (all of them for
  None), labelled with the action; an example seen twice is kept once.
- :func:`full_dialogue_examples` (``FullDialogueTrackerFeaturizer``): one example per
  tracker, every state before each of its actions, labelled with each action.
- UnexpecTED's ``IntentMaxHistoryTrackerFeaturizer`` is :mod:`.intents`.

As in Rasa's training, a user turn with both an intent and a text shows only its intent; a
turn with only a text (``user:`` steps of end-to-end stories) shows its text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from parley.data.domain import Domain
from parley.data.events import ActionExecuted
from parley.data.tracker import USER, DialogueStateTracker, State
from parley.dialogue.policies.base import feature_key, training_states_and_labels

__all__ = ["Examples", "StateTable", "full_dialogue_examples", "max_history_examples"]


@dataclass
class StateTable:
    """Distinct states, each once: histories name them by index."""

    states: list[State] = field(default_factory=list)
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def add(self, state: State) -> int:
        key = feature_key([state])
        if key not in self._index:
            self._index[key] = len(self.states)
            self.states.append(state)
        return self._index[key]

    def __len__(self) -> int:
        return len(self.states)


@dataclass
class Examples:
    """Histories (state indices, oldest first) and their labels."""

    table: StateTable
    histories: list[list[int]]
    labels: list[str] | list[list[str]] | list[list[str | None]]


def training_view(state: State) -> State:
    """The state as training shows it: a user turn's text only where it has no intent."""
    user = state.get(USER)
    if not user or "text" not in user or not user.get("intent"):
        return state
    shown = dict(state)
    shown[USER] = {k: v for k, v in user.items() if k != "text"}
    return shown


def max_history_examples(trackers: Sequence[DialogueStateTracker], domain: Domain,
                         max_history: int | None) -> Examples:
    histories, labels = training_states_and_labels(trackers, domain, max_history)
    table = StateTable()
    seen: set[tuple[tuple[int, ...], str]] = set()
    indexed: list[list[int]] = []
    kept: list[str] = []
    for history, label in zip(histories, labels, strict=True):
        ids = [table.add(training_view(s)) for s in history]
        key = (tuple(ids), label)
        if key not in seen:  # two histories that differ only in a text of an intent turn
            seen.add(key)
            indexed.append(ids)
            kept.append(label)
    return Examples(table, indexed, kept)


def full_dialogue_examples(trackers: Sequence[DialogueStateTracker],
                           domain: Domain) -> Examples:
    """``labels[i][t]`` is the action after state ``t`` of dialogue ``i``, None where that
    action is unpredictable (a story's opening ``action_listen``); the same dialogue twice
    (augmentation makes many) is kept once."""
    table = StateTable()
    seen: set[tuple[tuple[int, ...], tuple[str | None, ...]]] = set()
    histories: list[list[int]] = []
    labels: list[list[str | None]] = []
    for tracker in trackers:
        states = tracker.past_states(domain)
        actions = [e for e in tracker.applied_events() if isinstance(e, ActionExecuted)]
        ids = [table.add(training_view(s)) for s in states[:len(actions)]]
        names = [None if a.unpredictable else (a.action_name or a.action_text or "")
                 for a in actions]
        key = (tuple(ids), tuple(names))
        if ids and any(names) and key not in seen:
            seen.add(key)
            histories.append(ids)
            labels.append(names)
    return Examples(table, histories, labels)
