"""The validator on small projects written here, one mistake each, with the exact message."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from parley.data.importer import TrainingDataImporter
from parley.data.validation import validate_for_training, validate_project
from parley.errors import ParleyWarning, ValidationError

DOMAIN = """\
version: "3.1"
intents:
  - greet
  - ask_weather
  - unused_intent
entities:
  - city:
      roles: [from, to]
slots:
  city:
    type: text
    mappings:
      - type: from_entity
        entity: city
forms:
  weather_form:
    required_slots: [city]
responses:
  utter_greet:
    - text: hi
  utter_weather:
    - text: sunny in {city}
"""
NLU = """\
version: "3.1"
nlu:
  - intent: greet
    examples: |
      - hi
      - hello
  - intent: ask_weather
    examples: |
      - weather in [Paris](city)
      - from [Rome]{"entity": "city", "role": "from"}
"""
STORIES = """\
version: "3.1"
stories:
  - story: weather
    steps:
      - intent: greet
      - action: utter_greet
      - intent: ask_weather
      - action: weather_form
      - active_loop: weather_form
      - active_loop: null
      - action: utter_weather
"""


def make_project(tmp_path: Path, domain: str = DOMAIN, nlu: str = NLU,
                 stories: str = STORIES) -> TrainingDataImporter:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "domain.yml").write_text(textwrap.dedent(domain))
    (tmp_path / "data" / "nlu.yml").write_text(textwrap.dedent(nlu))
    (tmp_path / "data" / "stories.yml").write_text(textwrap.dedent(stories))
    return TrainingDataImporter.from_project(tmp_path)


def messages(importer: TrainingDataImporter, level: str) -> list[str]:
    report = validate_project(importer)
    return [f"{Path(i.file).name if i.file else ''}:{i.line}: {i.message}"
            for i in report.issues if i.level == level]


def test_a_correct_project_should_have_no_errors(tmp_path):
    importer = make_project(tmp_path)
    assert messages(importer, "error") == []
    assert messages(importer, "warning") == [
        "domain.yml:5: the intent 'unused_intent' is in the domain but has no NLU examples and "
        "appears in no story or rule.",
    ]


# (what was changed, the exact error a user sees)
ERROR_CASES = [
    (("nlu", "- intent: greet", "- intent: greeet"),
     "nlu.yml:5: the intent 'greeet' is not in the domain. Did you mean 'greet'? "
     "Add it under 'intents:' in the domain."),
    (("nlu", "[Paris](city)", "[Paris](town)"),
     "nlu.yml:9: the entity 'town' is not in the domain. Add it under 'entities:' in the domain."),
    (("nlu", '"role": "from"', '"role": "via"'),
     "nlu.yml:10: the entity 'city' has the role 'via', which the domain does not list under "
     "its 'roles'."),
    (("stories", "- intent: ask_weather", "- intent: ask_wether"),
     "stories.yml:7: the intent 'ask_wether' is not in the domain. Did you mean 'ask_weather'? "
     "Add it under 'intents:' in the domain."),
    (("stories", "- action: utter_weather", "- action: utter_wether"),
     "stories.yml:11: the action 'utter_wether' is not in the domain. Did you mean "
     "'utter_weather'? Add a response with this name under 'responses:'."),
    (("stories", "- action: weather_form", "- action: action_check"),
     "stories.yml:8: the action 'action_check' is not in the domain. Did you mean 'action_back'? "
     "Add it under 'actions:' in the domain."),
    (("stories", "- active_loop: weather_form", "- active_loop: wether_form"),
     "stories.yml:9: the form 'wether_form' is not in the domain. Did you mean 'weather_form'? "
     "Add it under 'forms:' in the domain."),
    (("stories", "- active_loop: null", "- slot_was_set:\n          - town: x"),
     "stories.yml:10: the slot 'town' is not in the domain. Add it under 'slots:' in the domain."),
    # at the line naming the slot, entity or intent, not the form's or the slot's (16, 10)
    (("domain", "required_slots: [city]", "required_slots: [cty]"),
     "domain.yml:17: the form 'weather_form' requires the slot 'cty', which is not in the "
     "domain. Did you mean 'city'?"),
    (("domain", "required_slots: [city]", "required_slots:\n      - city\n      - cty"),
     "domain.yml:19: the form 'weather_form' requires the slot 'cty', which is not in the "
     "domain. Did you mean 'city'?"),
    (("domain", "required_slots: [city]",
      "required_slots: [city]\n    ignored_intents:\n      - greet\n      - chitchat"),
     "domain.yml:20: the intent 'chitchat' is not in the domain. The form 'weather_form' "
     "ignores it."),
    (("domain", "entity: city", "entity: town"),
     "domain.yml:14: the entity 'town' is not in the domain. The slot 'city' is filled from it."),
    (("domain", "entity: city", "entity: city\n        not_intent: [greet, bye]"),
     "domain.yml:15: the intent 'bye' is not in the domain. A mapping of the slot 'city' "
     "names it."),
    (("stories", "      - action: utter_greet\n", ""),
     "stories.yml:6: "),  # two user turns in a row: reported by the structure check
]


@pytest.mark.parametrize("change, expected", ERROR_CASES)
def test_should_report_each_mistake_with_file_line_and_fix(tmp_path, change, expected):
    part, old, new = change
    files = {"domain": DOMAIN, "nlu": NLU, "stories": STORIES}
    assert old in files[part]
    files[part] = files[part].replace(old, new)
    importer = make_project(tmp_path, files["domain"], files["nlu"], files["stories"])
    found = messages(importer, "error") + messages(importer, "warning")
    assert any(m.startswith(expected) for m in found), found


def test_same_text_under_two_intents_should_warn_with_both_places(tmp_path):
    importer = make_project(tmp_path, nlu=NLU + "  - intent: ask_weather\n    examples: |\n      - hi\n")
    assert "nlu.yml:13: the example 'hi' is under the intent 'ask_weather' and also under " \
           "'greet' (" in "\n".join(messages(importer, "warning"))


def test_raise_for_errors_should_list_every_error(tmp_path):
    importer = make_project(tmp_path, nlu=NLU.replace("greet", "greeet"))
    report = validate_project(importer)
    with pytest.raises(ValidationError, match="1 error"):
        report.raise_for_errors()


def test_fail_on_warnings_should_turn_warnings_into_a_failure(tmp_path):
    report = validate_project(make_project(tmp_path))
    report.raise_for_errors()
    with pytest.raises(ValidationError):
        report.raise_for_errors(fail_on_warnings=True)


NLU_BEYOND_DOMAIN = NLU + """\
  - intent: thank
    examples: |
      - thanks for the [weather](topic)
      - from [Oslo]{"entity": "city", "role": "via"}
"""


def test_nlu_beyond_the_domain_should_fail_validation_but_not_training(tmp_path):
    importer = make_project(tmp_path, nlu=NLU_BEYOND_DOMAIN)
    assert [(i.line, i.message.split(".")[0]) for i in validate_project(importer).errors] == [
        (13, "the intent 'thank' is not in the domain"),
        (13, "the entity 'topic' is not in the domain"),
        (14, "the entity 'city' has the role 'via', which the domain does not list under its "
             "'roles'"),
    ]
    with pytest.warns(ParleyWarning, match="Training goes on, as Rasa's does") as caught:
        report = validate_for_training(importer)
    assert report.errors == []
    assert [w.message.line for w in caught if isinstance(w.message, ParleyWarning)] == [13, 13, 14]
    assert len(report.warnings) == len(validate_project(importer).issues)
    report.raise_for_errors()  # what the train path does: nothing to raise


def test_training_should_still_refuse_what_rasa_train_refuses(tmp_path):
    # A story's slot that the domain lacks stops `rasa train` too (unresolved slots).
    stories = STORIES.replace("      - action: utter_weather\n",
                              "      - slot_was_set:\n          - town: Rome\n")
    importer = make_project(tmp_path, stories=stories)
    with pytest.raises(ValidationError, match="the slot 'town' is not in the domain"):
        validate_for_training(importer).raise_for_errors()


def test_a_bare_name_for_a_slot_whose_value_matters_should_warn(tmp_path):
    domain = DOMAIN.replace("slots:\n", "slots:\n  done:\n    type: bool\n    mappings:\n"
                                        "      - type: custom\n")
    stories = STORIES.replace("      - action: utter_weather\n",
                              "      - slot_was_set:\n          - done\n          - city\n")
    importer = make_project(tmp_path, domain=domain, stories=stories)
    warned = [m for m in messages(importer, "warning") if "named without a value" in m]
    assert warned == [
        "stories.yml:11: the bool slot 'done' is named without a value, so this step treats it "
        "as not set (as Rasa does); only text and list slots can be named alone. Write "
        "`- done: <value>`."]


TYPED_SLOTS = """\
slots:
  confirmed:
    type: bool
    mappings: [{type: custom}]
  price:
    type: float
    mappings: [{type: custom}]
  size:
    type: categorical
    values: [small, Large]
    mappings: [{type: custom}]
  toppings:
    type: list
    mappings: [{type: custom}]
"""


def typed_slot_project(tmp_path: Path, slot_lines: str) -> TrainingDataImporter:
    domain = DOMAIN.replace("slots:\n", TYPED_SLOTS)
    stories = STORIES.replace("      - action: utter_weather\n",
                              "      - slot_was_set:\n" + slot_lines)
    return make_project(tmp_path, domain=domain, stories=stories)


def test_slot_values_of_the_wrong_type_should_warn_with_the_line_of_each_slot(tmp_path):
    importer = typed_slot_project(tmp_path, (
        "          - confirmed: maybe\n"
        "          - price: abc\n"
        "          - size: medium\n"
        "          - toppings: cheese\n"))
    warned = [m for m in messages(importer, "warning") if "sets the" in m]
    assert warned == [
        "stories.yml:12: 'weather' sets the bool slot 'confirmed' to 'maybe', which is neither "
        "true nor false (Rasa reads true, false, 1 and 0); the policies see it as unset.",
        "stories.yml:13: 'weather' sets the float slot 'price' to 'abc', which is not a number; "
        "the policies see it as unset.",
        "stories.yml:14: 'weather' sets the categorical slot 'size' to 'medium', which is not "
        "one of its values (small, Large); the policies see it as '__other__'.",
        "stories.yml:15: 'weather' sets the list slot 'toppings' to 'cheese', which is not a "
        "list; the policies see only whether it is empty.",
    ]
    assert messages(importer, "error") == []  # Rasa trains them, so Parley must too


def test_slot_values_that_suit_their_type_should_pass_quietly(tmp_path):
    importer = typed_slot_project(tmp_path, (
        "          - confirmed: false\n"
        "          - confirmed: \"True\"\n"
        "          - price: 2.5\n"
        "          - price: \"7\"\n"
        "          - size: large\n"  # categories compare without case, as in Rasa
        "          - size: null\n"
        "          - toppings: [cheese, ham]\n"))
    assert [m for m in messages(importer, "warning") if "sets the" in m] == []


def test_slot_values_in_rule_conditions_and_test_stories_should_be_checked_too(tmp_path):
    importer = typed_slot_project(tmp_path, "          - confirmed: true\n")
    (tmp_path / "data" / "rules.yml").write_text(textwrap.dedent("""\
        version: "3.1"
        rules:
          - rule: greet when confirmed
            condition:
              - slot_was_set:
                  - confirmed: yes please
            steps:
              - intent: greet
              - action: utter_greet
        """))
    (tmp_path / "data" / "test_stories.yml").write_text(textwrap.dedent("""\
        version: "3.1"
        stories:
          - story: test sizes
            steps:
              - user: hi
                intent: greet
              - action: utter_greet
              - slot_was_set:
                  - price: cheap
        """))
    importer = TrainingDataImporter.from_project(tmp_path)
    warned = [m for m in messages(importer, "warning") if "sets the" in m]
    assert warned == [
        "rules.yml:6: 'greet when confirmed' sets the bool slot 'confirmed' to 'yes please', "
        "which is neither true nor false (Rasa reads true, false, 1 and 0); the policies see "
        "it as unset.",
        "test_stories.yml:9: 'test sizes' sets the float slot 'price' to 'cheap', which is not "
        "a number; the policies see it as unset.",
    ]


def test_training_should_show_slot_values_of_the_wrong_type_but_go_on(tmp_path):
    importer = typed_slot_project(tmp_path, "          - size: medium\n")
    with pytest.warns(ParleyWarning, match="categorical slot 'size' to 'medium'") as record:
        validate_for_training(importer).raise_for_errors()
    shown = [w.message for w in record if "'size'" in str(w.message)]
    assert len(shown) == 1 and shown[0].line == 12 and shown[0].file.endswith("stories.yml")


def test_an_empty_domain_should_be_one_error_naming_it_not_one_per_story_step(tmp_path):
    importer = make_project(tmp_path, domain="")
    errors = [i for i in validate_project(importer).errors]
    assert [(Path(i.file).name, i.message) for i in errors] == [(
        "domain.yml",
        "the domain is empty: it declares no intents, entities, slots, responses, actions or "
        "forms, so the stories and rules cannot be checked against it, and `parley train` "
        "would skip the dialogue part, as Rasa's "
        "does. Fill in the domain, or give the project's domain with --domain.")]


def test_an_empty_domain_without_stories_should_leave_nlu_alone(tmp_path):
    importer = make_project(tmp_path, domain="", stories='version: "3.1"\n')
    assert validate_project(importer).errors == []


def test_a_bool_slot_set_to_another_number_should_say_how_it_is_featurized(tmp_path):
    importer = typed_slot_project(tmp_path, "          - confirmed: 2\n")
    warned = [m for m in messages(importer, "warning") if "sets the" in m]
    assert warned == [
        "stories.yml:12: 'weather' sets the bool slot 'confirmed' to 2, which is a number "
        "other than 0 and 1; the policies see it as false."]
    from parley.data.tracker import slot_features
    assert slot_features(importer.domain.slots["confirmed"], 2) == (1.0, 0.0)  # as it says
