"""Custom actions on the real rasa-sdk: an action server started from the ``rasa_sdk``
package with actions this test writes, called by Parley's client over loopback
(:mod:`tests.runtime.sdk_server` says where rasa-sdk comes from)."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Iterator

import pytest

from parley.data.domain import Domain
from parley.data.events import ActionExecuted, ActiveLoop, FollowupAction, SlotSet, UserUttered
from parley.data.tracker import DialogueStateTracker
from parley.errors import ActionError, ActionRejected
from parley.runtime.action_server import ActionServerClient
from tests.runtime import sdk_server

DOMAIN = Domain.from_yaml("""
version: "3.1"
intents: [greet, inform]
entities: [name]
slots:
  name:
    type: text
    mappings: [{type: from_entity, entity: name}]
  visits:
    type: float
    mappings: [{type: custom}]
forms:
  name_form:
    required_slots: [name]
responses:
  utter_greet: [{text: "hi {name}"}]
actions: [action_hello, action_refuse, action_crash, validate_name_form]
""")

ACTIONS = textwrap.dedent('''
    from rasa_sdk import Action, FormValidationAction
    from rasa_sdk.events import FollowupAction, SlotSet
    from rasa_sdk.interfaces import ActionExecutionRejection


    class ActionHello(Action):
        def name(self):
            return "action_hello"

        def run(self, dispatcher, tracker, domain):
            name = tracker.get_slot("name")
            said = tracker.latest_message["text"]
            loop = tracker.active_loop.get("name")
            dispatcher.utter_message(text=f"Hello {name}, you said '{said}' in {loop}",
                                     buttons=[{"title": "yes", "payload": "/affirm"}])
            dispatcher.utter_message(response="utter_greet", name=name)
            visits = (tracker.get_slot("visits") or 0) + 1
            return [SlotSet("visits", visits), FollowupAction("utter_greet")]


    class ActionRefuse(Action):
        def name(self):
            return "action_refuse"

        def run(self, dispatcher, tracker, domain):
            raise ActionExecutionRejection(self.name(), "not with this message")


    class ActionCrash(Action):
        def name(self):
            return "action_crash"

        def run(self, dispatcher, tracker, domain):
            raise RuntimeError("the database is gone")


    class ValidateNameForm(FormValidationAction):
        def name(self):
            return "validate_name_form"

        def validate_name(self, slot_value, dispatcher, tracker, domain):
            if str(slot_value).lower() == "nobody":
                dispatcher.utter_message(text="That is not a name.")
                return {"name": None}
            return {"name": str(slot_value).title()}
''')


@pytest.fixture(scope="module")
def action_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with sdk_server.action_server(ACTIONS, tmp_path_factory.mktemp("actions")) as url:
        yield url


def conversation(*extra: object) -> DialogueStateTracker:
    tracker = DialogueStateTracker.from_domain("ada", DOMAIN)
    for event in (ActionExecuted(action_name="action_listen"),
                  UserUttered(text="call me ada", intent={"name": "inform", "confidence": 1.0}),
                  ActiveLoop(name="name_form"), *extra):
        tracker.update(event)  # type: ignore[arg-type]
    return tracker


def call(url: str, name: str, tracker: DialogueStateTracker, **options: object):  # type: ignore[no-untyped-def]
    client = ActionServerClient(url, **options)  # type: ignore[arg-type]
    return asyncio.run(client.run_custom_action(name, tracker, DOMAIN))


def test_a_rasa_sdk_action_should_read_the_tracker_and_answer(action_server: str) -> None:
    result = call(action_server, "action_hello", conversation(SlotSet(key="name", value="Ada")))
    assert result.events == [SlotSet(key="visits", value=1.0),
                             FollowupAction(name="utter_greet")]
    first, second = result.responses
    assert first["text"] == "Hello Ada, you said 'call me ada' in name_form"
    assert first["buttons"] == [{"title": "yes", "payload": "/affirm"}]
    assert second["response"] == "utter_greet" and second["name"] == "Ada"


def test_form_validation_should_run_on_rasa_sdk(action_server: str) -> None:
    # Rasa's form puts the extracted slot candidates last before calling validate_<form>.
    accepted = call(action_server, "validate_name_form",
                    conversation(SlotSet(key="name", value="grace hopper")))
    assert SlotSet(key="name", value="Grace Hopper") in accepted.events

    rejected = call(action_server, "validate_name_form",
                    conversation(SlotSet(key="name", value="nobody")))
    assert SlotSet(key="name", value=None) in rejected.events
    assert [r.get("text") for r in rejected.responses] == ["That is not a name."]


def test_selective_domain_should_work_with_rasa_sdk(action_server: str) -> None:
    # The first call of a fresh client sends no domain to action_hello; rasa-sdk copes.
    result = call(action_server, "action_hello", conversation(SlotSet(key="name", value="Ada")),
                  enable_selective_domain=True)
    assert FollowupAction(name="utter_greet") in result.events


def test_rasa_sdk_rejection_unknown_action_and_crash_should_be_clear(action_server: str) -> None:
    with pytest.raises(ActionRejected, match="'action_refuse' refused to run: not with this"):
        call(action_server, "action_refuse", conversation())
    with pytest.raises(ActionError, match="'action_nope'.*has no action of that name"):
        call(action_server, "action_nope", conversation())
    with pytest.raises(ActionError, match=r"'action_crash' failed.*HTTP 500\).*database is gone"):
        call(action_server, "action_crash", conversation())
