"""Reminders and pauses in the processor, with the scheduler on a real event loop: actions
return Rasa's ``reminder`` / ``cancel_reminder`` / ``pause`` events and the jobs fire a
fraction of a second later. (The server's tests run them with rasa-sdk and a channel.)"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from parley.data.domain import Domain
from parley.data.events import (
    ActionExecuted, ConversationPaused, ConversationResumed, Event, ReminderCancelled,
    ReminderScheduled, UserUttered,
)
from parley.data.tracker import DialogueStateTracker
from parley.errors import ActionError
from parley.runtime.executor import CustomActionResult
from parley.runtime.processor import MessageProcessor, UserMessage, executed_actions
from parley.runtime.reminders import ReminderJob, ReminderScheduler
from tests.runtime.fakes import ScriptedModel

DOMAIN = Domain.from_yaml("""
version: "3.1"
intents: [set, forget, other, EXTERNAL_reminder, EXTERNAL_dry_plant]
entities: [PERSON, plant]
slots:
  PERSON: {type: text, influence_conversation: false,
           mappings: [{type: from_entity, entity: PERSON}]}
responses:
  utter_reminded: [{text: "Remember to call {PERSON}!"}]
  utter_dry: [{text: "Water the plant!"}]
  utter_other: [{text: "ok"}]
actions: [action_set, action_forget, action_hand_over]
""")
PLAN = {"set": ["action_set"], "forget": ["action_forget"], "other": ["utter_other"],
        "EXTERNAL_reminder": ["utter_reminded"], "EXTERNAL_dry_plant": ["utter_dry"],
        "restart": ["action_restart"]}


def since_message(plan: dict[str, list[str]]) -> Callable[[DialogueStateTracker], str]:
    """The latest message's intent's actions in turn, then action_listen. (Counted from
    the message: a paused turn ends without action_listen.)"""
    def policy(tracker: DialogueStateTracker) -> str:
        done = 0
        for event in reversed(tracker.events):
            if isinstance(event, UserUttered):
                break
            done += isinstance(event, ActionExecuted)
        planned = plan.get(tracker.latest_message.intent_name or "", [])
        return planned[done] if done < len(planned) else "action_listen"

    return policy


POLICY = since_message(PLAN)
SOON = 0.15  # seconds until a reminder fires: short, and long enough to write before it

Returns = Callable[[DialogueStateTracker], list[Event]]


class Actions:
    """An action server whose actions return what the test says, call by call."""

    def __init__(self) -> None:
        self.next: dict[str, Returns] = {}

    async def run_custom_action(self, name: str, tracker: DialogueStateTracker,
                                domain: Domain) -> CustomActionResult:
        if name not in self.next:
            raise ActionError(f"no action '{name}' here")
        return CustomActionResult(self.next[name](tracker), [])


def reminder(name: str = "call", seconds: float = SOON, kill: bool = False,
             intent: str = "EXTERNAL_reminder", entities: Any = None) -> ReminderScheduled:
    """What rasa-sdk's ``ReminderScheduled`` makes: a local time without a zone."""
    return ReminderScheduled(intent=intent,
                             trigger_date_time=datetime.now() + timedelta(seconds=seconds),
                             entities=entities, name=name, kill_on_user_message=kill)


class Bot:
    """A processor with a scheduler; ``fired`` lists each fired job and its messages."""

    def __init__(self) -> None:
        self.actions = Actions()
        self.fired: list[tuple[ReminderJob, list[dict[str, Any]] | None]] = []
        self.scheduler = ReminderScheduler(self._fire)
        self.processor = MessageProcessor(ScriptedModel(DOMAIN, POLICY), executor=self.actions,
                                          reminders=self.scheduler, seed=0)

    async def _fire(self, job: ReminderJob) -> None:
        messages = await self.processor.handle_reminder(job.event, job.sender_id,
                                                        job.output_channel)
        self.fired.append((job, messages))

    async def say(self, text: str, sender: str = "ada") -> list[str]:
        replies = await self.processor.handle_message(UserMessage(
            text, sender, input_channel="rest", output_channel="rest"))
        return [reply.get("text", "") for reply in replies]

    async def tracker(self, sender: str = "ada") -> DialogueStateTracker:
        tracker = await self.processor.tracker_store.retrieve(sender)
        assert tracker is not None
        return tracker

    def texts(self) -> list[list[str] | None]:
        return [None if messages is None else [m.get("text", "") for m in messages]
                for _, messages in self.fired]


def run(test: Callable[[Bot], Awaitable[None]]) -> Bot:
    bot = Bot()

    async def main() -> None:
        try:
            await test(bot)
        finally:
            await bot.scheduler.close()

    asyncio.run(main())
    return bot


def test_a_reminder_an_action_sets_should_trigger_its_intent_with_its_entities():
    async def test(bot: Bot) -> None:
        bot.actions.next["action_set"] = lambda tracker: [
            reminder(entities=[{"entity": "PERSON", "value": "Ada"}])]
        assert await bot.say('/set{"PERSON": "Ada"}') == []
        [job] = bot.scheduler.pending("ada")
        assert job.event.name == "call" and job.output_channel == "rest"
        await asyncio.sleep(SOON + 0.2)
        assert bot.texts() == [["Remember to call Ada!"]]
        assert bot.scheduler.pending() == []
        tracker = await bot.tracker()
        external = [e for e in tracker.events if isinstance(e, UserUttered)][-1]
        assert external.text == "EXTERNAL: EXTERNAL_reminder"
        assert external.intent == {"name": "EXTERNAL_reminder"}
        assert external.input_channel == "rest" and external.metadata["is_external"] is True
        assert executed_actions(tracker)[-2:] == ["utter_reminded", "action_listen"]

    run(test)


def test_a_reminder_of_the_same_name_should_replace_the_one_waiting():
    async def test(bot: Bot) -> None:
        bot.actions.next["action_set"] = lambda tracker: [reminder(entities={
            "PERSON": tracker.latest_message.entities[0]["value"]})]
        await bot.say('/set{"PERSON": "Ada"}')
        await bot.say('/set{"PERSON": "Bob"}')
        await bot.say('/set{"PERSON": "Cy"}', sender="cy")  # same name, other conversation
        assert [job.sender_id for job in bot.scheduler.pending()] == ["ada", "cy"]
        await asyncio.sleep(SOON + 0.2)
        assert sorted(bot.texts()) == [["Remember to call Bob!"], ["Remember to call Cy!"]]

    run(test)


def test_a_user_message_should_void_a_reminder_with_kill_on_user_message():
    async def test(bot: Bot) -> None:
        bot.actions.next["action_set"] = lambda tracker: [
            reminder("killed", kill=True), reminder("kept", intent="EXTERNAL_dry_plant")]
        await bot.say("/set")
        assert await bot.say("/other") == ["ok"]
        await asyncio.sleep(SOON + 0.2)
        fired = {job.event.name: messages for job, messages in bot.fired}
        assert fired["killed"] is None
        assert [m["text"] for m in fired["kept"] or []] == ["Water the plant!"]

    run(test)


def test_a_cancellation_should_cancel_the_matching_reminders_of_its_conversation():
    async def test(bot: Bot) -> None:
        bot.actions.next["action_set"] = lambda tracker: [
            reminder("call", seconds=5), reminder("water", 5, intent="EXTERNAL_dry_plant"),
            reminder("call_bob", 5, entities=[{"entity": "PERSON", "value": "Bob"}])]
        await bot.say("/set")
        await bot.say("/set", sender="cy")

        def names(sender: str) -> list[str]:
            return sorted(job.event.name for job in bot.scheduler.pending(sender))

        for cancel, left in (
                (ReminderCancelled(name="call"), ["call_bob", "water"]),
                (ReminderCancelled(intent="EXTERNAL_dry_plant"), ["call_bob"]),
                (ReminderCancelled(entities=[{"entity": "PERSON", "value": "Ada"}]),
                 ["call_bob"]),
                (ReminderCancelled(), [])):
            bot.actions.next["action_forget"] = lambda tracker, cancel=cancel: [cancel]
            await bot.say("/forget")
            assert names("ada") == left, cancel
        assert names("cy") == ["call", "call_bob", "water"]

    run(test)


def test_a_restart_or_a_new_session_should_void_a_reminder_set_before():
    async def test(bot: Bot) -> None:
        bot.actions.next["action_set"] = lambda tracker: [reminder()]
        await bot.say("/set")
        await bot.say("/restart")
        await asyncio.sleep(SOON + 0.2)
        assert bot.texts() == [None]

    run(test)


def test_a_session_expired_by_then_should_void_a_reminder_and_save_nothing():
    async def test(bot: Bot) -> None:
        now = [1_000_000.0]
        bot.processor.clock = lambda: now[0]
        bot.actions.next["action_set"] = lambda tracker: [reminder()]
        await bot.say("/set")
        saved = len((await bot.tracker()).events)
        now[0] += 2 * 3600  # past the default 60 minutes of session_expiration_time
        await asyncio.sleep(SOON + 0.2)
        assert bot.texts() == [None]
        assert len((await bot.tracker()).events) == saved  # the next message starts it

    run(test)


def test_a_reminder_whose_time_has_passed_should_fire_at_once():
    async def test(bot: Bot) -> None:
        bot.actions.next["action_set"] = lambda tracker: [
            reminder(seconds=-3600, entities={"PERSON": "Ada"})]
        await bot.say("/set")
        await asyncio.sleep(0.05)
        assert bot.texts() == [["Remember to call Ada!"]]

    run(test)


def test_a_paused_conversation_should_record_messages_and_run_nothing():
    async def test(bot: Bot) -> None:
        await bot.processor.append_events("ada", [ConversationPaused()])
        assert await bot.say('/other{"PERSON": "Ada"}') == []
        tracker = await bot.tracker()
        assert tracker.paused and tracker.latest_message.intent_name == "other"
        assert tracker.get_slot("PERSON") == "Ada"  # slots are still filled, as in Rasa
        assert executed_actions(tracker)[-1] == "action_listen"
        # A reminder firing meanwhile is recorded and answers nothing either.
        bot.actions.next["action_set"] = lambda tracker: [reminder(seconds=0)]
        await bot.processor.execute_action("ada", "action_set")
        await asyncio.sleep(0.05)
        assert bot.texts() == [[]]
        await bot.processor.append_events("ada", [ConversationResumed()])
        assert await bot.say("/other") == ["ok"]

    run(test)


def test_an_action_pausing_should_stop_the_actions_after_it_and_a_restart_resumes():
    async def test(bot: Bot) -> None:
        bot.actions.next["action_set"] = lambda tracker: [ConversationPaused()]
        bot.processor.model.policy = since_message(  # type: ignore[attr-defined]
            {**PLAN, "set": ["action_set", "utter_other"]})
        assert await bot.say("/set") == []
        assert executed_actions(await bot.tracker())[-1] == "action_set"
        assert await bot.say("/other") == []
        await bot.say("/restart")  # the restart intent is still acted on
        assert not (await bot.tracker()).paused
        assert await bot.say("/other") == ["ok"]

    run(test)


def test_the_events_api_should_schedule_only_with_execute_side_effects():
    async def test(bot: Bot) -> None:
        await bot.say("/other")
        await bot.processor.append_events("ada", [reminder("logged")])
        assert bot.scheduler.pending() == []
        await bot.processor.append_events("ada", [reminder("scheduled")],
                                          execute_side_effects=True, output_channel="latest")
        [job] = bot.scheduler.pending()
        assert job.event.name == "scheduled" and job.output_channel == "rest"
        await bot.processor.append_events("ada", [ReminderCancelled(name="scheduled")],
                                          execute_side_effects=True)
        assert bot.scheduler.pending() == []

    run(test)


def test_without_a_scheduler_a_reminder_should_be_logged_and_said_to_go_nowhere(caplog):
    actions = Actions()
    actions.next["action_set"] = lambda tracker: [reminder()]
    processor = MessageProcessor(ScriptedModel(DOMAIN, POLICY), executor=actions)
    with caplog.at_level(logging.WARNING):
        asyncio.run(processor.handle_message(UserMessage("/set", "ada")))
    assert "a 'reminder' event was logged, but this processor has no reminder scheduler" \
        in caplog.text


def test_closing_the_scheduler_should_drop_the_waiting_jobs():
    async def test(bot: Bot) -> None:
        bot.actions.next["action_set"] = lambda tracker: [reminder()]
        await bot.say("/set")
        await bot.scheduler.close()
        assert bot.scheduler.pending() == []
        await asyncio.sleep(SOON + 0.1)
        assert bot.fired == []

    run(test)


def test_closing_should_wait_for_firing_jobs_and_schedule_nothing_they_set():
    # A reminder whose action sets the next one at once (a chain), closed while firing:
    # close() returns once the firing one is done, and what it set is not scheduled.
    async def test(bot: Bot) -> None:
        bot.actions.next["action_set"] = lambda tracker: [reminder(seconds=0, intent="set")]
        await bot.say("/set")
        await asyncio.sleep(0.05)  # the first link fires
        await bot.scheduler.close()
        fired = len(bot.fired)
        assert bot.scheduler.pending() == []
        await asyncio.sleep(0.1)
        assert len(bot.fired) == fired  # nothing fires after close

    run(test)


def test_cancelling_should_not_look_at_other_conversations_jobs():
    # With a reminder in each of many conversations, a turn that cancels its own must not
    # walk through everyone's (it holds the event loop meanwhile). The other conversations'
    # ids count every comparison made with them.
    class Watched(str):
        compared = 0

        def __eq__(self, other: object) -> bool:
            Watched.compared += 1
            return str.__eq__(self, other)

        __hash__ = str.__hash__

    async def test(bot: Bot) -> None:
        for number in range(200):
            bot.scheduler.schedule(Watched(f"user{number}"), reminder(seconds=60))
        bot.scheduler.schedule("ada", reminder("a", seconds=60))
        bot.scheduler.schedule("ada", reminder("b", seconds=60))
        Watched.compared = 0
        cancelled = bot.scheduler.cancel("ada", ReminderCancelled(name="a"))
        assert [job.event.name for job in bot.scheduler.pending("ada")] == ["b"]
        assert Watched.compared == 0
        assert [job.event.name for job in cancelled] == ["a"]
        assert len(bot.scheduler.pending()) == 201

    run(test)


def test_jobs_fired_cancelled_or_replaced_should_leave_nothing_behind():
    # Memory holds the waiting jobs only: no trace of a conversation whose reminders are
    # gone, however many conversations there were.
    async def test(bot: Bot) -> None:
        for number in range(100):
            sender = f"user{number}"
            bot.scheduler.schedule(sender, reminder("a", seconds=0.05))
            bot.scheduler.schedule(sender, reminder("a", seconds=0.05))  # replaces
            bot.scheduler.schedule(sender, reminder("b", seconds=60))
            bot.scheduler.cancel(sender, ReminderCancelled(name="b"))
        await asyncio.sleep(0.3)
        assert len(bot.fired) == 100 and bot.scheduler.pending() == []
        assert bot.scheduler._jobs == {}  # noqa: SLF001 - what memory holds

    run(test)
