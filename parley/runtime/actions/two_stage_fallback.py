"""``action_two_stage_fallback``: when NLU is unsure, ask before guessing.

First it asks the user to affirm the intent NLU found ("Did you mean …?"); if the user
says no, it asks them to rephrase; a rephrasing NLU is sure of (or an affirmation) ends
the loop and the conversation goes on as if the clarified message had come first. Two
unclear messages in a row, or a second "no", give up with ``action_default_fallback``.
"""

from __future__ import annotations

import copy

from parley.data.events import ActionExecuted, ActiveLoop, Event, UserUttered, UserUtteranceReverted
from parley.data.tracker import DialogueStateTracker
from parley.runtime.actions.base import ActionContext
from parley.runtime.actions.defaults import (
    ACTION_LISTEN, ACTION_TWO_STAGE_FALLBACK, NLU_FALLBACK_INTENT, OUT_OF_SCOPE_INTENT,
    AskAffirmation, AskRephrase, DefaultFallback,
)
from parley.runtime.actions.loops import LoopAction
from parley.runtime.tracker_queries import events_after_latest_restart

__all__ = ["TwoStageFallback"]


class TwoStageFallback(LoopAction):
    name = ACTION_TWO_STAGE_FALLBACK

    async def do(self, tracker: DialogueStateTracker, context: ActionContext,
                 events_so_far: list[Event]) -> list[Event]:
        just_activated = any(isinstance(event, ActiveLoop) for event in events_so_far)
        if just_activated or tracker.latest_message.intent_name == NLU_FALLBACK_INTENT:
            return await AskAffirmation().run(tracker, context)
        return await AskRephrase().run(tracker, context)

    async def is_done(self, tracker: DialogueStateTracker, context: ActionContext,
                      events_so_far: list[Event]) -> bool:
        clarified = tracker.latest_message.intent_name not in (
            NLU_FALLBACK_INTENT, OUT_OF_SCOPE_INTENT)
        return clarified or _gave_up(tracker)

    async def deactivate(self, tracker: DialogueStateTracker, context: ActionContext,
                         events_so_far: list[Event]) -> list[Event]:
        if _gave_up(tracker):
            return await DefaultFallback().run(tracker, context)
        clarification = copy.deepcopy(tracker.latest_message)
        if clarification.intent is not None:
            clarification.intent["confidence"] = 1.0
        clarification.timestamp = None  # stamped as a new message when applied
        return [UserUtteranceReverted(), ActionExecuted(action_name=ACTION_LISTEN),
                clarification]


def _last_intents(tracker: DialogueStateTracker, count: int) -> list[str | None]:
    """Intents of the latest ``count`` user messages, where an undone message counts as a
    turn without an intent (as Rasa counts them)."""
    names: list[str | None] = []
    for event in reversed(events_after_latest_restart(tracker)):
        if isinstance(event, (UserUttered, UserUtteranceReverted)):
            if isinstance(event, UserUttered):
                names.append(event.intent_name)
            count -= 1
            if count == 0:
                break
    return names


def _gave_up(tracker: DialogueStateTracker) -> bool:
    two_unclear = _last_intents(tracker, 2) == [NLU_FALLBACK_INTENT, NLU_FALLBACK_INTENT]
    second_no = _last_intents(tracker, 3) == [
        OUT_OF_SCOPE_INTENT, NLU_FALLBACK_INTENT, OUT_OF_SCOPE_INTENT]
    return two_unclear or second_no
