from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from parley.data.formats.story_yaml import (
    is_test_stories_file, read_stories, read_story_file, stories_to_yaml, write_story_file,
)
from parley.data.stories import (
    RULE, ActionStep, ActiveLoopStep, BotStep, CheckpointStep, OrStep, SlotStep, SlotValue,
    Story, StoryEntity, UserStep,
)
from parley.errors import ParleyWarning, SchemaError
from tests.conftest import FIXTURES, SHARED_DATA, needs_shared_data

ALL_STEPS = FIXTURES / "stories" / "all_steps.yml"
TEST_CONVERSATIONS = FIXTURES / "stories" / "test_conversations.yml"
BOTS = SHARED_DATA / "bots"
# Test stories live in tests/ (Rasa's default) or, in carbon-bot, in test_stories/.
TEST_DIRS = ("tests", "test_stories")


def _story_errors(text: str) -> str:
    with pytest.raises(SchemaError) as info:
        read_stories(text, "stories.yml")
    return str(info.value)


def _roundtrip(stories: list[Story], rules: list[Story], name: str = "stories.yml") -> None:
    again = read_stories(stories_to_yaml(stories, rules), name)
    assert again.stories == stories
    assert again.rules == rules


# ------------------------------------------------------------------------ every step kind


def test_should_read_every_step_kind_of_a_story():
    story = read_story_file(ALL_STEPS).stories[0]
    assert story.name == "every step kind"
    assert story.metadata == {"author": "fixture"}
    assert story.steps == (
        UserStep("greet"),
        ActionStep("utter_greet"),
        UserStep("inform", entities=(
            StoryEntity("city", "Berlin"),
            StoryEntity("date"),
            StoryEntity("city", "Paris", role="destination", group="trip"),
            StoryEntity("airline", "lufthansa"),
        )),
        SlotStep((SlotValue("city", "Berlin"), SlotValue("confirmed", True),
                  SlotValue("seats", 2), SlotValue("nickname", any_value=True))),
        ActionStep("flight_form"),
        ActiveLoopStep("flight_form"),
        ActiveLoopStep(None),
        OrStep((UserStep("affirm"), UserStep("thank"))),
        OrStep((SlotStep((SlotValue("confirmed", True),)),
                SlotStep((SlotValue("confirmed", False),)))),
        ActionStep("action_book"),
        CheckpointStep("booked"),
    )


def test_should_read_checkpoints_end_to_end_turns_and_annotations():
    story = read_story_file(ALL_STEPS).stories[1]
    assert story.steps == (
        CheckpointStep("booked", (SlotValue("confirmed", True),)),
        UserStep(None, "thanks, that's all for today", (
            StoryEntity("scope", "all", start=15, end=18),
            StoryEntity("date", "today", role="when", start=23, end=28),
        )),
        BotStep("You're welcome!"),
        UserStep("faq", "what is your name?"),
        ActionStep("utter_faq"),
    )


def test_should_read_rule_flags_conditions_and_metadata():
    greet, explain = read_story_file(ALL_STEPS).rules
    assert greet.kind == RULE and greet.conversation_start and greet.wait_for_user_input
    assert explain.condition == (
        ActiveLoopStep("flight_form"), SlotStep((SlotValue("requested_slot", "city"),)),
    )
    assert not explain.conversation_start and not explain.wait_for_user_input
    assert explain.metadata == {"reason": "fixture"}
    assert explain.steps[-1] == ActiveLoopStep("flight_form")


def test_should_keep_file_and_line_of_every_step():
    stories = read_story_file(ALL_STEPS).stories
    first = stories[0]
    assert first.file == str(ALL_STEPS) and first.line == 10
    assert [s.line for s in first.steps[:4]] == [14, 15, 16, 25]
    or_step = first.steps[7]
    assert or_step.line == 33
    assert [alt.line for alt in or_step.alternatives] == [34, 35]
    assert all(s.file == str(ALL_STEPS) for s in first.iter_steps())
    assert stories[1].steps[1].line == 49


def test_should_read_user_texts_with_intents_in_test_stories():
    test_file = read_story_file(TEST_CONVERSATIONS)
    story = test_file.stories[0]
    assert story.steps[0] == UserStep("greet", "hello there")
    assert story.steps[2] == UserStep("inform", "I want to fly to Berlin on Monday", (
        StoryEntity("city", "Berlin", start=17, end=23),
        StoryEntity("date", "2024-01-01", start=27, end=33),
    ))
    assert story.steps[4].intent == "faq/ask_name" and story.steps[4].base_intent == "faq"
    assert test_file.rules[0].steps[0] == UserStep("goodbye", "bye")


def test_should_ignore_keys_that_belong_to_other_readers():
    result = read_stories('version: "3.1"\nnlu: []\nresponses: {}\nsomething_else: 1\n'
                          "stories:\n- story: s\n  steps:\n  - action: a\n")
    assert [s.name for s in result.stories] == ["s"] and result.rules == []


def test_should_read_an_empty_file_or_empty_sections_as_nothing():
    assert read_stories("").all() == []
    assert read_stories("stories:\nrules:\n").all() == []


def test_should_read_a_file_without_version_as_the_latest_format():
    result = read_stories("rules:\n- rule: r\n  steps:\n  - intent: greet\n  - action: a\n")
    assert result.rules[0].steps == (UserStep("greet"), ActionStep("a"))


def test_should_skip_a_newer_format_with_a_warning():
    with pytest.warns(ParleyWarning, match="newer than 3.1"):
        result = read_stories('version: "3.9"\nstories:\n- story: s\n  steps: []\n', "new.yml")
    assert result.all() == []


def test_should_strip_a_leading_slash_from_an_intent_with_a_warning():
    with pytest.warns(ParleyWarning, match="starts with '/'"):
        result = read_stories("stories:\n- story: s\n  steps:\n  - intent: /greet\n")
    assert result.stories[0].steps[0] == UserStep("greet")


def test_should_warn_about_full_retrieval_intents_only_outside_test_files():
    text = "stories:\n- story: s\n  steps:\n  - intent: faq/ask_name\n  - action: utter_faq\n"
    with pytest.warns(ParleyWarning, match="full retrieval intent"):
        read_stories(text, "data/stories.yml")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_stories(text, "tests/test_stories.yml")


def test_should_warn_that_an_entities_list_beside_a_user_text_is_ignored():
    text = ("stories:\n- story: s\n  steps:\n  - intent: inform\n    user: to Rome\n"
            "    entities:\n    - city: Rome\n")
    with pytest.warns(ParleyWarning, match="'entities' list .* is ignored"):
        result = read_stories(text)
    assert result.stories[0].steps[0] == UserStep("inform", "to Rome")


def test_should_tell_test_story_files_by_name_and_content(tmp_path: Path):
    assert is_test_stories_file(TEST_CONVERSATIONS)
    assert not is_test_stories_file(ALL_STEPS)
    nlu_only = tmp_path / "test_nlu.yml"
    nlu_only.write_text("nlu:\n- intent: greet\n  examples: |\n    - hi\n")
    assert not is_test_stories_file(nlu_only)
    markdown = tmp_path / "test_stories.md"
    markdown.write_text("## story\n* greet\n")
    assert not is_test_stories_file(markdown)


# --------------------------------------------------------------------------------- writing


def test_should_read_back_what_it_writes():
    for path in (ALL_STEPS, TEST_CONVERSATIONS):
        result = read_story_file(path)
        _roundtrip(result.stories, result.rules, path.name)


def test_should_write_rasa_yaml_with_annotations_and_entity_forms():
    story = Story("s", (
        UserStep("inform", entities=(StoryEntity("date"), StoryEntity("city", "Rome", "to"))),
        UserStep("inform", "to Rome", (StoryEntity("city", "Rome", start=3, end=7),)),
        ActionStep("a"),
    ))
    assert stories_to_yaml([story]) == (
        "version: '3.1'\n"
        "stories:\n"
        "- story: s\n"
        "  steps:\n"
        "  - intent: inform\n"
        "    entities:\n"
        "    - date\n"
        "    - city: Rome\n"
        "      role: to\n"
        "  - intent: inform\n"
        "    user: to [Rome](city)\n"
        "  - action: a\n"
    )


def test_should_write_a_file_that_reads_back(tmp_path: Path):
    result = read_story_file(ALL_STEPS)
    target = tmp_path / "out.yml"
    write_story_file(target, result.stories, result.rules)
    again = read_story_file(target)
    assert (again.stories, again.rules) == (result.stories, result.rules)


# ---------------------------------------------------------------------------------- errors


def test_should_raise_when_a_step_key_is_unknown_and_suggest_the_close_one():
    assert _story_errors("stories:\n- story: greet\n  steps:\n  - acton: utter_greet\n") == (
        "stories.yml:4: unknown key 'acton' in a step of the story 'greet'. "
        "Did you mean 'action'? Valid keys: action, active_loop, bot, checkpoint, entities, "
        "intent, or, slot_was_set, user."
    )


def test_should_raise_when_an_intent_step_has_a_misspelled_key():
    text = "stories:\n- story: s\n  steps:\n  - intent: inform\n    entites:\n    - city\n"
    assert _story_errors(text) == (
        "stories.yml:5: unknown key 'entites' in an 'intent' step of the story 's'. "
        "Did you mean 'entities'? Valid keys: entities, intent, user."
    )


def test_should_raise_when_a_block_key_is_unknown():
    assert _story_errors("stories:\n- story: s\n  step:\n  - action: a\n") == (
        "stories.yml:3: unknown key 'step' in a story. Did you mean 'steps'? "
        "Valid keys: metadata, steps, story."
    )


def test_should_raise_when_steps_is_not_a_list():
    assert _story_errors("stories:\n- story: greet\n  steps: hello\n") == (
        "stories.yml:3: 'steps' of the story 'greet' must be a list (- item), "
        "found the string 'hello'."
    )


def test_should_raise_when_a_step_is_not_a_mapping():
    assert _story_errors("stories:\n- story: s\n  steps:\n  - utter_greet\n") == (
        "stories.yml:4: a step of the story 's' must be a mapping (key: value), "
        "found the string 'utter_greet'."
    )


def test_should_raise_when_a_step_holds_two_kinds():
    assert _story_errors("stories:\n- story: s\n  steps:\n  - intent: hi\n    action: a\n") == (
        "stories.yml:4: a step of the story 's' mixes 'intent' and 'action'. "
        "Each step holds one thing; split it into two steps."
    )


def test_should_raise_when_a_step_has_no_kind_key():
    assert _story_errors("stories:\n- story: s\n  steps:\n  - entities: [city]\n") == (
        "stories.yml:4: a step of the story 's' has no step key (intent, action, ...); "
        "found 'entities'. A step holds one of: intent, user, or, action, bot, checkpoint, "
        "slot_was_set, active_loop."
    )


def test_should_raise_when_an_entity_item_names_two_entities():
    text = ("stories:\n- story: s\n  steps:\n  - intent: inform\n    entities:\n"
            "    - city: Rome\n      date: today\n")
    assert _story_errors(text) == (
        "stories.yml:6: an entity in the story 's' must name exactly one entity, found "
        "city, date. Write '- city: Berlin' (role:/group: may follow in the same item), "
        "or just '- city' for any value."
    )


def test_should_raise_when_an_entity_item_is_not_a_name_or_mapping():
    text = "stories:\n- story: s\n  steps:\n  - intent: inform\n    entities:\n    - 42\n"
    assert _story_errors(text).startswith(
        "stories.yml:6: an entity in the story 's' must be a name or a 'name: value' "
        "mapping, found the value 42."
    )


def test_should_raise_when_entities_is_not_a_list():
    text = "stories:\n- story: s\n  steps:\n  - intent: inform\n    entities: city\n"
    assert _story_errors(text) == (
        "stories.yml:5: 'entities' in the story 's' must be a list (- item), "
        "found the string 'city'."
    )


def test_should_raise_when_an_or_has_no_alternatives():
    assert _story_errors("stories:\n- story: s\n  steps:\n  - or: []\n") == (
        "stories.yml:4: the 'or' in the story 's' has no alternatives. "
        "List two or more intent or slot_was_set steps."
    )


def test_should_raise_when_an_or_alternative_is_an_action():
    text = "stories:\n- story: s\n  steps:\n  - or:\n    - intent: a\n    - action: b\n"
    assert _story_errors(text) == (
        "stories.yml:6: an 'or' alternative in the story 's' must be an 'intent' or a "
        "'slot_was_set' step, found 'action'."
    )


def test_should_raise_when_a_rule_holds_a_checkpoint():
    text = "rules:\n- rule: r\n  steps:\n  - checkpoint: c\n  - action: a\n"
    assert _story_errors(text) == (
        "stories.yml:4: 'checkpoint' steps are not allowed in the rule 'r'. "
        "Allowed here: intent, or, action, slot_was_set, active_loop."
    )


def test_should_raise_when_a_rule_condition_holds_an_intent():
    text = "rules:\n- rule: r\n  condition:\n  - intent: greet\n  steps:\n  - action: a\n"
    assert _story_errors(text) == (
        "stories.yml:4: 'intent' steps are not allowed in the condition of the rule 'r'. "
        "Allowed here: slot_was_set, active_loop."
    )


def test_should_raise_when_a_rule_is_listed_under_stories():
    assert _story_errors("stories:\n- rule: r\n  steps:\n  - action: a\n") == (
        "stories.yml:2: a rule is listed under 'stories'. "
        "Move it under 'rules:' (or rename the key to 'story')."
    )


def test_should_raise_when_a_story_has_no_name():
    assert _story_errors("stories:\n- steps:\n  - action: a\n") == (
        "stories.yml:2: a story is missing the required key 'story'."
    )


def test_should_raise_when_a_checkpoint_condition_has_no_value():
    text = "stories:\n- story: s\n  steps:\n  - checkpoint: c\n    slot_was_set:\n    - name\n"
    assert _story_errors(text) == (
        "stories.yml:6: an item of 'slot_was_set' in the checkpoint 'c' must be "
        "'slot: value', found the string 'name'. Checkpoint conditions need a value."
    )


@pytest.mark.parametrize(("item", "line", "found"), [
    ("~: x", 5, "found nothing (null)"),  # a null key has no line of its own: the item's
    ("5: x", 6, 'found the value 5. Quote it ("5") if it is meant as text'),
])
def test_should_raise_when_a_slot_name_in_slot_was_set_is_not_a_string(item, line, found):
    text = f"stories:\n- story: s\n  steps:\n  - slot_was_set:\n    - a: 1\n      {item}\n"
    assert _story_errors(text) == (
        f"stories.yml:{line}: a slot name in 'slot_was_set' in the story 's' must be a string, "
        f"{found}."
    )


def test_should_raise_when_a_slot_name_in_slot_was_set_is_empty():
    text = "stories:\n- story: s\n  steps:\n  - slot_was_set:\n    - ' '\n"
    assert _story_errors(text) == (
        "stories.yml:5: a slot name in 'slot_was_set' in the story 's' is empty. "
        "Write `- <slot>: <value>`."
    )


def test_should_keep_the_line_of_each_slot_in_slot_was_set():
    read = read_stories(
        "stories:\n- story: s\n  steps:\n  - slot_was_set:\n    - a: 1\n      b: 2\n"
        "    - c\n", "stories.yml")
    step = read.stories[0].steps[0]
    assert [(slot.name, slot.line) for slot in step.slots] == [("a", 5), ("b", 6), ("c", 7)]


def test_should_raise_when_a_rule_flag_is_not_a_boolean():
    text = "rules:\n- rule: r\n  conversation_start: yes\n  steps:\n  - action: a\n"
    assert _story_errors(text) == (
        "stories.yml:3: 'conversation_start' of the rule 'r' must be true or false, "
        "found the string 'yes'."
    )


def test_should_raise_when_an_action_name_is_empty():
    assert _story_errors("stories:\n- story: s\n  steps:\n  - action: ''\n") == (
        "stories.yml:4: the action name in the story 's' is empty."
    )


def test_should_raise_with_the_line_when_a_user_annotation_is_malformed():
    with pytest.raises(SchemaError) as info:
        read_stories("stories:\n- story: s\n  steps:\n  - user: 'to [Rome]{\"ent\": 1}'\n",
                     "t.yml")
    assert info.value.file == "t.yml" and info.value.line == 4


# ----------------------------------------------------------------------------- shared bots


def _bot_files(bot: str) -> list[tuple[Path, bool]]:
    """The bot's story/rule files, each with whether it holds test stories."""
    files = []
    for path in sorted((BOTS / bot).rglob("*.yml")):
        top = path.relative_to(BOTS / bot).parts[0]
        if top in ("data", *TEST_DIRS) and path.name not in ("nlu.yml",):
            files.append((path, top in TEST_DIRS))
    return files


def _bot_names() -> list[str]:
    if not BOTS.is_dir():
        return []
    return sorted(json.loads((BOTS / "bots.json").read_text(encoding="utf-8")))


@needs_shared_data
@pytest.mark.parametrize("bot", _bot_names())
def test_should_count_the_story_rule_and_test_blocks_of_every_bot(bot: str):
    counts = {"stories": 0, "rules": 0, "test_stories": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the real bots read without a single warning
        for path, is_test in _bot_files(bot):
            result = read_story_file(path)
            if is_test:
                counts["test_stories"] += len(result.stories) + len(result.rules)
            else:
                counts["stories"] += len(result.stories)
                counts["rules"] += len(result.rules)
    stats = json.loads((BOTS / "bots.json").read_text(encoding="utf-8"))[bot]["stats"]
    assert counts == {key: stats[key] for key in counts}


@needs_shared_data
@pytest.mark.parametrize("bot", _bot_names())
def test_should_round_trip_every_story_file_of_every_bot(bot: str):
    for path, _ in _bot_files(bot):
        result = read_story_file(path)
        _roundtrip(result.stories, result.rules, path.name)


@needs_shared_data
def test_should_read_rasa_2_test_conversations_like_rasa_3():
    path = BOTS / "helpdesk-assistant" / "tests" / "test_conversations.yml"
    assert is_test_stories_file(path)
    first = read_story_file(path).stories[0]
    assert first.name == "bot challenge"
    assert first.steps == (UserStep("bot_challenge", "Are you a bot?"), ActionStep("utter_iamabot"))


@needs_shared_data
def test_should_find_carbon_bot_test_stories_only_by_folder():
    # Rasa tells test files by the test_ prefix; carbon-bot keeps them in test_stories/.
    path = BOTS / "carbon-bot" / "test_stories" / "stories.yml"
    assert not is_test_stories_file(path)
    assert len(read_story_file(path).stories) == 7


def test_should_raise_when_an_active_loop_name_is_empty():
    assert _story_errors("stories:\n- story: s\n  steps:\n  - active_loop: ''\n") == (
        "stories.yml:4: the active_loop name in the story 's' is empty."
    )
