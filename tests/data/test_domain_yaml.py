from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from parley.data.domain import Domain
from parley.data.formats.domain_yaml import domain_to_yaml, read_domain, write_domain
from parley.errors import DataError, FormatVersionError, ParleyWarning, SchemaError
from tests.conftest import SHARED_DATA, needs_shared_data
from tests.data.unreadable import make_unreadable

BOTS = SHARED_DATA / "bots"
RASA3_BOTS = sorted(
    p.parent.name for p in BOTS.glob("*/domain.yml") if p.parent.name != "carbon-bot"
)


def load(text: str) -> Domain:
    return Domain.from_yaml(text, "d.yml")


def error_of(text: str, kind: type[DataError] = SchemaError) -> DataError:
    with pytest.raises(kind) as info:
        load(text)
    return info.value


# ---- round trip ----------------------------------------------------------------------------

@needs_shared_data
@pytest.mark.parametrize("bot", RASA3_BOTS)
def test_every_bot_domain_should_survive_write_and_read(bot: str, tmp_path: Path):
    domain = read_domain(BOTS / bot / "domain.yml")
    write_domain(domain, tmp_path / "domain.yml")
    again = read_domain(tmp_path / "domain.yml")
    assert again == domain
    assert domain_to_yaml(again) == domain_to_yaml(domain)


def test_written_yaml_should_quote_strings_that_look_like_booleans():
    domain = load("""
slots:
  confirm:
    type: any
    mappings:
    - type: from_intent
      intent: affirm
      value: yes
    - type: from_intent
      intent: deny
      value: false
""")
    values = [m.value for m in domain.slots["confirm"].mappings]
    assert values == ["yes", False]
    text = domain_to_yaml(domain)
    assert "value: 'yes'" in text
    assert text.startswith("version: '3.1'\n")
    assert [m.value for m in load(text).slots["confirm"].mappings] == ["yes", False]


def test_categorical_values_should_stay_as_written():
    domain = load("slots:\n  a:\n    type: categorical\n    values: [no, Low, 1]\n"
                  "    mappings: [{type: custom}]\n")
    assert domain.slots["a"].values == ["no", "Low", 1]


# ---- several files -----------------------------------------------------------------------------

def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_should_merge_a_list_of_files_in_order(tmp_path: Path):
    a = write(tmp_path / "a.yml", "intents: [greet]\nresponses:\n  utter_greet: [{text: hi}]\n")
    b = write(tmp_path / "b.yml", "intents: [bye]\nresponses:\n  utter_greet: [{text: hello}]\n")
    with pytest.warns(ParleyWarning, match="response 'utter_greet' is defined again"):
        domain = read_domain([a, str(b)])
    assert list(domain.intents) == ["greet", "bye"]
    assert domain.responses["utter_greet"] == [{"text": "hi"}]
    assert domain.locations[("intent", "bye")] == (str(b), 1)


def test_should_read_every_domain_file_below_a_directory_in_sorted_order(tmp_path: Path):
    write(tmp_path / "z_slots.yaml", "slots:\n  s:\n    type: text\n    mappings: [{type: custom}]\n")
    write(tmp_path / "a" / "intents.yml", "version: '3.1'\nintents: [b_intent]\n")
    write(tmp_path / "b.yml", "intents: [a_intent]\n")
    write(tmp_path / "nlu.yml", "version: '3.1'\nnlu:\n- intent: greet\n  examples: '- hi'\n")
    write(tmp_path / "notes.txt", "intents: [ignored]\n")
    domain = read_domain(tmp_path)
    assert list(domain.intents) == ["b_intent", "a_intent"]
    assert list(domain.slots) == ["s"]


def test_should_raise_when_the_domain_path_does_not_exist(tmp_path: Path):
    with pytest.raises(DataError) as info:
        read_domain(tmp_path / "missing.yml")
    assert info.value.message == "the domain file or directory does not exist."


def test_should_name_the_first_file_of_a_list_that_is_not_a_domain(tmp_path: Path):
    nlu = write(tmp_path / "nlu.yml", "version: '3.1'\nnlu: []\n")
    with pytest.raises(SchemaError) as info:
        read_domain(nlu)
    assert str(info.value).startswith(f"{nlu}:2: unknown key 'nlu' in the domain.")


# ---- versions -----------------------------------------------------------------------------------

def test_should_warn_and_skip_a_file_newer_than_parley_reads(tmp_path: Path):
    a = write(tmp_path / "a.yml", "intents: [greet]\n")
    b = write(tmp_path / "b.yml", "version: '4.0'\nintents: [bye]\nfuture_key: 1\n")
    with pytest.warns(ParleyWarning, match="newer than 3.1 .* the file is skipped"):
        domain = read_domain([a, b])
    assert list(domain.intents) == ["greet"]


def test_should_refuse_a_rasa2_domain_saying_what_is_old_and_how_to_fix_it():
    error = error_of("""version: "2.0"
slots:
  cuisine:
    type: text
forms:
  restaurant_form:
    required_slots:
      cuisine:
      - type: from_entity
        entity: cuisine
""", FormatVersionError)
    assert error.line == 3
    assert error.message == (
        "this is a Rasa 2.x domain (version '2.0'), which Parley does not read: form "
        "'restaurant_form' (line 6) gives slot mappings under required_slots; 1 slot(s) have "
        "no 'mappings': 'cuisine' (line 3)."
    )
    assert error.hint == (
        "To migrate: move each form slot's mappings to that slot's own `mappings:` (add "
        "`conditions: [{active_loop: <form>}]` where they applied only inside the form) and "
        "list just the slot names under `required_slots:`; give every slot a `mappings:` list "
        "(`- type: custom` when only actions set it); set `version: \"3.1\"`. Rasa 3's "
        "`rasa data migrate` does this for you, or edit by hand "
        "(https://rasa.com/docs/rasa/migration-guide)."
    )


def test_should_refuse_rasa2_forms_even_in_a_file_that_says_3_1():
    error = error_of('version: "3.1"\nforms:\n  f:\n    cuisine:\n    - type: from_text\n',
                     FormatVersionError)
    assert error.message.startswith("this domain (version '3.1') uses syntax from before Rasa 3")
    assert "form 'f' (line 3) gives slot mappings" in error.message


def test_should_refuse_rasa1_templates():
    error = error_of("templates:\n  utter_a:\n  - text: hi\n", FormatVersionError)
    assert "responses are under 'templates' (Rasa 1.x)" in error.message
    assert "rename 'templates:' to 'responses:'" in (error.hint or "")


def test_should_raise_when_a_3x_slot_has_no_mappings_like_rasa3():
    error = error_of('version: "3.1"\nslots:\n  a:\n    type: text\n')
    assert (error.line, error.message) == (
        3, "slot 'a' has no 'mappings'; Rasa 3 requires every slot to say how it is filled.")


# ---- schema errors with their exact messages ----------------------------------------------------

def test_should_raise_on_an_unknown_top_level_key_with_did_you_mean():
    error = error_of("intens: [greet]\n")
    assert str(error) == (
        "d.yml:1: unknown key 'intens' in the domain. Did you mean 'intents'? Valid keys: "
        "actions, config, e2e_actions, entities, forms, intents, responses, session_config, "
        "slots, version."
    )


@pytest.mark.parametrize("text, line, message", [
    ("slots:\n  a:\n    type: txt\n    mappings: [{type: custom}]\n", 3,
     "slot 'a' has the unknown type 'txt'. Did you mean 'text'?"),
    ("slots:\n  a:\n    type: my.Slot\n    mappings: [{type: custom}]\n", 3,
     "slot 'a' uses the custom slot class 'my.Slot'; Parley supports only Rasa's built-in slot types."),
    ("slots:\n  a:\n    type: categorical\n    mappings: [{type: custom}]\n", 3,
     "categorical slot 'a' has no 'values'."),
    ("slots:\n  a:\n    type: text\n    values: [x]\n    mappings: [{type: custom}]\n", 4,
     "unknown key 'values' in slot 'a' (type text)."),
    ("slots:\n  a:\n    type: any\n    influence_conversation: true\n    mappings: [{type: custom}]\n",
     4, "slot 'a' has type any, which cannot influence the conversation."),
    ("slots:\n  a:\n    type: float\n    min_value: 5\n    max_value: 1\n    mappings: [{type: custom}]\n",
     4, "float slot 'a' has min_value 5 not below max_value 1."),
    ("slots:\n  a:\n    type: text\n    mappings:\n    - type: from_entitiy\n      entity: x\n", 5,
     "mapping 1 of slot 'a' has the unknown type 'from_entitiy'. Did you mean 'from_entity'?"),
    ("slots:\n  a:\n    type: text\n    mappings:\n    - type: from_intent\n      intent: affirm\n", 5,
     "mapping 1 of slot 'a' (from_intent) needs a value for 'value'."),
    ("slots:\n  a:\n    type: text\n    mappings:\n    - type: custom\n      conditions:\n"
     "      - active_loop: f\n        requested_slots: a\n", 8,
     "unknown key 'requested_slots' in condition 1 of mapping 1 of slot 'a'. "
     "Did you mean 'requested_slot'?"),
    ("forms:\n  f:\n    required_slots: a\n", 3,
     "required_slots of form 'f' must be a list of slot names, found the string 'a'."),
    ("forms:\n  f:\n    required_slots:\n    - a\n    - {b: 1}\n", 5,
     "form 'f' lists a mapping under required_slots; list slot names only."),
    ("forms:\n  f:\n    ignored_intents: [chitchat]\n", 2,
     "form 'f' sets ignored_intents but no required_slots."),
    ("responses:\n  utter_a:\n  - text: hi\n    buton: []\n", 4,
     "unknown key 'buton' in variant 1 of response 'utter_a'. Did you mean 'buttons'?"),
    ("responses:\n  utter_a:\n  - image: http://x\n", 3,
     "variant 1 of response 'utter_a' has neither 'text' nor 'custom'."),
    ("responses:\n  utter_a:\n  - text: hi\n    condition:\n    - type: slot\n      name: x\n", 5,
     "condition 1 of variant 1 of response 'utter_a' is missing the required key 'value'."),
    ("responses:\n  utter_a:\n  - text: hi\n    id: a1\n  utter_b:\n  - text: ho\n    id: a1\n", 7,
     "the response id 'a1' is used twice (in 'utter_a' and 'utter_b')."),
    ("intents:\n- greet:\n", 2, "intent 'greet' has an empty definition."),
    ("intents:\n- greet:\n    use_entity: []\n", 3,
     "unknown key 'use_entity' in intent 'greet'. Did you mean 'use_entities'?"),
    ("intents:\n- greet\n- bye\n- greet\n", 4, "intent 'greet' is listed twice in 'intents'."),
    ("entities:\n- city:\n    role: [from]\n", 3,
     "unknown key 'role' in entity 'city'. Did you mean 'roles'?"),
    ("actions:\n- a:\n    send_domains: true\n", 3,
     "unknown key 'send_domains' in action 'a'. Did you mean 'send_domain'?"),
    ("session_config:\n  session_expiration_time: -1\n", 2,
     "session_expiration_time must be 0 or more minutes, found -1."),
    ("config:\n  store_entities_as_slot: true\n", 2,
     "unknown key 'store_entities_as_slot' in 'config'. Did you mean 'store_entities_as_slots'?"),
    ("e2e_actions:\n- {a: 1}\n", 2, "each item of 'e2e_actions' must be a name, found a mapping."),
    ("- a\n", 1, "a domain file must be a mapping (key: value), found a list."),
    # a name YAML reads as a number: refused at its line, as Rasa's schema refuses it
    ("intents:\n- greet\n- 42\n", 3,
     "each item of 'intents' must be a name or 'name: {settings}', found the value 42."),
    ("forms:\n  f:\n    required_slots: [a]\n    ignored_intents: 42\n", 4,
     "ignored_intents of form 'f' must be a string or a list (- item), found the value 42."),
    ("slots:\n  a:\n    type: text\n    mappings:\n    - type: from_text\n      intent: 42\n", 6,
     "'intent' in mapping 1 of slot 'a' must be a string or a list (- item), found the value 42."),
])
def test_should_raise_a_schema_error_naming_the_line(text: str, line: int, message: str):
    error = error_of(text)
    assert (error.file, error.line, error.message) == ("d.yml", line, message)


def test_unknown_key_errors_should_list_the_valid_keys():
    error = error_of("slots:\n  a:\n    type: float\n    min: 1\n    mappings: [{type: custom}]\n")
    assert error.hint == "Valid keys: influence_conversation, initial_value, mappings, max_value, " \
                         "min_value, type."


# ---- accepted Rasa forms and warnings -------------------------------------------------------------

def test_should_accept_every_mapping_type_with_conditions():
    domain = load("""
slots:
  s:
    type: text
    mappings:
    - {type: from_entity, entity: city, role: to, group: g, intent: inform, not_intent: [deny]}
    - {type: from_text, not_intent: deny, conditions: [{active_loop: f, requested_slot: s}]}
    - {type: from_intent, intent: [affirm], value: true}
    - {type: from_trigger_intent, intent: book, value: booked}
    - {type: custom, action: action_fill_s}
    - type: from_text
      conditions:
      - active_loop: null
""")
    first, second, *_, custom, last = domain.slots["s"].mappings
    assert (first.entity, first.role, first.group, first.intent, first.not_intent) == (
        "city", "to", "g", ["inform"], ["deny"])
    assert (second.not_intent, second.conditions[0].requested_slot) == (["deny"], "s")
    assert custom.action == "action_fill_s"
    assert last.conditions[0].active_loop is None


def test_should_warn_about_a_mapping_key_rasa_ignores():
    with pytest.warns(ParleyWarning, match="'entity' has no effect in a from_text mapping"):
        load("slots:\n  s:\n    type: text\n    mappings:\n    - type: from_text\n      entity: city\n")


def test_should_accept_empty_forms_and_rich_responses():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        domain = load("""
forms:
  empty_form:
  other_form: {}
  third_form:
    ignored_intents: chitchat
    required_slots: []
actions:
- action_a: {send_domain: true}
- action_b
responses:
  utter_rich:
  - text: pick
    buttons: [{title: A, payload: /a}]
    quick_replies: [{title: B, payload: /b}]
    image: https://x/y.png
    channel: slack
    metadata: {rephrase: true}
    condition: [{type: slot, name: vip, value: true}]
    id: rich_1
  - custom: {blocks: [1, 2]}
  - text: ''
    attachment: {type: video}
    elements: [{title: e}]
    button_type: vertical
e2e_actions:
- Hello there!
""")
    assert [f.required_slots for f in domain.forms.values()] == [[], [], []]
    assert domain.forms["third_form"].ignored_intents == ["chitchat"]
    assert domain.actions["action_a"].send_domain and domain.action_needs_domain("action_a")
    assert len(domain.responses["utter_rich"]) == 3
    assert domain.action_names[-1] == "Hello there!"
    assert Domain.from_yaml(domain_to_yaml(domain)) == domain


def test_should_warn_about_a_response_not_starting_with_utter():
    with pytest.warns(ParleyWarning, match="does not start with 'utter_'"):
        load("responses:\n  greet:\n  - text: hi\n")


def test_should_read_an_empty_file_as_an_empty_domain():
    assert load("").is_empty()
    assert load("version: '3.1'\n").is_empty()


def test_an_unreadable_file_in_a_domain_folder_should_be_an_error_naming_it(tmp_path, monkeypatch):
    folder = tmp_path / "domain"
    folder.mkdir()
    (folder / "a.yml").write_text('version: "3.1"\nintents: [greet]\n')
    (folder / "b.yml").write_text('version: "3.1"\nintents: [goodbye]\n')
    make_unreadable(folder / "b.yml", monkeypatch)
    try:
        with pytest.raises(DataError) as info:
            read_domain(folder)
    finally:
        (folder / "b.yml").chmod(0o644)
    assert info.value.file == str(folder / "b.yml")
    assert "cannot be read (Permission denied)" in str(info.value)


def test_a_broken_link_in_a_domain_folder_should_be_an_error_naming_it(tmp_path):
    folder = tmp_path / "domain"
    folder.mkdir()
    (folder / "a.yml").write_text('version: "3.1"\nintents: [greet]\n')
    (folder / "b.yml").symlink_to(tmp_path / "gone.yml")
    with pytest.raises(DataError, match="is a symbolic link to .*gone.yml', which does not "
                                        "exist") as info:
        read_domain(folder)
    assert info.value.file == str(folder / "b.yml")


def test_bool_and_list_slots_without_initial_value_should_start_unset_as_in_rasa():
    # Rasa 3.6's BooleanSlot and ListSlot take initial_value=None like every slot type
    # (rasa/shared/core/slots.py); only a bare name in slot_was_set gets a stand-in value.
    from parley.data.tracker import DialogueStateTracker

    domain = Domain.from_yaml('version: "3.1"\nslots:\n'
                              '  flag: {type: bool, mappings: [{type: custom}]}\n'
                              '  items: {type: list, mappings: [{type: custom}]}\n')
    assert domain.slots["flag"].initial_value is None
    assert domain.slots["items"].initial_value is None
    tracker = DialogueStateTracker.from_domain("t", domain)
    assert tracker.slots["flag"] is None and tracker.slots["items"] is None
    again = Domain.from_yaml(domain_to_yaml(domain))
    assert again.slots["flag"].initial_value is None and again.slots["items"].initial_value is None


@pytest.mark.parametrize(("slot", "words"), [
    ("type: bool\n    initial_value: maybe",
     "'maybe' of bool slot 's' does not suit the type, which is neither true nor false"),
    ("type: float\n    initial_value: lots",
     "'lots' of float slot 's' does not suit the type, which is not a number"),
    ("type: categorical\n    values: [a, b]\n    initial_value: c",
     "'c' of categorical slot 's' does not suit the type, which is not one of its values "
     "(a, b); the policies see it as '__other__'"),
])
def test_an_initial_value_the_slot_type_cannot_hold_should_warn_at_its_line(slot, words):
    text = f'version: "3.1"\nslots:\n  s:\n    {slot}\n    mappings: [{{type: custom}}]\n'
    with pytest.warns(ParleyWarning) as record:
        domain = load(text)
    warned = [w.message for w in record if "initial_value" in str(w.message)]
    assert len(warned) == 1 and words in warned[0].message
    lines = text.splitlines()
    assert warned[0].line == next(i for i, x in enumerate(lines, 1) if "initial_value" in x)
    assert domain.slots["s"].initial_value is not None  # kept, as Rasa keeps it


def test_an_initial_value_that_suits_the_type_should_not_warn():
    text = ('version: "3.1"\nslots:\n'
            '  a: {type: bool, initial_value: false, mappings: [{type: custom}]}\n'
            '  b: {type: categorical, values: [Low, high], initial_value: low, '
            'mappings: [{type: custom}]}\n'
            '  c: {type: list, initial_value: [x], mappings: [{type: custom}]}\n')
    with warnings.catch_warnings():
        warnings.simplefilter("error", ParleyWarning)
        load(text)
