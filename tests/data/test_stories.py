from __future__ import annotations

import json

import pytest

from parley.data.formats.story_yaml import read_stories, read_story_file
from parley.data.stories import (
    RULE, ActionStep, CheckpointStep, OrStep, SlotStep, SlotValue, Story,
    StoryEntity, UserStep, story_structure_issues,
)
from parley.errors import Issue
from tests.conftest import FIXTURES, SHARED_DATA, needs_shared_data

ALL_STEPS = FIXTURES / "stories" / "all_steps.yml"


def _issues(text: str) -> list[Issue]:
    return story_structure_issues(read_stories(text, "s.yml").all())


# ------------------------------------------------------------------------------- the model


def test_steps_should_compare_equal_whatever_their_place():
    assert ActionStep("a", file="x.yml", line=3) == ActionStep("a", file="y.yml", line=9)
    assert UserStep("greet", line=1) != UserStep("greet", "hi", line=1)


def test_steps_should_be_immutable():
    step = ActionStep("a")
    with pytest.raises(AttributeError):
        step.name = "b"  # type: ignore[misc]


def test_story_should_list_the_names_it_uses():
    story, after = read_story_file(ALL_STEPS).stories
    assert story.intents() == {"greet", "inform", "affirm", "thank"}
    assert story.entities() == {"city", "date", "airline"}
    assert story.actions() == {"utter_greet", "flight_form", "action_book"}
    assert story.active_loops() == {"flight_form"}
    assert story.slots() == {"city", "confirmed", "seats", "nickname"}
    assert after.slots() == {"confirmed"}  # from the checkpoint's condition
    assert after.user_texts() == ["thanks, that's all for today", "what is your name?"]
    assert after.bot_texts() == ["You're welcome!"]
    assert after.entities() == {"scope", "date"}


def test_rule_should_list_names_from_its_condition_too():
    rule = read_story_file(ALL_STEPS).rules[1]
    assert rule.is_rule and rule.kind == RULE
    assert rule.slots() == {"requested_slot"}
    assert rule.active_loops() == {"flight_form"}


def test_iter_steps_should_flatten_or_alternatives_and_keep_places():
    story = read_story_file(ALL_STEPS).stories[0]
    leaves = list(story.iter_steps())
    assert not any(isinstance(s, OrStep) for s in leaves)
    assert UserStep("thank") in leaves
    assert all(s.line is not None for s in leaves)


def test_should_tell_start_and_end_checkpoints():
    story = Story("s", (
        CheckpointStep("a"), CheckpointStep("b"), UserStep("x"), ActionStep("y"),
        CheckpointStep("mid"), UserStep("z"), ActionStep("w"), CheckpointStep("end"),
    ))
    assert [c.name for c in story.start_checkpoints()] == ["a", "b", "mid"]
    assert [c.name for c in story.end_checkpoints()] == ["mid", "end"]


def test_user_step_should_give_the_base_of_a_retrieval_intent():
    assert UserStep("faq/ask_name").base_intent == "faq"
    assert UserStep("greet").base_intent == "greet"
    assert UserStep(None, "hi").base_intent is None


def test_entities_and_slots_should_keep_the_any_value_forms_apart():
    assert StoryEntity("city") != StoryEntity("city", "")
    assert SlotValue("s", any_value=True) != SlotValue("s", None)


# ------------------------------------------------------------------------ structure issues


def test_should_find_no_issues_in_a_sensible_file():
    assert story_structure_issues(read_story_file(ALL_STEPS).all()) == []


def test_should_warn_about_a_story_without_steps():
    assert _issues("stories:\n- story: empty\n  steps: []\n") == [Issue(
        "warning", "the story 'empty' has no steps; Rasa skips it. Add steps or remove it.",
        "s.yml", 2,
    )]


def test_should_warn_about_two_user_turns_in_a_row():
    issues = _issues("stories:\n- story: s\n  steps:\n  - intent: a\n  - slot_was_set:\n"
                     "    - x: 1\n  - intent: b\n  - action: c\n")
    assert issues == [Issue(
        "warning",
        "two user turns in a row in the story 's' (lines 4 and 7) with no action between "
        "them; the assistant learns to wait silently after the first. Add the action it "
        "should run, or drop one turn.",
        "s.yml", 7,
    )]


def test_should_accept_user_turns_in_a_row_while_a_form_is_active():
    text = ("stories:\n- story: s\n  steps:\n  - intent: a\n  - action: f\n"
            "  - active_loop: f\n  - intent: b\n  - intent: c\n  - active_loop: null\n"
            "  - action: done\n")
    assert _issues(text) == []


def test_should_not_count_an_or_as_two_turns():
    text = ("stories:\n- story: s\n  steps:\n  - or:\n    - intent: a\n    - intent: b\n"
            "  - action: c\n")
    assert _issues(text) == []


def test_should_warn_about_an_or_with_one_alternative():
    issues = _issues("stories:\n- story: s\n  steps:\n  - or:\n    - intent: a\n  - action: c\n")
    assert issues == [Issue(
        "warning",
        "the 'or' in the story 's' has only one alternative; write the step itself instead.",
        "s.yml", 4,
    )]


def test_should_warn_about_a_rule_with_two_user_turns():
    issues = _issues("rules:\n- rule: r\n  steps:\n  - intent: a\n  - action: b\n"
                     "  - intent: c\n  - action: d\n")
    assert issues == [Issue(
        "warning",
        "the rule 'r' has 2 user turns; RulePolicy rejects rules with more than one user "
        "message (unless restrict_rules: false). Rules are for short, fixed snippets; write "
        "this as a story.",
        "s.yml", 2,
    )]


def test_should_flag_a_rule_that_skips_waiting_but_ends_on_a_user_turn():
    issues = _issues("rules:\n- rule: r\n  steps:\n  - action: a\n  - intent: b\n"
                     "  wait_for_user_input: false\n")
    assert issues == [Issue(
        "error",
        "the rule 'r' sets wait_for_user_input: false but does not end with an action, so "
        "there is nothing to hand over to the next story or rule. End it with an action, or "
        "drop wait_for_user_input.",
        "s.yml", 5,
    )]


def test_should_accept_a_rule_that_skips_waiting_after_an_action_and_its_events():
    text = ("rules:\n- rule: r\n  steps:\n  - intent: go\n  - action: f\n"
            "  - active_loop: f\n  wait_for_user_input: false\n")
    assert _issues(text) == []


def test_should_warn_about_checkpoints_that_lead_nowhere():
    text = ("stories:\n- story: a\n  steps:\n  - intent: x\n  - action: y\n"
            "  - checkpoint: dangling_end\n"
            "- story: b\n  steps:\n  - checkpoint: never_ended\n  - intent: x\n  - action: z\n")
    assert _issues(text) == [
        Issue("warning", "the checkpoint 'never_ended' is continued from here, but no story "
              "ends with it; this part is never reached. End a story with it, or remove it.",
              "s.yml", 9),
        Issue("warning", "the checkpoint 'dangling_end' ends a story, but no story starts "
              "from it; it leads nowhere. Start a story with it, or remove it.",
              "s.yml", 6),
    ]


def test_should_match_checkpoints_across_files():
    first = read_stories("stories:\n- story: a\n  steps:\n  - action: y\n  - checkpoint: c\n")
    second = read_stories("stories:\n- story: b\n  steps:\n  - checkpoint: c\n  - action: z\n")
    assert story_structure_issues([*first.stories, *second.stories]) == []


def test_should_read_issues_as_file_line_level_message():
    issue = _issues("stories:\n- story: empty\n")[0]
    assert str(issue) == ("s.yml:2: warning: the story 'empty' has no steps; Rasa skips it. "
                          "Add steps or remove it.")


@needs_shared_data
def test_should_find_no_structure_issues_in_the_shared_bots():
    bots = SHARED_DATA / "bots"
    for bot in json.loads((bots / "bots.json").read_text(encoding="utf-8")):
        blocks = [b for path in sorted((bots / bot).rglob("*.yml"))
                  if path.name not in ("nlu.yml", "domain.yml") and "config" not in path.name
                  for b in read_story_file(path).all()]
        assert story_structure_issues(blocks) == [], bot


def test_or_of_slot_events_should_not_count_as_a_user_turn():
    story = Story("s", (UserStep("a"), OrStep((SlotStep((SlotValue("x", 1),)),
                                                SlotStep((SlotValue("x", 2),)))),
                        UserStep("b"), ActionStep("c")))
    assert story.user_turn_count() == 2
