"""The action loop: what happens to each user message, as Rasa's MessageProcessor does it.

::

    lock the conversation ─► load its tracker ─► new or expired session? run
    action_session_start (slots carried over) ─► parse the text ─► action_extract_slots
    ─► predict, run, repeat until action_listen (at most ``max_number_of_predictions``
    actions) ─► save the tracker ─► publish its new events ─► the bot's messages

An action that refuses to run (a form that could not use the message) leaves an
``action_execution_rejected`` event and the policies choose again; an action that fails
(its action server is down, say) is logged and the conversation goes on, as in Rasa.
A ``followup`` event names the next action outright. With an event broker (endpoints.yml's
``event_broker``), the events each save added are handed to it after the save, still under
the conversation's lock: each once, in order, with ``sender_id``. The broker sends them
while the conversation goes on; one that fails logs it (a ``raise_on_failure`` broker
makes it the message's error). ``action_unlikely_intent`` is never
run twice in a row: the second time, the next best action runs instead.

Reminders (``reminder`` / ``cancel_reminder`` events an action returns) go to the
processor's :class:`~parley.runtime.reminders.ReminderScheduler`, still under the lock;
each fires through :meth:`MessageProcessor.handle_reminder`. While a conversation is paused
(``pause`` until ``resume``), its messages are recorded and their slots filled, but no
action is predicted, as in Rasa; a ``restart`` intent still is.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from parley.data.domain import SESSION_START_METADATA_SLOT, Domain
from parley.data.events import (
    ActionExecuted, ActionExecutionRejected, ActiveLoop, BotUttered, Event, ReminderCancelled,
    ReminderScheduled, SlotSet, UserUttered,
)
from parley.data.tracker import DialogueStateTracker
from parley.dialogue.policies.prediction import PolicyPrediction
from parley.errors import ActionError, ActionRejected, BrokerError, DataError
from parley.runtime.actions.base import Action, ActionContext
from parley.runtime.actions.defaults import (
    ACTION_EXTRACT_SLOTS, ACTION_LISTEN, ACTION_SESSION_START, ACTION_UNLIKELY_INTENT,
)
from parley.runtime.actions.registry import action_for_name
from parley.runtime.brokers.base import EventBroker
from parley.runtime.executor import ActionExecutor
from parley.runtime.model import ConversationModel
from parley.runtime.nlg import ResponseGenerator
from parley.runtime.nlg_server import CallbackResponseGenerator, NLGServerClient
from parley.runtime.output import bot_message, collect
from parley.runtime.reminders import ReminderScheduler, reminder_void_reason
from parley.runtime.slot_values import slot_value_problem
from parley.runtime.stores.base import DEFAULT_LOCK_LIFETIME, LockStore, TrackerStore
from parley.runtime.stores.memory import InMemoryLockStore, InMemoryTrackerStore
from parley.runtime.tracker_state import latest_input_channel

__all__ = ["DEFAULT_SENDER", "LATEST_CHANNEL", "MAX_NUMBER_OF_PREDICTIONS", "Compute",
           "MessageProcessor", "UserMessage", "run_inline"]

T = TypeVar("T")
# Runs a model call (parse, next-action prediction) and gives its result: inline by default;
# a server passes one that hands the call to a bounded pool of worker threads, so that the
# event loop stays free while the model computes.
Compute = Callable[[Callable[[], Any]], Awaitable[Any]]


async def run_inline(work: Callable[[], T]) -> T:
    """The default :data:`Compute`: call the model right here."""
    return work()

logger = logging.getLogger(__name__)

DEFAULT_SENDER = "default"
# Rasa's circuit breaker: at most this many actions follow one user message.
MAX_NUMBER_OF_PREDICTIONS = 10
FOLLOWUP_POLICY = "followup_action"
# Rasa's metadata keys: the model and the assistant behind an event, an external message.
MODEL_ID_KEY = "model_id"
ASSISTANT_ID_KEY = "assistant_id"
IS_EXTERNAL = "is_external"
# Actions after which the bot waits for the user.
ENDS_TURN = (ACTION_LISTEN, ACTION_SESSION_START)
# The intent a paused conversation still acts on (Rasa's USER_INTENT_RESTART).
RESTART_INTENT = "restart"
# Rasa's output channel "latest": the channel the user last wrote from.
LATEST_CHANNEL = "latest"


@dataclass
class UserMessage:
    """One incoming message. ``output_channel`` names the channel the answer goes to (it
    picks channel-specific response variations); ``reply_channel`` is the server's channel
    that received the message, through which the reminders set while handling it answer
    (None: ``output_channel``; a channel whose clients may name ``output_channel`` sets it,
    so that a client cannot have reminders sent through another channel to anyone it
    names); ``parse_data`` skips NLU when given.
    A message without ``message_id`` gets a new one (32 hex digits), as Rasa's
    ``UserMessage`` does, so that every stored ``user`` event names its message; its text
    loses surrounding whitespace, as in Rasa (NLU, the stored event and ``from_text``
    slots see what the user wrote, not the newline a widget or terminal added)."""

    text: str | None = None
    sender_id: str = DEFAULT_SENDER
    input_channel: str | None = None
    output_channel: str | None = None
    metadata: dict[str, Any] | None = None
    message_id: str | None = None
    parse_data: dict[str, Any] | None = field(default=None, repr=False)
    reply_channel: str | None = None

    def __post_init__(self) -> None:
        self.message_id = str(self.message_id) if self.message_id else uuid.uuid4().hex
        if self.text:
            self.text = self.text.strip()


def prediction_for(domain: Domain, action: str, policy: str | None,
                   confidence: float = 1.0) -> PolicyPrediction:
    """A prediction of one action, for actions run without asking the policies."""
    probabilities = [0.0] * len(domain.action_names)
    if action in domain.action_names:
        probabilities[domain.action_names.index(action)] = confidence
    return PolicyPrediction(probabilities, policy or "")


class MessageProcessor:
    """Handles messages for a loaded model.

    ``tracker_store`` and ``lock_store`` default to in-memory ones; ``executor`` runs custom
    actions (None: any custom action fails with a message saying to configure an action
    server); ``nlg_server`` makes the responses instead of the domain (endpoints.yml's
    ``nlg``); ``event_broker`` gets every event saved (endpoints.yml's ``event_broker``,
    connected: :func:`parley.runtime.brokers.factory.create_event_broker`); ``reminders``
    schedules the reminders actions set (None: they are logged and never fire); ``seed``
    fixes which response variations are drawn; ``clock`` gives event timestamps and decides
    session expiry (tests pass their own).
    """

    def __init__(self, model: ConversationModel, tracker_store: TrackerStore | None = None,
                 lock_store: LockStore | None = None, executor: ActionExecutor | None = None,
                 seed: int | None = None,
                 max_number_of_predictions: int = MAX_NUMBER_OF_PREDICTIONS,
                 clock: Callable[[], float] = time.time,
                 lock_lifetime: float = DEFAULT_LOCK_LIFETIME,
                 compute: Compute | None = None,
                 nlg_server: NLGServerClient | None = None,
                 event_broker: EventBroker | None = None,
                 reminders: ReminderScheduler | None = None) -> None:
        self.model = model
        self.event_broker = event_broker
        self.reminders = reminders
        self.compute: Compute = compute if compute is not None else run_inline
        self.domain = model.domain if model.domain is not None else Domain.empty()
        self.tracker_store = tracker_store if tracker_store is not None \
            else InMemoryTrackerStore()
        self.tracker_store.domain = self.domain
        self.lock_store = lock_store if lock_store is not None else InMemoryLockStore()
        self.executor = executor
        # An NLG server (endpoints.yml's nlg) makes the responses; else the domain's.
        self.nlg: ResponseGenerator = (
            CallbackResponseGenerator(self.domain, nlg_server, seed) if nlg_server is not None
            else ResponseGenerator(self.domain, seed))
        self.max_number_of_predictions = max_number_of_predictions
        self.clock = clock
        self.lock_lifetime = lock_lifetime
        self._slots = {slot.name: slot for slot in self.domain.all_slots}
        self._action_names = frozenset(self.domain.action_names)
        # As Rasa: every event the processor logs names the model and the assistant in its
        # metadata, so that a broker's consumer or a tracker store can tell them apart.
        self.event_metadata = model_event_metadata(model)

    def context(self, channel: str | None, reply_channel: str | None = None) -> ActionContext:
        """What actions run with: ``channel``'s response variations; reminders they set
        answer through ``reply_channel`` (None: ``channel``)."""
        return ActionContext(self.domain, self.nlg, self.executor, channel,
                             reply_channel if reply_channel is not None else channel)

    @staticmethod
    def output_channel(tracker: DialogueStateTracker, requested: str | None) -> str | None:
        """The channel ``requested`` names, ``latest`` being the one the user last wrote
        from, as Rasa resolves it: its response variations are used, and the reminders
        set now answer through it."""
        return latest_input_channel(tracker) if requested == LATEST_CHANNEL else requested

    # ---- entry points ------------------------------------------------------------

    async def handle_message(self, message: UserMessage) -> list[dict[str, Any]]:
        """Answer one user message: the bot's messages as the REST channel returns them."""
        return collect(message.sender_id, await self.answer(message))

    async def answer(self, message: UserMessage) -> list[dict[str, Any]]:
        """Answer one user message: the bot's messages whole (text, buttons, quick replies,
        elements … together, see :func:`parley.runtime.output.bot_message`), for a channel
        to render as its platform shows them."""
        async with self.lock_store.lock(message.sender_id, self.lock_lifetime):
            tracker = await self.tracker_store.get_or_create_tracker(message.sender_id)
            start = len(tracker.events)
            context = self.context(message.output_channel, message.reply_channel)
            await self.update_session(tracker, context, message.metadata)
            await self.log_user_message(tracker, message)
            if self.model.has_core:
                await self.extract_slots(tracker, context)
                await self.run_prediction_loop(tracker, context)
            else:
                logger.warning("the model has no dialogue part: the message is parsed and "
                               "stored, and no action runs.")
            await self.save(tracker, start)
        return self.bot_responses(tracker, start)

    async def log_message(self, message: UserMessage) -> DialogueStateTracker:
        """Add a user message (parsed, its slots extracted) without predicting or running
        any other action, as Rasa's ``/conversations/<id>/messages`` endpoint does."""
        async with self.lock_store.lock(message.sender_id, self.lock_lifetime):
            tracker = await self.tracker_store.get_or_create_tracker(message.sender_id)
            start = len(tracker.events)
            context = self.context(message.output_channel)
            await self.update_session(tracker, context, message.metadata)
            await self.log_user_message(tracker, message)
            if self.model.has_core:
                await self.extract_slots(tracker, context)
            await self.save(tracker, start)
        return tracker

    async def execute_action(self, sender_id: str, action: str,
                             output_channel: str | None = None, policy: str | None = None,
                             confidence: float = 1.0) -> tuple[DialogueStateTracker,
                                                               list[dict[str, Any]]]:
        """Run one named action (as Rasa's ``/execute`` endpoint does); nothing is
        predicted after it. The bot's messages come whole (:meth:`answer`'s), for the
        caller to render for its channel (``output_channel``: :meth:`output_channel`)."""
        async with self.lock_store.lock(sender_id, self.lock_lifetime):
            tracker = await self.tracker_store.get_or_create_tracker(sender_id)
            start = len(tracker.events)
            context = self.context(self.output_channel(tracker, output_channel))
            await self.update_session(tracker, context)
            await self.run_action(action_for_name(action, self.domain), tracker, context,
                                  prediction_for(self.domain, action, policy, confidence))
            await self.save(tracker, start)
        return tracker, self.bot_responses(tracker, start)

    async def trigger_intent(self, sender_id: str, intent: str,
                             entities: list[dict[str, Any]] | dict[str, Any] | None = None,
                             output_channel: str | None = None,
                             ) -> tuple[DialogueStateTracker, list[dict[str, Any]]]:
        """Act as if the user had expressed ``intent`` (Rasa's external events and
        ``trigger_intent`` endpoint): the message text is ``EXTERNAL: <intent>``. The
        intent is ``{"name": intent}`` alone, as Rasa's ``UserUttered.create_external``
        stores it: no NLU scored it, so it has no confidence (a policy scoring with the
        NLU confidence counts it as 1). The bot's messages come whole, as
        :meth:`execute_action`'s."""
        async with self.lock_store.lock(sender_id, self.lock_lifetime):
            tracker = await self.tracker_store.get_or_create_tracker(sender_id)
            start = len(tracker.events)
            context = self.context(self.output_channel(tracker, output_channel))
            await self.update_session(tracker, context)
            await self.log_external_message(tracker, context, intent, entities)
            await self.save(tracker, start)
        return tracker, self.bot_responses(tracker, start)

    async def handle_reminder(self, event: ReminderScheduled, sender_id: str,
                              output_channel: str | None = None,
                              ) -> list[dict[str, Any]] | None:
        """Fire a reminder (Rasa's ``handle_reminder``): under the conversation's lock,
        trigger its intent with its entities as :meth:`trigger_intent` does, unless it is
        void by now (:func:`~parley.runtime.reminders.reminder_void_reason`). The bot's
        messages whole, or None when it did not fire."""
        async with self.lock_store.lock(sender_id, self.lock_lifetime):
            tracker = await self.tracker_store.get_or_create_tracker(sender_id)
            start = len(tracker.events)
            context = self.context(output_channel)
            await self.update_session(tracker, context)
            void = reminder_void_reason(tracker, event)
            if void is not None:
                # Nothing is saved, as in Rasa: a session started only to find the
                # reminder void starts again with the user's next message.
                logger.info("conversation '%s': the reminder '%s' does not fire: %s.",
                            sender_id, event.name, void)
                return None
            await self.log_external_message(tracker, context, event.intent, event.entities)
            await self.save(tracker, start)
        return self.bot_responses(tracker, start)

    async def log_external_message(self, tracker: DialogueStateTracker,
                                   context: ActionContext, intent: str,
                                   entities: list[dict[str, Any]] | dict[str, Any] | None,
                                   ) -> None:
        """Log the external message ``EXTERNAL: <intent>`` and act on it."""
        if isinstance(entities, dict):
            entities = [{"entity": name, "value": value} for name, value in entities.items()]
        # The external message keeps the conversation's input channel; as Rasa's, it has
        # no message id and its metadata says it is external.
        self.apply(tracker, [UserUttered(
            text=f"EXTERNAL: {intent}", intent={"name": intent}, entities=list(entities or []),
            input_channel=latest_input_channel(tracker), metadata={IS_EXTERNAL: True})])
        if not self.model.has_core:
            # A reminder come due after PUT /model loaded an NLU-only model: as a message.
            logger.warning("the model has no dialogue part: the external intent '%s' is "
                           "stored, and no action runs.", intent)
            return
        await self.extract_slots(tracker, context)
        await self.run_prediction_loop(tracker, context)

    async def get_tracker(self, sender_id: str) -> DialogueStateTracker:
        """The whole conversation (every session), as Rasa's ``GET …/tracker`` gives it; a
        new conversation gets its session started and saved first."""
        async with self.lock_store.lock(sender_id, self.lock_lifetime):
            tracker = await self.tracker_store.retrieve_full_tracker(sender_id)
            if tracker is None:
                tracker = self.tracker_store.init_tracker(sender_id)
                await self.update_session(tracker, self.context(None))
                await self.save(tracker, 0)
        return tracker

    def loop_problem(self, events: list[Event]) -> str | None:
        """What is wrong with ``events`` activating a loop that is no action of the domain:
        stored, the policies would have to predict that loop on every later message and
        cannot, so the conversation would be stuck for good."""
        for number, event in enumerate(events, 1):
            if isinstance(event, ActiveLoop) and event.name is not None \
                    and event.name not in self._action_names:
                return (f"event {number}: the active loop '{event.name}' is not an action of "
                        "the domain (forms: " + (", ".join(self.domain.form_names) or "none")
                        + ")")
        return None

    def _refuse_unknown_loops(self, events: list[Event]) -> None:
        problem = self.loop_problem(events)
        if problem:
            raise DataError(f"{problem}; send null to deactivate a loop.")

    async def append_events(self, sender_id: str, events: list[Event],
                            execute_side_effects: bool = False,
                            output_channel: str | None = None) -> DialogueStateTracker:
        """Add events to a conversation (Rasa's ``POST …/tracker/events``); the session is
        brought up to date first unless the events start one themselves. With
        ``execute_side_effects``, the events' reminders are scheduled and cancelled, their
        answers for ``output_channel`` (``latest``: the conversation's latest channel)."""
        self._refuse_unknown_loops(events)
        async with self.lock_store.lock(sender_id, self.lock_lifetime):
            tracker = await self.tracker_store.get_or_create_tracker(sender_id)
            start = len(tracker.events)
            starts_session = bool(events) and isinstance(events[0], ActionExecuted) and \
                events[0].action_name == ACTION_SESSION_START
            if not starts_session:
                await self.update_session(tracker, self.context(None))
            self.apply(tracker, list(events))
            await self.save(tracker, start)
            if execute_side_effects:
                self.schedule_reminders(events, sender_id,
                                        self.output_channel(tracker, output_channel))
        return tracker

    async def replace_events(self, sender_id: str, events: list[Event],
                             ) -> DialogueStateTracker:
        """Make ``events`` the whole conversation (Rasa's ``PUT …/tracker/events``)."""
        self._refuse_unknown_loops(events)
        async with self.lock_store.lock(sender_id, self.lock_lifetime):
            tracker = self.tracker_store.init_tracker(sender_id)
            # Rasa builds this tracker from the events alone: they keep the metadata sent.
            self.apply(tracker, list(events), name_model=False)
            await self.tracker_store.delete(sender_id)
            # The new conversation is published whole (Rasa publishes only what goes past
            # the old one's length, which a consumer cannot make sense of).
            await self.save(tracker, 0)
        return tracker

    async def predict_next(self, sender_id: str) -> tuple[DialogueStateTracker,
                                                          PolicyPrediction]:
        """What the policies would run next, without running it (a new conversation gets
        its session started and saved first, as in Rasa)."""
        async with self.lock_store.lock(sender_id, self.lock_lifetime):
            tracker = await self.tracker_store.get_or_create_tracker(sender_id)
            start = len(tracker.events)
            await self.update_session(tracker, self.context(None))
            prediction = await self.predict(tracker)
            await self.save(tracker, start)
        return tracker, prediction

    # ---- steps -------------------------------------------------------------------

    async def save(self, tracker: DialogueStateTracker, start: int) -> None:
        """Store the tracker, then publish the events added since event ``start`` (those
        the store did not have) to the event broker. Call under the conversation's lock:
        that keeps each conversation's events in order at the broker."""
        await self.tracker_store.save(tracker)
        if self.event_broker is None or start >= len(tracker.events):
            return
        sender = tracker.sender_id
        events = [{"sender_id": sender, **event.to_dict()} for event in tracker.events[start:]]
        try:
            await self.event_broker.publish_events(events)
        except Exception as error:  # noqa: BLE001 - as Rasa: a broker must not end the chat
            if self.event_broker.raise_on_failure:
                raise BrokerError(f"conversation '{sender}' was saved, but its "
                                  f"{len(events)} new event(s) were not published: {error}"
                                  ) from error
            if isinstance(error, BrokerError):
                logger.error("conversation '%s': %s The conversation goes on.", sender,
                             _sentence(str(error)))
            else:
                logger.exception("conversation '%s': the event broker raised; %d event(s) "
                                 "were not published. The conversation goes on.", sender,
                                 len(events))

    def apply(self, tracker: DialogueStateTracker, events: list[Event],
              name_model: bool = True) -> None:
        """Stamp events that have no time yet and add them to the tracker; with
        ``name_model``, add :attr:`event_metadata` (the model's and the assistant's ids)
        to each event's metadata where it has no such key yet, as Rasa's tracker does."""
        for event in events:
            if event.timestamp is None:
                event.timestamp = self.clock()
            if name_model:
                self.name_model(event)
            tracker.update(event)
            if isinstance(event, SlotSet) and event.key in self._slots:
                problem = slot_value_problem(self._slots[event.key], event.value)
                if problem:
                    logger.warning("%s", problem)

    def name_model(self, event: Event) -> None:
        """Add the model's ids an event's metadata lacks (keys it has are kept, as in
        Rasa); a new dict, so that metadata shared with a message or a slot stays as is."""
        missing = {key: value for key, value in self.event_metadata.items()
                   if key not in event.metadata}
        if not missing:
            return
        if isinstance(event, UserUttered):
            event.keep_parse_metadata()
        event.metadata = {**event.metadata, **missing}

    def session_expired(self, tracker: DialogueStateTracker) -> bool:
        minutes = self.domain.session_config.session_expiration_time
        if minutes <= 0:
            return False
        last = next((e for e in reversed(tracker.events) if isinstance(e, UserUttered)), None)
        if last is None or last.timestamp is None:
            return False
        return (self.clock() - last.timestamp) / 60 > minutes

    async def update_session(self, tracker: DialogueStateTracker, context: ActionContext,
                             metadata: dict[str, Any] | None = None) -> None:
        """Start a session for a new conversation, or a new one after the user was silent
        longer than ``session_expiration_time`` minutes."""
        if tracker.applied_events() and not self.session_expired(tracker):
            return
        if metadata:
            self.apply(tracker, [SlotSet(key=SESSION_START_METADATA_SLOT, value=metadata)])
        await self.run_action(action_for_name(ACTION_SESSION_START, self.domain), tracker,
                              context, prediction_for(self.domain, ACTION_SESSION_START, None))

    async def log_user_message(self, tracker: DialogueStateTracker,
                               message: UserMessage) -> None:
        parse = message.parse_data
        text = message.text or ""
        if parse is None and not self.model.has_nlu and not text.strip().startswith("/"):
            # A Core-only model understands only intents given directly, as in Rasa.
            parse = {"text": text, "intent": {"name": None, "confidence": 0.0},
                     "entities": []}
        if parse is None:
            parse = await self.compute(partial(self.model.parse, text))
        extra = {key: value for key, value in parse.items()
                 if key not in ("intent", "entities", "text", "message_id", "metadata")}
        intent = dict(parse.get("intent") or {}) or None
        selected = _selected_response_key(parse)
        if intent is not None and selected:
            intent["full_retrieval_intent_name"] = selected
        self.apply(tracker, [UserUttered(
            text=message.text, intent=intent,
            entities=list(parse.get("entities") or []), input_channel=message.input_channel,
            message_id=message.message_id, parse_data_extra=extra,
            metadata=dict(message.metadata or {}))])

    async def extract_slots(self, tracker: DialogueStateTracker, context: ActionContext) -> None:
        """Run ``action_extract_slots`` (logged by its events only, as in Rasa)."""
        action = action_for_name(ACTION_EXTRACT_SLOTS, self.domain)
        try:
            events = await action.run(tracker, context)
        except ActionError as error:
            logger.error("%s failed: %s", ACTION_EXTRACT_SLOTS, error)
            return
        self.apply(tracker, events)

    async def run_prediction_loop(self, tracker: DialogueStateTracker,
                                  context: ActionContext) -> None:
        previous: str | None = None
        while True:
            if tracker.paused and tracker.latest_message.intent_name != RESTART_INTENT:
                # Asked before each action, as Rasa does: an action may pause the bot.
                logger.debug("conversation '%s' is paused: no action runs.",
                             tracker.sender_id)
                return
            if self.actions_since_listen(tracker) >= self.max_number_of_predictions:
                logger.warning("conversation '%s': %d actions followed one message without "
                               "action_listen; the bot stops here (Rasa's circuit breaker).",
                               tracker.sender_id, self.max_number_of_predictions)
                return
            prediction = await self.predict(tracker, previous)
            if prediction.is_end_to_end_prediction:
                # The user's text, not the intent, decided: extract slots for it again.
                await self.extract_slots(tracker, context)
            name = self.domain.action_names[prediction.max_confidence_index]
            if not await self.run_action(action_for_name(name, self.domain), tracker,
                                         context, prediction):
                return
            previous = name

    @staticmethod
    def actions_since_listen(tracker: DialogueStateTracker) -> int:
        """Actions run (or refused, so that refusals cannot go round forever) since the bot
        last listened."""
        count = 0
        for event in reversed(tracker.events):
            if isinstance(event, ActionExecuted) and event.action_name in ENDS_TURN:
                break
            if isinstance(event, (ActionExecuted, ActionExecutionRejected)):
                count += 1
        return count

    async def predict(self, tracker: DialogueStateTracker,
                      previous: str | None = None) -> PolicyPrediction:
        """The next action: a pending followup, else the policies' choice (with
        ``action_unlikely_intent`` never twice in a row)."""
        followup = tracker.followup_action
        if followup:
            tracker.followup_action = None
            if followup in self.domain.action_names:
                return prediction_for(self.domain, followup, FOLLOWUP_POLICY)
            logger.error("the followup action '%s' is not in the domain; the policies "
                         "choose instead.", followup)
        prediction = await self.compute(partial(self.model.predict_next_action, tracker))
        if previous == ACTION_UNLIKELY_INTENT and ACTION_UNLIKELY_INTENT in self.domain.action_names:
            index = self.domain.action_names.index(ACTION_UNLIKELY_INTENT)
            if prediction.max_confidence_index == index:
                prediction.probabilities[index] = 0.0
        if prediction.max_confidence <= 0.0:
            # No policy has an opinion: listen rather than run action 0 by accident.
            return prediction_for(self.domain, ACTION_LISTEN, prediction.policy_name, 0.0)
        return prediction

    async def run_action(self, action: Action, tracker: DialogueStateTracker,
                         context: ActionContext, prediction: PolicyPrediction) -> bool:
        """Run one action and log it; whether another action should follow."""
        trial = tracker.copy()
        for event in prediction.events:
            trial.update(event)
        try:
            events = await action.run(trial, context)
        except ActionRejected as error:
            logger.info("conversation '%s': %s rejected to run (%s)", tracker.sender_id,
                        action.name, error)
            self.apply(tracker, [ActionExecutionRejected(
                action_name=action.name, policy=prediction.policy_name,
                confidence=prediction.max_confidence)])
            return action.name not in ENDS_TURN
        except ActionError as error:
            logger.error("conversation '%s': the action '%s' failed: %s The conversation "
                         "goes on without its events.", tracker.sender_id, action.name,
                         _sentence(str(error)))
            events = []
        except Exception:  # noqa: BLE001 - as Rasa: a failing action must not end the chat
            logger.exception("conversation '%s': the action '%s' raised; the conversation "
                             "goes on without its events.", tracker.sender_id, action.name)
            events = []
        problem = self.loop_problem(events)
        if problem:
            logger.error("conversation '%s': the action '%s' returned %s. The conversation "
                         "goes on without its events.", tracker.sender_id, action.name, problem)
            events = []
        if not any(isinstance(event, ActionExecutionRejected) for event in events):
            self.apply(tracker, [*prediction.events, action.executed_event(prediction)])
        self.apply(tracker, events)
        if any(isinstance(event, UserUttered) for event in events):
            # An action put words in the user's mouth (a clarified fallback): fill slots.
            await self.extract_slots(tracker, self.context(context.channel,
                                                           context.reply_channel))
        self.schedule_reminders(events, tracker.sender_id, context.reply_channel)
        return action.name not in ENDS_TURN

    def schedule_reminders(self, events: list[Event], sender_id: str,
                           channel: str | None) -> None:
        """Schedule and cancel the reminders of ``events``, in their order (Rasa schedules
        all of one action's reminders before cancelling any). Call under the lock."""
        for event in events:
            if not isinstance(event, (ReminderScheduled, ReminderCancelled)):
                continue
            if self.reminders is None:
                logger.warning("conversation '%s': a '%s' event was logged, but this "
                               "processor has no reminder scheduler (`parley run` and "
                               "`parley shell` have one): nothing is scheduled or "
                               "cancelled.", sender_id,
                               event.type_name)
            elif isinstance(event, ReminderScheduled):
                self.reminders.schedule(sender_id, event, channel)
            else:
                self.reminders.cancel(sender_id, event)

    @staticmethod
    def bot_responses(tracker: DialogueStateTracker, start: int) -> list[dict[str, Any]]:
        """The whole bot messages (:func:`~parley.runtime.output.bot_message`) of the bot
        events added since ``start``."""
        return [bot_message(event) for event in tracker.events[start:]
                if isinstance(event, BotUttered)]

    @classmethod
    def bot_messages(cls, tracker: DialogueStateTracker, start: int) -> list[dict[str, Any]]:
        """The bot events added since ``start`` as the REST channel returns them."""
        return collect(tracker.sender_id, cls.bot_responses(tracker, start))


def model_event_metadata(model: ConversationModel) -> dict[str, str]:
    """What Rasa adds to each logged event's metadata: ``model_id`` and ``assistant_id``
    (config.yml's), those the model has."""
    ids = {MODEL_ID_KEY: model.model_id, ASSISTANT_ID_KEY: model.assistant_id}
    return {key: str(value) for key, value in ids.items() if value}


def _sentence(text: str) -> str:
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _selected_response_key(parse: dict[str, Any]) -> str | None:
    """``faq/ask_name`` when the intent is a retrieval intent the ResponseSelector answered
    (Rasa adds it to the intent as ``full_retrieval_intent_name``)."""
    intent = (parse.get("intent") or {}).get("name")
    selector = parse.get("response_selector") or {}
    if not intent or intent not in selector.get("all_retrieval_intents", []):
        return None
    chosen = selector.get(intent) or selector.get("default") or {}
    key = chosen.get("response", {}).get("intent_response_key")
    return key if isinstance(key, str) else None


def executed_actions(tracker: DialogueStateTracker, start: int = 0) -> list[str]:
    """Names of the actions run since event ``start`` (for tests and logs)."""
    return [event.action_name or event.action_text or ""
            for event in tracker.events[start:] if isinstance(event, ActionExecuted)]
