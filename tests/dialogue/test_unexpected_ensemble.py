"""UnexpecTEDIntentPolicy among the other policies and in a live conversation, as in Rasa:
priority 2 (under rules and memoization), the warning first, then the others predict as if
it had not run."""

from __future__ import annotations

import asyncio

import pytest

from parley.data.events import ActionExecuted
from parley.dialogue.generator import generate_trackers
from parley.dialogue.policies.ensemble import PolicyEnsemble, pick_best
from parley.dialogue.policies.memoization import MemoizationPolicy
from parley.dialogue.policies.rule import RulePolicy
from parley.dialogue.policies.ted import TEDPolicy
from parley.dialogue.policies.unexpected import UnexpecTEDIntentPolicy
from parley.runtime.processor import MessageProcessor, UserMessage
from tests.dialogue.helpers import conversation, predicted, small_domain, stories
from tests.dialogue.test_unexpected import EPOCHS, LIKELY, STORIES, UNLIKELY, UNLIKELY_TURNS
from tests.runtime.fakes import ScriptedModel

CHAT_THEN_MOOD = """
- story: chat, then in a good mood
  steps:
  - intent: chitchat
  - action: utter_chitchat
  - intent: mood_great
  - action: utter_happy
"""


def fitted(text: str, *policies):
    domain = small_domain()
    story_list, rules = stories(text)
    trackers = generate_trackers(story_list, rules, domain, augmentation_factor=0)
    return [p.fit(trackers, domain) for p in policies], domain


@pytest.fixture(scope="module")
def ensemble():
    policies, domain = fitted(STORIES, MemoizationPolicy(), RulePolicy(),
                              UnexpecTEDIntentPolicy(epochs=EPOCHS, max_history=5,
                                                     random_seed=1),
                              TEDPolicy(epochs=EPOCHS, max_history=5, random_seed=1))
    return PolicyEnsemble(policies), domain


class EnsembleModel(ScriptedModel):
    """The processor's model: the fixture's NLU (``/intent`` messages) and a real ensemble."""

    def __init__(self, ensemble: PolicyEnsemble, domain) -> None:
        super().__init__(domain)
        self.ensemble = ensemble

    def predict_next_action(self, tracker):
        return self.ensemble.predict(tracker, self.domain)


def ran_after_message(processor: MessageProcessor, text: str) -> list[tuple[str, str | None]]:
    asyncio.run(processor.handle_message(UserMessage(text, "user")))
    tracker = asyncio.run(processor.tracker_store.retrieve("user"))
    ran: list[tuple[str, str | None]] = []
    for event in reversed(tracker.events):
        if isinstance(event, ActionExecuted):
            if event.action_name == "action_listen" and ran:
                break
            ran.append((event.action_name or "", event.policy))
    return ran[::-1]


def test_the_warning_should_win_where_no_rule_or_story_knows_the_path(ensemble):
    ensemble, domain = ensemble
    winner = ensemble.predict(conversation(domain, *UNLIKELY_TURNS), domain)
    assert predicted(winner, domain) == UNLIKELY
    assert winner.policy_name == "UnexpecTEDIntentPolicy"
    assert predicted(ensemble.predict(conversation(domain, *LIKELY), domain), domain) == \
        "utter_happy"


def test_after_the_warning_the_policies_should_predict_as_if_it_had_not_run(ensemble):
    ensemble, domain = ensemble
    memo, ted = ensemble.policies[0], ensemble.policies[3]
    for turns in (LIKELY, UNLIKELY_TURNS):
        for policy in (memo, ted):
            plain = policy.predict(conversation(domain, *turns), domain)
            warned = policy.predict(conversation(domain, *turns, UNLIKELY), domain)
            assert warned.probabilities == plain.probabilities
    assert predicted(memo.predict(conversation(domain, *LIKELY, UNLIKELY), domain), domain) \
        == "utter_happy"


def test_a_remembered_story_should_outrank_the_warning_by_priority():
    (memo,), domain = fitted(STORIES + CHAT_THEN_MOOD, MemoizationPolicy())
    (unexpected,), _ = fitted(STORIES, UnexpecTEDIntentPolicy(epochs=EPOCHS, max_history=5,
                                                              random_seed=1))
    tracker = conversation(domain, *UNLIKELY_TURNS)
    predictions = [memo.predict(tracker, domain), unexpected.predict(tracker, domain)]
    assert predicted(predictions[1], domain) == UNLIKELY
    winner = pick_best(predictions)
    assert predicted(winner, domain) == "utter_happy"
    assert "higher priority (3 > 2)" in winner.reason


def test_a_conversation_should_run_the_warning_once_then_go_on(ensemble):
    ensemble, domain = ensemble
    processor = MessageProcessor(EnsembleModel(ensemble, domain))
    assert ran_after_message(processor, "/chitchat") == [
        ("utter_chitchat", "MemoizationPolicy"), ("action_listen", "MemoizationPolicy")]
    ran = ran_after_message(processor, "/mood_great")
    assert ran[0] == (UNLIKELY, "UnexpecTEDIntentPolicy")
    assert [name for name, _ in ran[1:]].count(UNLIKELY) == 0
    assert ran[-1][0] == "action_listen" and len(ran) >= 3
    fresh = MessageProcessor(EnsembleModel(ensemble, domain))
    ran_after_message(fresh, "/greet")
    assert [name for name, _ in ran_after_message(fresh, "/mood_great")] == [
        "utter_happy", "action_listen"]
