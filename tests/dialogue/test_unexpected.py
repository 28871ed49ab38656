"""UnexpecTEDIntentPolicy on the fixture domain: its examples, thresholds and warnings."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from parley.component import finetune_epochs
from parley.data.events import ActionExecuted, UserUttered
from parley.data.tracker import DialogueStateTracker
from parley.dialogue.featurization.intents import (
    intent_examples, intent_prediction_states, learns_from,
)
from parley.dialogue.generator import generate_trackers
from parley.dialogue.neural.intents import label_quantiles, threshold
from parley.dialogue.policies.base import feature_key
from parley.dialogue.policies.unexpected import UnexpecTEDIntentPolicy
from parley.errors import ConfigError, ParleyWarning
from tests.dialogue.helpers import MOOD_STORIES, conversation, predicted, small_domain, stories

UNLIKELY = "action_unlikely_intent"
STORIES = MOOD_STORIES + """- story: chat
  steps:
  - intent: chitchat
  - action: utter_chitchat
  - intent: thankyou
  - action: utter_welcome
- story: city
  steps:
  - intent: inform
    entities:
    - city: Berlin
  - slot_was_set:
    - city: Berlin
  - action: utter_ok
"""
NEW_STORY = """
- story: chat, then bye
  steps:
  - intent: chitchat
  - action: utter_chitchat
  - intent: bye
  - action: utter_bye
"""
EPOCHS = 300  # a few examples: one batch, one step an epoch


def intent(name: str) -> tuple[str, str]:
    return ("intent", name)


LIKELY = (intent("greet"), "utter_greet", intent("mood_great"))
UNLIKELY_TURNS = (intent("chitchat"), "utter_chitchat", intent("mood_great"))


def trackers(text: str = STORIES) -> tuple:
    domain = small_domain()
    story_list, rules = stories(text)
    return domain, generate_trackers(story_list, rules, domain, augmentation_factor=0)


@pytest.fixture(scope="module")
def trained():
    domain, found = trackers()
    return domain, UnexpecTEDIntentPolicy(epochs=EPOCHS, max_history=5,
                                          random_seed=1).fit(found, domain)


def predict(policy, domain, *turns) -> str | None:
    return predicted(policy.predict(conversation(domain, *turns), domain), domain)


# --- the examples (Rasa's IntentMaxHistoryTrackerFeaturizer) ------------------------------
def test_examples_should_label_each_history_with_every_intent_that_follows_it():
    domain, found = trackers()
    examples = intent_examples(found, domain, 5)
    shown = {tuple(feature_key([examples.table.states[i]]) for i in h): labels
             for h, labels in zip(examples.histories, examples.labels, strict=True)}
    assert shown[(feature_key([{}]),)] == ["chitchat", "greet", "inform"]
    after_greet = next(labels for key, labels in shown.items() if len(key) == 3
                       and "utter_greet" in key[-1])
    assert after_greet == ["mood_great", "mood_unhappy"]
    assert len(examples.histories) == 3


def test_examples_should_leave_out_the_judged_turn_and_what_it_set():
    domain, found = trackers()
    examples = intent_examples(found, domain, None)
    for history in examples.histories:
        last = examples.table.states[history[-1]]
        assert last.get("prev_action", {}).get("action_name") != "action_listen"
        assert "slots" not in last  # the city set by `inform` never shows before it


def test_action_unlikely_intent_should_be_invisible_to_the_examples_and_the_prediction():
    domain = small_domain()
    plain = conversation(domain, intent("greet"), "utter_greet", intent("mood_great"),
                         "utter_happy")
    warned = conversation(domain, intent("greet"), UNLIKELY, "utter_greet",
                          intent("mood_great"), UNLIKELY, "utter_happy")
    def labelled(t):
        examples = intent_examples([t], domain, 3)
        return [([examples.table.states[i] for i in h], labels)
                for h, labels in zip(examples.histories, examples.labels, strict=True)]
    assert labelled(warned) == labelled(plain)
    now = conversation(domain, intent("greet"), UNLIKELY, "utter_greet", intent("mood_great"))
    before = conversation(domain, intent("greet"), "utter_greet", intent("mood_great"))
    assert intent_prediction_states(now, domain, 3) == intent_prediction_states(before, domain, 3)
    # and the prediction's history is the training example's
    examples = intent_examples([plain], domain, 3)
    wanted = [examples.table.states[i] for i in examples.histories[1]]
    assert intent_prediction_states(before, domain, 3) == wanted


def test_stories_with_texts_only_and_rules_should_teach_it_nothing():
    domain = small_domain()
    text_only = DialogueStateTracker.from_domain("e2e", domain, [
        ActionExecuted(action_name="action_listen"), UserUttered(text="hello there")])
    assert not learns_from(text_only)
    _, rules = stories("rules:\n- rule: r\n  steps:\n  - intent: bye\n  - action: utter_bye\n")
    rule_trackers = generate_trackers([], rules, domain, augmentation_factor=0)
    assert not any(learns_from(t) for t in rule_trackers)
    assert intent_examples(rule_trackers + [text_only], domain, None).histories == []


# --- thresholds ---------------------------------------------------------------------------
def test_quantiles_should_follow_rasas_rule():
    # three histories; intent 0 said after the first two, intent 1 after the last
    scores = np.array([[2.0, -1.0], [1.0, -3.0], [-2.0, 0.5]], np.float32)
    quantiles = label_quantiles(scores, [[0], [0], [1]])
    # intent 0: not said once (score -2, under its lowest said score 1)
    assert quantiles[0] == [-2.0] * 20
    # intent 1: not said twice (-1, -3); tolerance 0 → the highest of them, capped by 0.5;
    # the lower quantiles step down to the lowest
    assert quantiles[1][0] == -1.0 and quantiles[1][-1] == -3.0
    assert threshold(quantiles[1], 0.0) == -1.0 and threshold(quantiles[1], 1.0) == -3.0
    capped = label_quantiles(np.array([[0.2], [0.9]], np.float32), [[0], []])
    assert capped[0] == pytest.approx([0.2] * 20)  # a negative above the lowest positive


def test_thresholds_should_exist_for_every_intent_of_the_stories(trained):
    domain, policy = trained
    assert set(policy.thresholds()) == {"greet", "chitchat", "inform", "mood_great",
                                        "mood_unhappy", "thankyou"}
    lenient = copy.copy(policy)
    lenient.tolerance = 0.9
    assert all(lenient.thresholds()[i] <= t for i, t in policy.thresholds().items())


# --- predictions --------------------------------------------------------------------------
def test_should_warn_for_an_unlikely_intent_and_not_for_a_likely_one(trained):
    domain, policy = trained
    assert predict(policy, domain, *UNLIKELY_TURNS) == UNLIKELY
    assert "'mood_great' is unlikely here" in policy.predict(
        conversation(domain, *UNLIKELY_TURNS), domain).reason
    assert predict(policy, domain, *LIKELY) is None
    assert predict(policy, domain, intent("chitchat"), "utter_chitchat", intent("thankyou")) \
        is None


def test_should_abstain_once_an_action_ran_and_for_ignored_or_unseen_intents(trained):
    domain, policy = trained
    assert predict(policy, domain, *UNLIKELY_TURNS, UNLIKELY) is None  # never twice
    assert predict(policy, domain, *UNLIKELY_TURNS, "utter_ok") is None
    assert predict(policy, domain, intent("greet"), "utter_greet", intent("bye")) is None
    ignoring = copy.copy(policy)
    ignoring.ignore_intents_list = ["mood_great"]
    prediction = ignoring.predict(conversation(domain, *UNLIKELY_TURNS), domain)
    assert predicted(prediction, domain) is None
    assert "ignore_intents_list" in prediction.reason


def test_same_seed_should_give_the_same_predictions_and_another_seed_others():
    domain, found = trackers()
    tracker = conversation(domain, *LIKELY)
    runs = [UnexpecTEDIntentPolicy(epochs=5, random_seed=seed).fit(found, domain)
            for seed in (7, 7, 8)]
    reasons = [p.predict(tracker, domain).reason for p in runs]
    assert reasons[0] == reasons[1] and runs[0].quantiles_ == runs[1].quantiles_
    assert reasons[0] != reasons[2]


def test_save_and_load_should_keep_the_thresholds_and_the_predictions(trained, tmp_path):
    domain, policy = trained
    policy.save(tmp_path / "p")
    loaded = UnexpecTEDIntentPolicy.load(tmp_path / "p")
    assert loaded.thresholds() == policy.thresholds()
    for turns in (UNLIKELY_TURNS, LIKELY):
        tracker = conversation(domain, *turns)
        assert loaded.predict(tracker, domain).reason == policy.predict(tracker, domain).reason
    assert not list((tmp_path / "p").rglob("*.pkl"))


def test_finetuning_should_learn_a_new_story(monkeypatch):
    domain, found = trackers()
    policy = UnexpecTEDIntentPolicy(epochs=EPOCHS, max_history=5, random_seed=1).fit(found,
                                                                                      domain)
    bye = (intent("chitchat"), "utter_chitchat", intent("bye"))
    assert predict(policy, domain, *bye) is None  # no story has bye: not checked
    from parley.ml.training import Trainer

    epochs_run: list[int | None] = []
    original = Trainer.train

    def counting(self, epochs=None):
        epochs_run.append(self.schedule.epochs if epochs is None else epochs)
        return original(self, epochs)

    monkeypatch.setattr(Trainer, "train", counting)
    _, more = trackers(STORIES + NEW_STORY)
    policy.finetune(more, domain, epoch_fraction=0.5)
    assert epochs_run == [finetune_epochs(EPOCHS, 0.5)]
    assert "bye" in policy.thresholds()
    assert predict(policy, domain, *bye) is None
    assert predict(policy, domain, *LIKELY) is None


# --- configuration ------------------------------------------------------------------------
def test_should_have_every_rasa_key_with_rasas_default():
    rasa_defaults = {
        "max_history": None, "priority": 2, "hidden_layers_sizes": {"text": []},
        "encoding_dimension": 50, "number_of_attention_heads": 4,
        "use_key_relative_attention": False, "use_value_relative_attention": False,
        "max_relative_position": 5, "unidirectional_encoder": False,
        "batch_size": [64, 256], "batch_strategy": "balanced", "epochs": 1,
        "random_seed": None, "learning_rate": 0.001, "embedding_dimension": 20,
        "number_of_negative_examples": 20, "ranking_length": 10, "scale_loss": True,
        "regularization_constant": 0.001, "drop_rate_dialogue": 0.1, "drop_rate": 0.0,
        "drop_rate_label": 0.0, "drop_rate_attention": 0.0, "connection_density": 0.2,
        "use_sparse_input_dropout": True, "use_dense_input_dropout": True,
        "use_masked_language_model": False, "evaluate_every_number_of_epochs": 20,
        "evaluate_on_number_of_examples": 0, "tensorboard_log_directory": None,
        "tensorboard_log_level": "epoch", "checkpoint_model": False, "featurizers": None,
        "ignore_intents_list": [], "tolerance": 0.0, "split_entities_by_comma": True,
        "similarity_type": "inner", "entity_recognition": False, "BILOU_flag": False,
        "loss_type": "cross_entropy",
        "dense_dimension": {"text": 128, "intent": 20, "action_name": 20, "entities": 20,
                            "slots": 20, "active_loop": 20, "label_intent": 20},
        "concat_dimension": {"text": 128},
        "transformer_size": {"text": 128, "dialogue": 128},
        "number_of_transformer_layers": {"text": 1, "dialogue": 1},
    }
    defaults = UnexpecTEDIntentPolicy.default_params()
    assert defaults == rasa_defaults
    assert set(defaults) == set(UnexpecTEDIntentPolicy.param_constraints)
    with pytest.raises(ConfigError, match="has no parameter 'constrain_similarities'"):
        UnexpecTEDIntentPolicy.from_params({"constrain_similarities": True})  # TED's only
    assert UnexpecTEDIntentPolicy.default_priority == 2


@pytest.mark.parametrize("params, says", [
    ({"tolerance": 1.5}, "tolerance"),
    ({"tolerance": -0.1}, "tolerance"),
    ({"ignore_intents_list": "greet"}, "ignore_intents_list"),
    ({"ranking_length": -1}, "ranking_length"),
    ({"epochs": 0}, "epochs"),
    ({"transformer_size": 130}, "multiple of number_of_attention_heads"),
])
def test_bad_values_should_be_refused_naming_the_key(params, says):
    with pytest.raises(ConfigError, match=says):
        UnexpecTEDIntentPolicy.from_params(params)


def test_settings_rasa_overrides_should_warn_and_change_nothing():
    domain, found = trackers()
    with pytest.warns(ParleyWarning, match="loss_type is always 'cross_entropy'"):
        margin = UnexpecTEDIntentPolicy(epochs=3, loss_type="margin").fit(found, domain)
    plain = UnexpecTEDIntentPolicy(epochs=3).fit(found, domain)
    tracker = conversation(domain, *LIKELY)
    assert margin.predict(tracker, domain).reason == plain.predict(tracker, domain).reason
