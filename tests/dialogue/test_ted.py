"""TEDPolicy on the fixture domain: it learns, generalises, repeats itself, finetunes."""

from __future__ import annotations

import math
import sys

import pytest

from parley.component import finetune_epochs
from parley.data.domain import Domain
from parley.dialogue.generator import generate_trackers
from parley.dialogue.policies.memoization import MemoizationPolicy
from parley.dialogue.policies.ted import TEDPolicy
from parley.errors import DataError, ParleyWarning
from tests.dialogue.helpers import MOOD_STORIES, conversation, predicted, small_domain, stories

STORIES = MOOD_STORIES + """- story: chat
  steps:
  - intent: chitchat
  - action: utter_chitchat
  - intent: thankyou
  - action: utter_welcome
"""
NEW_STORY = """
- story: bye
  steps:
  - intent: greet
  - action: utter_greet
  - intent: bye
  - action: utter_bye
"""

EPOCHS = 400  # the fixture has few examples: one batch, one step an epoch

# The paths of the stories, as (turns, expected next action).
PATHS = [
    ((("intent", "greet"),), "utter_greet"),
    ((("intent", "greet"), "utter_greet", ("intent", "mood_great")), "utter_happy"),
    ((("intent", "greet"), "utter_greet", ("intent", "mood_unhappy")), "utter_sad"),
    ((("intent", "chitchat"), "utter_chitchat", ("intent", "thankyou")), "utter_welcome"),
    ((("intent", "greet"), "utter_greet"), "action_listen"),
]


def trackers(text: str = STORIES, augmentation: int = 0) -> tuple[Domain, list]:
    domain = small_domain()
    story_list, rules = stories(text)
    return domain, generate_trackers(story_list, rules, domain, augmentation_factor=augmentation)


def predict(policy, domain, *turns):
    return predicted(policy.predict(conversation(domain, *turns), domain), domain)


@pytest.mark.parametrize("max_history", [None, 3])
def test_ted_should_learn_the_stories(max_history):
    domain, found = trackers()
    ted = TEDPolicy(epochs=EPOCHS, max_history=max_history, random_seed=1).fit(found, domain)
    assert [predict(ted, domain, *turns) for turns, _ in PATHS] == [a for _, a in PATHS]


def test_ted_should_predict_where_memoization_has_never_seen_the_history():
    # "chitchat" then "mood_great": no story has that history; the stories say what follows
    # mood_great, and TED (unlike memoization) carries that over.
    domain, found = trackers()
    turns = (("intent", "chitchat"), "utter_chitchat", ("intent", "mood_great"))
    memo = MemoizationPolicy().fit(found, domain)
    assert predict(memo, domain, *turns) is None
    ted = TEDPolicy(epochs=EPOCHS, max_history=3, random_seed=1).fit(found, domain)
    assert predict(ted, domain, *turns) == "utter_happy"


def test_same_seed_should_give_the_same_predictions_and_another_seed_others():
    domain, found = trackers()
    tracker = conversation(domain, ("intent", "greet"), "utter_greet", ("intent", "mood_great"))
    runs = [TEDPolicy(epochs=5, random_seed=seed).fit(found, domain).predict(tracker, domain)
            for seed in (7, 7, 8)]
    assert runs[0].probabilities == runs[1].probabilities
    assert runs[0].probabilities != runs[2].probabilities


def test_confidences_should_keep_the_top_ranking_length_renormalised():
    domain, found = trackers()
    tracker = conversation(domain, ("intent", "greet"))
    everything = TEDPolicy(epochs=3, ranking_length=0).fit(found, domain).predict(tracker, domain)
    top = TEDPolicy(epochs=3, ranking_length=3).fit(found, domain).predict(tracker, domain)
    assert math.isclose(sum(everything.probabilities), 1.0, rel_tol=1e-5)
    assert sum(p > 0 for p in everything.probabilities) > 3
    assert sum(p > 0 for p in top.probabilities) == 3
    assert math.isclose(sum(top.probabilities), 1.0, rel_tol=1e-5)


def test_finetuning_should_learn_new_stories_and_keep_the_old_ones(monkeypatch):
    domain, found = trackers()
    ted = TEDPolicy(epochs=EPOCHS, max_history=3, random_seed=1).fit(found, domain)
    assert predict(ted, domain, ("intent", "greet"), "utter_greet", ("intent", "bye")) \
        != "utter_bye"
    epochs_run: list[int | None] = []
    from parley.ml.training import Trainer

    original = Trainer.train

    def counting(self, epochs=None):
        epochs_run.append(self.schedule.epochs if epochs is None else epochs)
        return original(self, epochs)

    monkeypatch.setattr(Trainer, "train", counting)
    _, more = trackers(STORIES + NEW_STORY)
    ted.finetune(more, domain, epoch_fraction=0.5)
    assert epochs_run == [finetune_epochs(EPOCHS, 0.5)]
    assert predict(ted, domain, ("intent", "greet"), "utter_greet", ("intent", "bye")) \
        == "utter_bye"
    assert [predict(ted, domain, *turns) for turns, _ in PATHS] == [a for _, a in PATHS]


def test_finetuning_with_another_domain_should_say_why_it_cannot():
    domain, found = trackers()
    ted = TEDPolicy(epochs=1).fit(found, domain)
    other = Domain.from_yaml("version: '3.1'\nintents: [greet]\nresponses:\n"
                             "  utter_greet: [{text: hi}]\n")
    with pytest.raises(DataError, match="finetuning needs the same"):
        ted.finetune([], other, epoch_fraction=1.0)


def test_rules_alone_should_leave_ted_with_nothing_to_predict():
    domain = small_domain()
    _, rules = stories("rules:\n- rule: r\n  steps:\n  - intent: bye\n  - action: utter_bye\n")
    found = generate_trackers([], rules, domain, augmentation_factor=0)
    with pytest.warns(ParleyWarning, match="no stories to learn from"):
        ted = TEDPolicy().fit(found, domain)
    assert max(ted.predict(conversation(domain, ("intent", "bye")), domain).probabilities) == 0


def test_ted_should_have_every_rasa_key_with_rasas_default():
    rasa_defaults = {
        "max_history": None, "priority": 1, "encoding_dimension": 50,
        "number_of_attention_heads": 4, "use_key_relative_attention": False,
        "use_value_relative_attention": False, "max_relative_position": 5,
        "unidirectional_encoder": False, "batch_size": [64, 256], "batch_strategy": "balanced",
        "epochs": 1, "random_seed": None, "learning_rate": 0.001, "embedding_dimension": 20,
        "number_of_negative_examples": 20, "similarity_type": "auto",
        "loss_type": "cross_entropy", "ranking_length": 10, "maximum_positive_similarity": 0.8,
        "maximum_negative_similarity": -0.2, "use_maximum_negative_similarity": True,
        "scale_loss": True, "regularization_constant": 0.001, "negative_margin_scale": 0.8,
        "drop_rate_dialogue": 0.1, "drop_rate": 0.0, "drop_rate_label": 0.0,
        "drop_rate_attention": 0.0, "connection_density": 0.2, "use_sparse_input_dropout": True,
        "use_dense_input_dropout": True, "use_masked_language_model": False,
        "evaluate_every_number_of_epochs": 20, "evaluate_on_number_of_examples": 0,
        "tensorboard_log_directory": None, "tensorboard_log_level": "epoch",
        "checkpoint_model": False, "e2e_confidence_threshold": 0.5, "featurizers": None,
        "entity_recognition": True, "constrain_similarities": False,
        "model_confidence": "softmax", "BILOU_flag": True, "split_entities_by_comma": True,
    }
    defaults = TEDPolicy.default_params()
    assert {k: defaults[k] for k in rasa_defaults} == rasa_defaults
    assert defaults["transformer_size"]["dialogue"] == 128
    assert defaults["number_of_transformer_layers"]["dialogue"] == 1
    assert defaults["dense_dimension"]["intent"] == 20
    assert set(defaults) == set(TEDPolicy.param_constraints)


def test_a_transformer_size_the_heads_do_not_divide_should_be_refused():
    problems = TEDPolicy.param_problems({"transformer_size": 130})
    assert problems and "multiple of number_of_attention_heads" in problems[0].message


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="lane processes: Linux only")
@pytest.mark.parametrize("finetuning", [False, True])
def test_ted_is_the_same_with_its_second_lane_in_a_process(monkeypatch, finetuning):
    """A run training one policy forks a step's second lane (parley/ml/lane_process.py):
    the weights come out as on two threads — also when finetuning, whose model starts in
    evaluation mode (its dropout must drop in the child as on the threads)."""
    torch = pytest.importorskip("torch")
    from parley.ml import training
    from parley.ml.cores import lanes_in_processes
    from tests.ml.lane_spy import forks_counted

    forked = forks_counted(monkeypatch)
    monkeypatch.setattr(training, "MIN_SHARD", 1)
    weights = []
    for processes in (False, True):
        domain, found = trackers()
        with lanes_in_processes(processes and not finetuning):
            ted = TEDPolicy(epochs=8, random_seed=3, batch_size=[8, 16]).fit(found, domain)
        if finetuning:
            with lanes_in_processes(processes):
                ted.finetune(found, domain, 1.0)
        weights.append({k: v.clone() for k, v in ted.model_.state_dict().items()})
    assert len(forked) == 1
    a, b = weights
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
