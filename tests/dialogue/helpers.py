"""Small builders shared by the dialogue tests."""

from __future__ import annotations

import shutil
from pathlib import Path

from parley.data.domain import Domain
from parley.data.events import ActionExecuted, ActionExecutionRejected, ActiveLoop, SlotSet, UserUttered
from parley.data.formats.story_yaml import read_stories
from parley.data.importer import TrainingDataImporter
from parley.data.stories import Story
from parley.data.tracker import DialogueStateTracker
from parley.dialogue.generator import generate_trackers
from parley.dialogue.policies.base import Policy
from parley.dialogue.policies.ensemble import PolicyEnsemble
from parley.dialogue.policies.memoization import MemoizationPolicy
from parley.dialogue.policies.prediction import PolicyPrediction
from parley.dialogue.policies.rule import RulePolicy
from parley.model_training import train_core
from tests.conftest import SHARED_DATA

BOTS = SHARED_DATA / "bots"

DOMAIN_YAML = """
version: "3.1"
intents: [greet, mood_great, mood_unhappy, affirm, thankyou, inform, chitchat, bye, request]
entities: [city]
slots:
  city:
    type: text
    mappings: [{type: from_entity, entity: city}]
  mood:
    type: categorical
    values: [good, bad]
    mappings: [{type: custom}]
  vip:
    type: bool
    influence_conversation: false
    mappings: [{type: custom}]
forms:
  city_form:
    required_slots: [city]
actions: [action_check]
responses:
  utter_greet: [{text: hi}]
  utter_happy: [{text: great}]
  utter_sad: [{text: sorry}]
  utter_ok: [{text: ok}]
  utter_bye: [{text: bye}]
  utter_chitchat: [{text: chat}]
  utter_ask_city: [{text: where?}]
  utter_done: [{text: done}]
  utter_welcome: [{text: welcome}]
"""


# The moodbot stories most dialogue tests start from, as story-file text to join: a test's
# stories are ``"\nstories:\n" + HAPPY_STORY + …`` (the leading blank line keeps line numbers
# the way the tests that check them count).
HAPPY_STORY = """- story: happy
  steps:
  - intent: greet
  - action: utter_greet
  - intent: mood_great
  - action: utter_happy
"""
SAD_STORY = """- story: sad
  steps:
  - intent: greet
  - action: utter_greet
  - intent: mood_unhappy
  - action: utter_sad
"""
MOOD_STORIES = "\nstories:\n" + HAPPY_STORY + SAD_STORY

# A story that greets and a rule that says bye: what the ensemble tests fit on.
GREET_AND_BYE = """
stories:
- story: greet
  steps:
  - intent: greet
  - action: utter_greet
rules:
- rule: bye
  steps:
  - intent: bye
  - action: utter_bye
"""


def small_domain() -> Domain:
    return Domain.from_yaml(DOMAIN_YAML)


def stories(text: str) -> tuple[list[Story], list[Story]]:
    """(stories, rules) of a story file's text."""
    parsed = read_stories('version: "3.1"\n' + text, "stories.yml")
    return parsed.stories, parsed.rules


def fitted_ensemble(*learned: Policy, rule: RulePolicy | None = None
                    ) -> tuple[PolicyEnsemble, Domain]:
    """MemoizationPolicy, ``rule`` (a default RulePolicy) and ``learned``, fitted on
    :data:`GREET_AND_BYE` over :func:`small_domain`."""
    domain = small_domain()
    s, r = stories(GREET_AND_BYE)
    trackers = generate_trackers(s, r, domain, augmentation_factor=0)
    policies = [MemoizationPolicy(), rule or RulePolicy(), *learned]
    return PolicyEnsemble(policies).fit(trackers, domain), domain


def bot(name: str) -> TrainingDataImporter:
    root: Path = BOTS / name
    data = [root / "data"] + [root / d for d in ("tests",) if (root / d).is_dir()]
    return TrainingDataImporter(root / "domain.yml", root / "config.yml", data)


def readable_bots() -> list[str]:
    if not BOTS.is_dir():
        return []
    return sorted(p.name for p in BOTS.iterdir() if p.is_dir() and p.name != "carbon-bot")


def conversation(domain: Domain, *steps: str | tuple[str, ...]) -> DialogueStateTracker:
    """A tracker from shorthand steps: ``"action"``, ``("intent", name)``,
    ``("slot", name, value)``, ``("loop", name_or_none)``, ``("rejected", action)``;
    a user turn gets its ``action_listen`` first, as in a live conversation."""
    tracker = DialogueStateTracker.from_domain("test", domain)
    for step in steps:
        if isinstance(step, str):
            tracker.update(ActionExecuted(action_name=step))
        elif step[0] == "intent":
            if tracker.latest_action_name != "action_listen":
                tracker.update(ActionExecuted(action_name="action_listen"))
            tracker.update(UserUttered(intent={"name": step[1], "confidence": 1.0}))
        elif step[0] == "slot":
            tracker.update(SlotSet(key=step[1], value=step[2]))
        elif step[0] == "loop":
            tracker.update(ActiveLoop(name=step[1]))
        elif step[0] == "rejected":
            tracker.update(ActionExecutionRejected(action_name=step[1]))
    return tracker


def predicted(prediction: PolicyPrediction, domain: Domain) -> str | None:
    return prediction.action_name(domain)


def moodbot_core(folder: Path, config: str) -> tuple[Path, Path]:
    """rasa-init-moodbot copied into ``folder`` with ``config`` as its config.yml, and the
    core model trained from it."""
    shutil.copytree(SHARED_DATA / "bots" / "rasa-init-moodbot", folder, dirs_exist_ok=True)
    (folder / "config.yml").write_text(config)
    model = train_core(str(folder / "domain.yml"), str(folder / "config.yml"),
                       str(folder / "data"), str(folder / "models"))
    assert model is not None
    return folder, Path(model)
