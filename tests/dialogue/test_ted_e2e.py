"""TEDPolicy on end-to-end stories: it reads the words of ``user:`` and ``bot:`` turns.

The text features here come from a small bag of words (the dialogue layer takes any
:class:`TextFeatures`); ``tests/training/test_e2e_training.py`` runs the real NLU pipeline.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

from parley.data.domain import Domain
from parley.data.events import ActionExecuted, UserUttered
from parley.data.tracker import DialogueStateTracker
from parley.dialogue.featurization.state import TextFeatures
from parley.dialogue.generator import generate_trackers
from parley.dialogue.policies.ensemble import PolicyEnsemble
from parley.dialogue.policies.ted import TEDPolicy
from tests.dialogue.helpers import small_domain, stories

BOT_TEXT = "Hello! How are you today?"
E2E_STORIES = f"""
stories:
- story: loves sushi
  steps:
  - intent: greet
  - action: utter_greet
  - user: I love sushi so much
  - action: utter_happy
- story: rainy
  steps:
  - intent: greet
  - action: utter_greet
  - user: it rains all day long
  - action: utter_sad
- story: the bot in words
  steps:
  - intent: chitchat
  - bot: {BOT_TEXT}
  - intent: thankyou
  - action: utter_welcome
"""
VOCABULARY = sorted({w for t in ("I love sushi so much", "it rains all day long", BOT_TEXT)
                     for w in re.findall(r"\w+", t.lower())})
EPOCHS = 300


def bag_of_words(texts, featurizers=None) -> TextFeatures:
    """A word-count vector per text over :data:`VOCABULARY` (a stand-in for the NLU
    pipeline's featurizers)."""
    vectors = {}
    for text in texts:
        vector = np.zeros(len(VOCABULARY), np.float32)
        for word in re.findall(r"\w+", text.lower()):
            if word in VOCABULARY:
                vector[VOCABULARY.index(word)] += 1
        vectors[text] = vector
    return TextFeatures(vectors, len(VOCABULARY))


def e2e_domain() -> Domain:
    return replace(small_domain(), e2e_actions=[BOT_TEXT])


def e2e_trackers(domain: Domain) -> list:
    found, rules = stories(E2E_STORIES)
    return generate_trackers(found, rules, domain, augmentation_factor=0)


def story_texts() -> list[str]:
    return ["I love sushi so much", "it rains all day long", BOT_TEXT]


def said(domain: Domain, text: str, intent: str | None = "mood_great") -> DialogueStateTracker:
    """greet, utter_greet, then the user says ``text`` (parsed as ``intent``)."""
    tracker = DialogueStateTracker.from_domain("t", domain)
    tracker.update(ActionExecuted(action_name="action_listen"))
    tracker.update(UserUttered(intent={"name": "greet", "confidence": 1.0}))
    tracker.update(ActionExecuted(action_name="utter_greet"))
    tracker.update(ActionExecuted(action_name="action_listen"))
    tracker.update(UserUttered(text=text, intent={"name": intent, "confidence": 1.0}
                               if intent else None))
    return tracker


@pytest.fixture(scope="module")
def trained() -> tuple[TEDPolicy, Domain]:
    domain = e2e_domain()
    ted = TEDPolicy(epochs=EPOCHS, random_seed=3, e2e_confidence_threshold=0.3)
    return ted.fit(e2e_trackers(domain), domain, bag_of_words(story_texts())), domain


def test_ted_should_tell_stories_apart_by_the_users_text(trained):
    ted, domain = trained
    sushi = ted.predict_with_texts(said(domain, "I love sushi so much"), domain,
                                   featurize=bag_of_words)
    rain = ted.predict_with_texts(said(domain, "it rains all day long"), domain,
                                  featurize=bag_of_words)
    assert sushi.action_name(domain) == "utter_happy"
    assert rain.action_name(domain) == "utter_sad"
    assert sushi.is_end_to_end_prediction and rain.is_end_to_end_prediction


def test_ted_should_read_a_new_message_through_the_featurizer_it_is_given(trained):
    ted, domain = trained
    asked: list[list[str]] = []

    def featurize(texts, featurizers=None):
        asked.append(list(texts))
        return bag_of_words(texts)

    tracker = said(domain, "all day it rains", intent=None)
    prediction = ted.predict_with_texts(tracker, domain, featurize=featurize)
    assert asked == [["all day it rains"]]
    assert prediction.action_name(domain) == "utter_sad"


def test_ted_should_predict_a_bot_text_as_an_action(trained):
    ted, domain = trained
    tracker = DialogueStateTracker.from_domain("t", domain)
    tracker.update(ActionExecuted(action_name="action_listen"))
    tracker.update(UserUttered(intent={"name": "chitchat", "confidence": 1.0}))
    prediction = ted.predict(tracker, domain)
    assert prediction.action_name(domain) == BOT_TEXT
    assert not prediction.is_end_to_end_prediction  # the user turn was read by its intent


def test_a_text_that_is_not_sure_enough_should_leave_the_intent_to_decide(trained):
    ted, domain = trained
    tracker = said(domain, "it rains all day long", intent="mood_great")
    assert ted.predict_with_texts(tracker, domain, featurize=bag_of_words
                                  ).is_end_to_end_prediction
    threshold = ted.e2e_confidence_threshold
    try:
        ted.e2e_confidence_threshold = 1.0  # no confidence passes: the intent decides
        prediction = ted.predict_with_texts(tracker, domain, featurize=bag_of_words)
    finally:
        ted.e2e_confidence_threshold = threshold
    assert not prediction.is_end_to_end_prediction
    assert prediction.action_name(domain) != "utter_sad"


def test_the_ensemble_should_hand_ted_the_featurizer_and_mark_the_text_as_used(trained):
    ted, domain = trained
    winner = PolicyEnsemble([ted]).predict(said(domain, "all day it rains", intent=None),
                                           domain, bag_of_words)
    assert winner.action_name(domain) == "utter_sad"
    assert winner.events[-1].use_text_for_featurization is True


def test_without_text_features_ted_should_learn_the_shape_only():
    domain = e2e_domain()
    ted = TEDPolicy(epochs=5, random_seed=3).fit(e2e_trackers(domain), domain)
    assert not ted.reads_user_text_ and ted.featurizer_.text_dim == 0
    prediction = ted.predict_with_texts(said(domain, "I love sushi so much"), domain,
                                        featurize=bag_of_words)
    assert not prediction.is_end_to_end_prediction


def test_e2e_training_should_be_reproducible():
    domain = e2e_domain()
    runs = []
    for _ in range(2):
        ted = TEDPolicy(epochs=8, random_seed=11).fit(e2e_trackers(domain), domain,
                                                     bag_of_words(story_texts()))
        runs.append(ted.predict_with_texts(said(domain, "all day it rains", intent=None), domain,
                                           featurize=bag_of_words).probabilities)
    assert runs[0] == runs[1]


def test_the_e2e_parts_should_survive_save_and_load(trained, tmp_path):
    ted, domain = trained
    ted.save(tmp_path / "ted")
    loaded = TEDPolicy.load(tmp_path / "ted")
    assert loaded.reads_user_text_ and not loaded.only_e2e_
    assert sorted(loaded.text_features_.vectors) == sorted(story_texts())
    for text in ("I love sushi so much", "all day it rains"):
        tracker = said(domain, text, intent=None)
        before = ted.predict_with_texts(tracker, domain, featurize=bag_of_words)
        after = loaded.predict_with_texts(tracker, domain, featurize=bag_of_words)
        assert after.probabilities == pytest.approx(before.probabilities, abs=1e-6)
        assert after.is_end_to_end_prediction == before.is_end_to_end_prediction


def test_finetuning_should_keep_reading_texts(trained, tmp_path):
    ted, domain = trained
    ted.save(tmp_path / "ted")
    again = TEDPolicy.load(tmp_path / "ted")
    again.finetune(e2e_trackers(domain), domain, epoch_fraction=0.2,
                   text_features=bag_of_words(story_texts()))
    prediction = again.predict_with_texts(said(domain, "I love sushi so much", intent=None),
                                          domain, featurize=bag_of_words)
    assert prediction.action_name(domain) == "utter_happy"
    with pytest.raises(Exception, match="text features"):
        again.finetune(e2e_trackers(domain), domain, epoch_fraction=0.2,
                       text_features=TextFeatures({"x": np.ones(3, np.float32)}, 3))
