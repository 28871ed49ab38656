"""Rasa's default actions, each doing what Rasa's does.

=================================  ==================================================
action_listen                      nothing: the bot waits for the user
action_restart                     ``utter_restart`` if the domain has it, then Restarted
action_session_start               SessionStarted, the carried-over slots, action_listen
action_default_fallback            ``utter_default`` if any, then undo the user message
action_deactivate_loop             no active loop, no requested slot
action_revert_fallback_events      undo a two-stage fallback's detour once it succeeded
action_default_ask_affirmation     "Did you mean 'intent'?" with Yes / No buttons
action_default_ask_rephrase        ``utter_ask_rephrase`` if the domain has it
action_unlikely_intent             nothing (a marker the policies predict)
action_back                        ``utter_back`` if any, then undo the last two user turns
=================================  ==================================================

``action_two_stage_fallback`` (a loop) and ``action_extract_slots`` live in their own
modules. A domain may override any of these with a custom action of the same name.
"""

from __future__ import annotations

import copy

from parley.data.domain import REQUESTED_SLOT, SESSION_START_METADATA_SLOT
from parley.data.events import (
    ActionExecuted, ActiveLoop, Event, Restarted, SessionStarted, SlotSet, UserUttered,
    UserUtteranceReverted,
)
from parley.data.tracker import DialogueStateTracker
from parley.runtime.actions.base import Action, ActionContext, bot_uttered
from parley.runtime.actions.responses import UtterResponse
from parley.runtime.tracker_queries import last_event_for

__all__ = [
    "ACTION_LISTEN", "AskAffirmation", "BackAction", "DeactivateLoop", "DefaultFallback",
    "ListenAction", "RestartAction", "RevertFallbackEvents", "SessionStartAction",
    "UnlikelyIntent",
]

ACTION_LISTEN = "action_listen"
ACTION_RESTART = "action_restart"
ACTION_SESSION_START = "action_session_start"
ACTION_DEFAULT_FALLBACK = "action_default_fallback"
ACTION_DEACTIVATE_LOOP = "action_deactivate_loop"
ACTION_REVERT_FALLBACK_EVENTS = "action_revert_fallback_events"
ACTION_ASK_AFFIRMATION = "action_default_ask_affirmation"
ACTION_ASK_REPHRASE = "action_default_ask_rephrase"
ACTION_TWO_STAGE_FALLBACK = "action_two_stage_fallback"
ACTION_UNLIKELY_INTENT = "action_unlikely_intent"
ACTION_BACK = "action_back"
ACTION_EXTRACT_SLOTS = "action_extract_slots"
NLU_FALLBACK_INTENT = "nlu_fallback"
OUT_OF_SCOPE_INTENT = "out_of_scope"


class ListenAction(Action):
    name = ACTION_LISTEN

    async def run(self, tracker: DialogueStateTracker, context: ActionContext) -> list[Event]:
        return []


class UnlikelyIntent(Action):
    name = ACTION_UNLIKELY_INTENT

    async def run(self, tracker: DialogueStateTracker, context: ActionContext) -> list[Event]:
        return []


class RestartAction(UtterResponse):
    def __init__(self) -> None:
        super().__init__(ACTION_RESTART, "utter_restart", silent=True)

    async def run(self, tracker: DialogueStateTracker, context: ActionContext) -> list[Event]:
        return [*await super().run(tracker, context), Restarted()]


class DefaultFallback(UtterResponse):
    def __init__(self) -> None:
        super().__init__(ACTION_DEFAULT_FALLBACK, "utter_default", silent=True)

    async def run(self, tracker: DialogueStateTracker, context: ActionContext) -> list[Event]:
        return [*await super().run(tracker, context), UserUtteranceReverted()]


class BackAction(UtterResponse):
    def __init__(self) -> None:
        super().__init__(ACTION_BACK, "utter_back", silent=True)

    async def run(self, tracker: DialogueStateTracker, context: ActionContext) -> list[Event]:
        return [*await super().run(tracker, context), UserUtteranceReverted(),
                UserUtteranceReverted()]


class AskRephrase(UtterResponse):
    def __init__(self) -> None:
        super().__init__(ACTION_ASK_REPHRASE, "utter_ask_rephrase", silent=True)


class SessionStartAction(Action):
    """A new session; with ``carry_over_slots_to_new_session`` the slots set so far are set
    again (with their metadata), so the new session remembers them."""

    name = ACTION_SESSION_START

    async def run(self, tracker: DialogueStateTracker, context: ActionContext) -> list[Event]:
        events: list[Event] = [SessionStarted()]
        carried = [SlotSet(key=e.key, value=e.value, metadata=copy.deepcopy(e.metadata))
                   for e in tracker.applied_events() if isinstance(e, SlotSet)]
        if context.domain.session_config.carry_over_slots:
            events += carried
        else:
            # The metadata of the message that starts the session belongs to the new one.
            events += [e for e in carried if e.key == SESSION_START_METADATA_SLOT][-1:]
        events.append(ActionExecuted(action_name=ACTION_LISTEN))
        return events


class DeactivateLoop(Action):
    name = ACTION_DEACTIVATE_LOOP

    async def run(self, tracker: DialogueStateTracker, context: ActionContext) -> list[Event]:
        return [ActiveLoop(name=None), SlotSet(key=REQUESTED_SLOT, value=None)]


class AskAffirmation(Action):
    """Asks whether the user meant the intent NLU found (the second best one when the best
    is ``nlu_fallback``), with buttons to say yes (that intent) or no (``out_of_scope``)."""

    name = ACTION_ASK_AFFIRMATION

    async def run(self, tracker: DialogueStateTracker, context: ActionContext) -> list[Event]:
        message = tracker.latest_message
        intent = message.intent_name
        ranking = message.parse_data_extra.get("intent_ranking") or []
        if intent == NLU_FALLBACK_INTENT and len(ranking) > 1:
            intent = ranking[1].get("name")
        return [bot_uttered({
            "text": f"Did you mean '{intent}'?",
            "buttons": [{"title": "Yes", "payload": f"/{intent}"},
                        {"title": "No", "payload": f"/{OUT_OF_SCOPE_INTENT}"}],
            "utter_action": self.name,
        })]


class RevertFallbackEvents(Action):
    """After a two-stage fallback succeeded, leave the conversation as if the user had said
    the clarified message straight away."""

    name = ACTION_REVERT_FALLBACK_EVENTS

    async def run(self, tracker: DialogueStateTracker, context: ActionContext) -> list[Event]:
        if has_user_rephrased(tracker):
            return [*_rephrasing_reverted(), _clarified_copy(tracker)]
        if _last_action_was(tracker, ACTION_ASK_AFFIRMATION):
            events: list[Event] = [UserUtteranceReverted(), UserUtteranceReverted(),
                                   ActionExecuted(action_name=ACTION_LISTEN)]
            if _last_action_was(tracker, ACTION_ASK_REPHRASE, skip=1):
                events += _rephrasing_reverted()
            return [*events, _clarified_copy(tracker, full_confidence=True)]
        return []


def has_user_rephrased(tracker: DialogueStateTracker) -> bool:
    return _last_action_was(tracker, ACTION_ASK_REPHRASE)


def _last_action_was(tracker: DialogueStateTracker, name: str, skip: int = 0) -> bool:
    """Whether the ``skip``-th latest action other than action_listen is ``name``."""
    seen = 0
    for event in reversed(tracker.applied_events()):
        if isinstance(event, ActionExecuted) and event.action_name != ACTION_LISTEN:
            if seen == skip:
                return event.action_name == name
            seen += 1
    return False


def _rephrasing_reverted() -> list[Event]:
    return [UserUtteranceReverted(), UserUtteranceReverted(), UserUtteranceReverted(),
            ActionExecuted(action_name=ACTION_LISTEN)]


def _clarified_copy(tracker: DialogueStateTracker, full_confidence: bool = False) -> UserUttered:
    last = last_event_for(tracker, UserUttered)
    if not isinstance(last, UserUttered):
        return UserUttered()
    clarified = copy.deepcopy(last)
    if full_confidence and clarified.intent is not None:
        clarified.intent["confidence"] = 1.0
    clarified.timestamp = None  # stamped when applied, as a new message
    return clarified
