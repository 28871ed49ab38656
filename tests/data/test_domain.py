from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from parley.data.domain import (
    DEFAULT_ACTIONS, DEFAULT_INTENTS, Action, Domain, EntityType, Form, Intent, SessionConfig,
    Slot,
)
from parley.data.formats.domain_yaml import read_domain
from parley.errors import FormatVersionError, ParleyWarning
from tests.conftest import SHARED_DATA, needs_shared_data

BOTS = SHARED_DATA / "bots"
RASA3_BOTS = sorted(
    p.parent.name for p in BOTS.glob("*/domain.yml") if p.parent.name != "carbon-bot"
)

SMALL = """
version: "3.1"
intents:
  - greet
  - inform:
      use_entities: [city]
  - faq:
      is_retrieval_intent: true
entities:
  - city:
      roles: [from, to]
  - date
slots:
  city:
    type: text
    mappings:
    - type: from_entity
      entity: city
responses:
  utter_greet:
  - text: hi
  utter_faq/ask_name:
  - text: I am a bot
  utter_ask_city:
  - text: where?
actions:
  - action_search
  - action_session_start
forms:
  travel_form:
    required_slots: [city]
"""


@pytest.fixture
def small() -> Domain:
    return Domain.from_yaml(SMALL, "small.yml")


def test_should_keep_declared_intents_apart_from_builtin_ones(small: Domain):
    assert list(small.intents) == ["greet", "inform", "faq"]
    assert small.intent_names == sorted({"greet", "inform", "faq", *DEFAULT_INTENTS})
    assert small.retrieval_intents == ["faq"]


def test_action_names_should_follow_rasa_order(small: Domain):
    names = small.action_names
    assert names[: len(DEFAULT_ACTIONS)] == list(DEFAULT_ACTIONS)
    assert names[0] == "action_listen"
    # declared actions (an overridden default keeps its default place), then responses
    # sorted by name (a retrieval response adds its base action utter_faq), then forms
    assert names[len(DEFAULT_ACTIONS):] == [
        "action_search", "utter_ask_city", "utter_faq", "utter_faq/ask_name", "utter_greet",
        "travel_form",
    ]
    assert len(names) == len(set(names))


def test_should_add_requested_slot_when_forms_exist(small: Domain):
    assert list(small.slots) == ["city"]
    assert small.slot_names == ["city", "requested_slot", "session_started_metadata"]
    requested = small.all_slots[1]
    assert (requested.type, requested.influence_conversation, requested.mappings) == ("text", False, [])


def test_should_not_add_requested_slot_twice_or_without_forms():
    domain = Domain(slots={"requested_slot": Slot("requested_slot", "any")}, forms={"f": Form("f")})
    assert domain.slot_names == ["requested_slot", "session_started_metadata"]
    assert Domain().slot_names == ["session_started_metadata"]


def test_should_add_knowledge_base_slots_for_the_knowledge_base_action():
    domain = Domain(actions={"action_query_knowledge_base": Action("action_query_knowledge_base")})
    assert domain.slot_names == [
        "knowledge_base_listed_objects", "knowledge_base_last_object",
        "knowledge_base_last_object_type", "session_started_metadata",
    ]


def test_used_entities_should_follow_use_and_ignore_entities_with_roles(small: Domain):
    assert small.used_entities("greet") == ["city", "city#from", "city#to", "date"]
    assert small.used_entities("inform") == ["city", "city#from", "city#to"]
    assert small.used_entities("restart") == ["city", "city#from", "city#to", "date"]
    small.intents["greet"].ignore_entities = ["city"]
    assert small.used_entities("greet") == ["date"]


def test_entities_that_do_not_influence_conversation_should_be_ignored_by_default():
    domain = Domain(entities={"a": EntityType("a"), "b": EntityType("b", influence_conversation=False)},
                    intents={"x": Intent("x"), "y": Intent("y", use_entities=["b"], ignore_entities=["a"])})
    assert domain.used_entities("x") == ["a"]
    assert domain.used_entities("y") == ["b"]


def test_validate_actions_and_send_domain_actions_should_need_the_domain():
    domain = Domain(actions={"a": Action("a", send_domain=True), "b": Action("b")})
    assert domain.action_needs_domain("a")
    assert not domain.action_needs_domain("b")
    assert domain.action_needs_domain("validate_travel_form")


def test_empty_domain_should_be_empty_and_round_trip():
    assert Domain.empty().is_empty()
    assert Domain.from_dict(Domain.empty().as_dict()) == Domain.empty()
    assert not Domain(intents={"greet": Intent("greet")}).is_empty()


def test_as_dict_should_be_plain_json_and_rebuild_the_same_domain(small: Domain):
    data = small.as_dict()
    text = json.dumps(data, sort_keys=True)
    assert json.dumps(small.as_dict(), sort_keys=True) == text
    assert Domain.from_dict(json.loads(text)) == small
    assert data["intents"] == ["greet", {"inform": {"use_entities": ["city"]}},
                               {"faq": {"is_retrieval_intent": True}}]
    assert data["session_config"] == {"session_expiration_time": 60,
                                      "carry_over_slots_to_new_session": True}


def test_locations_should_not_count_for_equality(small: Domain):
    other = Domain.from_yaml(SMALL)
    assert other == small
    assert small.locations[("intent", "inform")] == ("small.yml", 5)
    assert other.locations[("intent", "inform")] == ("<text>", 5)


# ---- merge ---------------------------------------------------------------------------------

FIRST = """
intents: [greet, bye]
slots:
  name:
    type: text
    mappings: [{type: from_text}]
responses:
  utter_greet: [{text: hi}]
session_config:
  session_expiration_time: 0
"""
SECOND = """
intents: [bye, thanks]
entities: [name]
slots:
  name:
    type: any
    mappings: [{type: custom}]
responses:
  utter_greet: [{text: hi}]
  utter_bye: [{text: bye}]
actions: [first_form, action_x]
session_config:
  session_expiration_time: 30
config:
  store_entities_as_slots: false
"""


def test_merge_should_union_names_and_keep_the_first_definition_with_a_warning():
    first = Domain.from_yaml(FIRST + "forms:\n  first_form: {}\n", "a.yml")
    second = Domain.from_yaml(SECOND, "b.yml")
    with pytest.warns(ParleyWarning) as record:
        merged = first.merge(second)
    assert [str(w.message) for w in record] == [
        "b.yml:5: slot 'name' is defined again with a different definition; "
        "the first definition (a.yml:4) is kept."
    ]
    assert list(merged.intents) == ["greet", "bye", "thanks"]
    assert merged.slots["name"].type == "text"
    assert list(merged.responses) == ["utter_greet", "utter_bye"]
    assert list(merged.actions) == ["action_x"]  # a form of the first file is not an action
    assert merged.session_config == SessionConfig(0, True)
    assert merged.store_entities_as_slots is True
    assert merged.locations[("intent", "thanks")] == ("b.yml", 2)
    assert merged.locations[("intent", "bye")] == ("a.yml", 2)


def test_merge_should_take_session_config_when_the_first_has_the_default():
    merged = Domain.from_yaml("intents: [a]").merge(Domain.from_yaml(SECOND))
    assert merged.session_config == SessionConfig(30, True)


def test_merge_with_an_empty_domain_should_give_the_other_unchanged():
    second = Domain.from_yaml(SECOND, "b.yml")
    assert Domain.empty().merge(second) == second
    assert second.merge(Domain.empty()) == second
    assert Domain.empty().merge(second).store_entities_as_slots is False


def test_merge_should_not_warn_about_identical_duplicates():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        merged = Domain.from_yaml(FIRST).merge(Domain.from_yaml(FIRST))
    assert merged == Domain.from_yaml(FIRST)


# ---- the bots in ../shared/data ---------------------------------------------------------------

@needs_shared_data
@pytest.mark.parametrize("bot", RASA3_BOTS)
def test_every_rasa3_bot_domain_should_load_with_the_published_counts(bot: str):
    stats = json.loads((BOTS / "bots.json").read_text())[bot]["stats"]
    domain = read_domain(BOTS / bot / "domain.yml")
    counts = {
        "domain_intents": len(domain.intents), "entities": len(domain.entities),
        "slots": len(domain.slots), "forms": len(domain.forms), "responses": len(domain.responses),
    }
    assert counts == {key: stats[key] for key in counts}
    assert domain.action_names[0] == "action_listen"
    assert set(DEFAULT_INTENTS) <= set(domain.intent_names)


@needs_shared_data
def test_financial_demo_should_keep_yes_and_no_as_strings():
    domain = read_domain(BOTS / "financial-demo" / "domain.yml")
    values = [m.value for m in domain.slots["zz_confirm_form"].mappings if m.type == "from_intent"]
    assert values == ["yes", "no"]
    assert domain.slots["currency"].initial_value == "$"
    assert domain.intents["check_balance"].use_entities == ["credit_card", "account_type"]
    assert domain.intents["pay_cc"].use_entities == []


@needs_shared_data
def test_carbon_bot_should_be_refused_as_a_rasa2_domain():
    with pytest.raises(FormatVersionError) as info:
        read_domain(BOTS / "carbon-bot" / "domain.yml")
    error = info.value
    assert error.file == str(BOTS / "carbon-bot" / "domain.yml")
    assert error.line == 39
    assert "(version '2.0')" in error.message
    assert "form 'airtravel_form' (line 286) gives slot mappings under required_slots" in error.message
    assert "10 slot(s) have no 'mappings': 'context_scenario' (line 39)" in error.message
    assert error.hint is not None
    for advice in ("`mappings:`", "`required_slots:`", "rasa data migrate", 'version: "3.1"'):
        assert advice in error.hint


def test_domain_module_should_not_import_the_yaml_layer_at_import_time():
    source = Path(__file__).resolve().parents[2] / "parley" / "data" / "domain.py"
    top_level = [line for line in source.read_text().splitlines() if line.startswith(("import", "from"))]
    assert not any("domain_yaml" in line for line in top_level)
