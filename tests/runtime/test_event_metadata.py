"""What each logged event carries, as in Rasa 3.6: user events their message's id (a new
one when the channel gives none), every event the model's and the assistant's ids in its
metadata — on real conversations with the moodbot and the formbot."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from parley.data.domain import SESSION_START_METADATA_SLOT
from parley.data.events import (
    ActionExecuted, ActiveLoop, BotUttered, Event, SlotSet, UserUttered, events_from_dicts,
)
from parley.runtime.processor import MessageProcessor, UserMessage
from tests.conftest import needs_shared_data
from tests.runtime.conftest import CONFIG, train_bot_model
from tests.runtime.fakes import FormValidator

pytestmark = needs_shared_data

ASSISTANT = "moodbot-events-test"
NEW_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture(scope="module")
def named_moodbot(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The moodbot trained with config.yml's ``assistant_id`` set."""
    from parley.serving.agent import load

    config = f"assistant_id: {ASSISTANT}\n{CONFIG}"
    return load(train_bot_model("rasa-example-moodbot", tmp_path_factory.mktemp("named"),
                                config))


def send(processor: MessageProcessor, message: UserMessage) -> list[dict[str, Any]]:
    return asyncio.run(processor.handle_message(message))


def events_of(processor: MessageProcessor, sender: str = "user") -> list[Event]:
    tracker = asyncio.run(processor.tracker_store.retrieve(sender))
    return list(tracker.events)


def model_ids(agent: Any) -> dict[str, str]:
    return {"model_id": agent.model_id, "assistant_id": agent.assistant_id}


def test_every_event_of_a_conversation_should_name_the_model_and_the_assistant(
        named_moodbot: Any) -> None:
    assert named_moodbot.assistant_id == ASSISTANT
    assert named_moodbot.model_id not in ("", "None")
    processor = MessageProcessor(named_moodbot, seed=0)
    for text in ("hello", "I am sad", "yes"):
        send(processor, UserMessage(text, "user"))
    events = events_of(processor)
    kinds = {type(event) for event in events}
    assert {ActionExecuted, UserUttered, BotUttered} <= kinds
    for event in events:
        assert event.metadata.get("model_id") == named_moodbot.model_id, event
        assert event.metadata.get("assistant_id") == ASSISTANT, event
        assert event.to_dict()["metadata"] == event.metadata


def test_a_message_metadata_should_be_kept_and_its_own_keys_should_win(
        named_moodbot: Any) -> None:
    processor = MessageProcessor(named_moodbot, seed=0)
    sent = {"locale": "de", "model_id": "the client's"}
    send(processor, UserMessage("hello", "user", metadata=dict(sent)))
    events = events_of(processor)
    user = next(event for event in events if isinstance(event, UserUttered))
    # Rasa adds the keys the event lacks after those it has.
    assert list(user.metadata.items()) == [("locale", "de"), ("model_id", "the client's"),
                                           ("assistant_id", ASSISTANT)]
    # parse_data keeps the message's metadata as it came, as Rasa's does.
    assert user.to_dict()["parse_data"]["metadata"] == sent
    # The session's metadata slot holds the message's metadata, not the model's ids.
    slot = next(event for event in events if isinstance(event, SlotSet)
                and event.key == SESSION_START_METADATA_SLOT)
    assert slot.value == sent
    assert slot.metadata == model_ids(named_moodbot)


def test_stored_events_should_read_back_as_they_were_written(named_moodbot: Any) -> None:
    processor = MessageProcessor(named_moodbot, seed=0)
    send(processor, UserMessage("hello", "user", metadata={"locale": "de"}))
    written = [event.to_dict() for event in events_of(processor)]
    assert [event.to_dict() for event in events_from_dicts(written)] == written


def test_each_user_message_should_get_its_own_id_unless_the_channel_gives_one(
        named_moodbot: Any) -> None:
    processor = MessageProcessor(named_moodbot, seed=0)
    send(processor, UserMessage("hello", "user"))
    send(processor, UserMessage("I am sad", "user"))
    send(processor, UserMessage("yes", "user", message_id="platform-1234"))
    users = [event.to_dict() for event in events_of(processor) if isinstance(event, UserUttered)]
    ids = [user["message_id"] for user in users]
    assert all(NEW_ID.fullmatch(found) for found in ids[:2]) and ids[0] != ids[1]
    assert ids[2] == "platform-1234"
    assert [user["parse_data"]["message_id"] for user in users] == ids


def test_an_external_intent_should_have_no_message_id_and_say_it_is_external(
        named_moodbot: Any) -> None:
    processor = MessageProcessor(named_moodbot, seed=0)
    send(processor, UserMessage("hello", "user", input_channel="rest"))
    tracker, _ = asyncio.run(processor.trigger_intent("user", "mood_great"))
    external = [event for event in tracker.events if isinstance(event, UserUttered)][-1]
    assert isinstance(external, UserUttered) and external.text == "EXTERNAL: mood_great"
    written = external.to_dict()
    assert written["message_id"] is None and written["input_channel"] == "rest"
    assert written["metadata"] == {"is_external": True, **model_ids(named_moodbot)}
    assert written["parse_data"]["metadata"] == {"is_external": True}
    # No NLU scored it: the intent has no confidence, as Rasa's create_external stores it.
    assert written["parse_data"]["intent"] == {"name": "mood_great"}
    assert [event.to_dict() for event in events_from_dicts([written])] == [written]


def test_appended_events_should_be_named_and_replaced_ones_kept_as_sent(
        named_moodbot: Any) -> None:
    processor = MessageProcessor(named_moodbot, seed=0)
    appended = asyncio.run(processor.append_events("a", [
        SlotSet(key="x", value=1), SlotSet(key="y", value=2, metadata={"assistant_id": "other"})]))
    assert appended.events[-2].metadata == model_ids(named_moodbot)
    assert appended.events[-1].metadata == {"assistant_id": "other",
                                            "model_id": named_moodbot.model_id}
    # Rasa builds the new conversation from the events alone: no model names them.
    replaced = asyncio.run(processor.replace_events("b", [
        ActionExecuted(action_name="action_listen"), SlotSet(key="x", value=1)]))
    assert [event.metadata for event in replaced.events] == [{}, {}]


def test_a_form_conversation_should_name_the_model_on_every_event(formbot: Any) -> None:
    validator = FormValidator("restaurant_form", {})
    processor = MessageProcessor(formbot, executor=validator, seed=0)
    for text in ("hi", "im looking for a restaurant", '/inform{"cuisine": "italian"}'):
        send(processor, UserMessage(text, "user"))
    events = events_of(processor)
    # The form's own events and those its validation action returned are named too.
    assert any(isinstance(event, ActiveLoop) for event in events)
    assert any(isinstance(event, SlotSet) and event.key == "cuisine" for event in events)
    assert validator.calls
    for event in events:
        assert {key: event.metadata.get(key) for key in ("model_id", "assistant_id")} == \
            model_ids(formbot), event


def test_a_model_without_ids_should_leave_metadata_as_it_is(tmp_path: Path) -> None:
    from parley.data.domain import Domain
    from tests.runtime.fakes import ScriptedModel

    domain = Domain.from_yaml("intents: [greet]\nresponses:\n  utter_hi:\n  - text: hi\n")
    processor = MessageProcessor(ScriptedModel(domain))
    send(processor, UserMessage("/greet", "user", metadata={"locale": "de"}))
    events = events_of(processor)
    user = next(event for event in events if isinstance(event, UserUttered))
    assert user.metadata == {"locale": "de"}
    assert all(event.metadata == {} for event in events if not isinstance(event, UserUttered)
               and not (isinstance(event, SlotSet) and event.key == SESSION_START_METADATA_SLOT))
