"""TEDPolicy's entity recognition on end-to-end stories (Rasa's ``entity_recognition``).

The stories annotate cities in ``user:`` texts; TED learns to tag them and, when it
predicts from a message's text, returns the cities it finds as an optional
``EntitiesAdded`` event. The text features are a small stand-in for the NLU pipeline
(whitespace tokens, one-hot words); ``tests/training/test_e2e_features.py`` runs the real
pipeline.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from parley.data.domain import Domain
from parley.data.events import ActionExecuted, EntitiesAdded, UserUttered
from parley.data.tracker import DialogueStateTracker
from parley.dialogue.featurization.state import TextFeatures, TextTokens
from parley.dialogue.generator import generate_trackers
from parley.dialogue.policies.ensemble import PolicyEnsemble
from parley.dialogue.policies.ted import TEDPolicy
from tests.dialogue.helpers import stories

# A city fills no slot here: the states before and after TED tags one stay the same.
DOMAIN = """
version: "3.1"
intents: [greet]
entities: [city]
responses:
  utter_greet: [{text: hi}]
  utter_ok: [{text: ok}]
  utter_happy: [{text: great}]
  utter_sad: [{text: sorry}]
"""

TRIPS = [("I want to go to [paris](city)", "utter_ok"),
         ("take me to [london](city) please", "utter_ok"),
         ("[rome](city) is where I go", "utter_ok"),
         ("fly me to [new york](city) tomorrow", "utter_ok"),
         ("I feel great today", "utter_happy"),
         ("I feel so sad today", "utter_sad")]
STORIES = "stories:\n" + "".join(
    f"- story: trip {i}\n  steps:\n  - intent: greet\n  - action: utter_greet\n"
    f"  - user: \"{text}\"\n  - action: {action}\n"
    for i, (text, action) in enumerate(TRIPS))
PLAIN = [re.sub(r"\[([^\]]+)\]\(\w+\)", r"\1", text) for text, _ in TRIPS]
VOCABULARY = sorted({w for t in PLAIN for w in t.lower().split()})
EPOCHS = 300


def words(texts, featurizers=None, tokens=False) -> TextFeatures:
    """Whitespace tokens, each a one-hot word over :data:`VOCABULARY`; a text's sentence
    vector is their sum (a stand-in for the NLU pipeline's featurizers)."""
    out = TextFeatures(dim=len(VOCABULARY))
    for text in texts:
        spans = tuple((m.start(), m.end()) for m in re.finditer(r"\S+", text))
        rows = np.zeros((len(spans), len(VOCABULARY)), np.float32)
        for row, (start, end) in enumerate(spans):
            word = text[start:end].lower()
            if word in VOCABULARY:
                rows[row, VOCABULARY.index(word)] = 1.0
        out.vectors[text] = rows.sum(axis=0)
        if tokens:
            out.tokens[text] = TextTokens(spans, rows)
    return out


def small_domain() -> Domain:
    return Domain.from_yaml(DOMAIN)


def trackers(domain: Domain, text: str = STORIES) -> list:
    found, rules = stories(text)
    return generate_trackers(found, rules, domain, augmentation_factor=0)


def said(domain: Domain, text: str) -> DialogueStateTracker:
    """greet, utter_greet, then the user says ``text`` (no intent: TED reads the words)."""
    tracker = DialogueStateTracker.from_domain("t", domain)
    tracker.update(ActionExecuted(action_name="action_listen"))
    tracker.update(UserUttered(intent={"name": "greet", "confidence": 1.0}))
    tracker.update(ActionExecuted(action_name="utter_greet"))
    tracker.update(ActionExecuted(action_name="action_listen"))
    tracker.update(UserUttered(text=text))
    return tracker


def train(**params) -> TEDPolicy:
    domain = small_domain()
    ted = TEDPolicy(**{"epochs": EPOCHS, "random_seed": 1, **params})
    return ted.fit(trackers(domain), domain, words(PLAIN, tokens=True))


def found_entities(ted: TEDPolicy, text: str) -> list[dict]:
    domain = small_domain()
    prediction = ted.predict_with_texts(said(domain, text), domain, featurize=words)
    added = [e for e in prediction.optional_events if isinstance(e, EntitiesAdded)]
    return [e for event in added for e in event.entities]


@pytest.fixture(scope="module")
def trained() -> TEDPolicy:
    return train()


def test_ted_should_tag_the_entities_of_the_text_it_predicted_from(trained):
    domain = small_domain()
    prediction = trained.predict_with_texts(said(domain, "I want to go to paris"), domain,
                                            featurize=words)
    assert prediction.is_end_to_end_prediction
    assert prediction.action_name(domain) == "utter_ok"
    [added] = prediction.optional_events
    [city] = added.entities
    assert (city["entity"], city["value"], city["start"], city["end"]) == \
        ("city", "paris", 16, 21)
    assert city["extractor"] == "TEDPolicy" and 0.5 < city["confidence_entity"] <= 1.0


def test_a_city_should_be_found_in_words_it_was_not_annotated_in(trained):
    # "london" was annotated after "take me to"; here it follows "I want to go to"
    assert [(e["value"], e["start"]) for e in found_entities(trained, "I want to go to london")
            ] == [("london", 16)]
    assert [e["value"] for e in found_entities(trained, "fly me to new york tomorrow")] == [
        "new york"]


def test_a_text_without_entities_should_add_none(trained):
    assert found_entities(trained, "I feel great today") == []


def test_the_ensemble_should_add_the_entities_to_the_latest_message(trained):
    domain = small_domain()
    tracker = said(domain, "take me to rome please")
    winner = PolicyEnsemble([trained]).predict(tracker, domain, words)
    assert winner.action_name(domain) == "utter_ok"
    for event in winner.events:
        tracker.update(event)
    assert [e["value"] for e in tracker.latest_message.entities] == ["rome"]
    assert tracker.events[4].entities == []  # the logged message stays as it was parsed


def test_an_intent_prediction_should_add_no_entities(trained):
    domain = small_domain()
    tracker = said(domain, "I want to go to paris")
    tracker.events[-1] = UserUttered(text="I want to go to paris",
                                     intent={"name": "greet", "confidence": 1.0})
    tracker = DialogueStateTracker.from_domain("t", domain, tracker.events)
    threshold = trained.e2e_confidence_threshold
    try:
        trained.e2e_confidence_threshold = 1.0  # no confidence passes: the intent decides
        prediction = trained.predict_with_texts(tracker, domain, featurize=words)
    finally:
        trained.e2e_confidence_threshold = threshold
    assert not prediction.is_end_to_end_prediction and prediction.optional_events == []


def test_entity_recognition_false_should_build_no_entity_head():
    ted = train(epochs=2, entity_recognition=False)
    assert ted.model_.entities is None and ted.architecture_.entities is None
    assert found_entities(ted, "I want to go to paris") == []


def test_stories_without_annotated_entities_should_build_no_entity_head():
    plain = re.sub(r"\[([^\]]+)\]\(city\)", r"\1", STORIES)
    domain = small_domain()
    ted = TEDPolicy(epochs=2, random_seed=1).fit(trackers(domain, plain), domain,
                                                 words(PLAIN, tokens=True))
    assert ted.model_.entities is None


def test_the_entity_head_should_follow_the_text_keys():
    ted = train(epochs=1, number_of_transformer_layers={"text": 0},
                dense_dimension={"text": 16}, BILOU_flag=False)
    head = ted.model_.entities
    assert head.encoder is None and head.dense.out_features == 16
    assert head.shape.tags == ["O", "city"]  # without BILOU a tag is the bare label


def test_training_with_entities_should_be_reproducible():
    runs = [found_entities(train(epochs=30, random_seed=7), "take me to paris please")
            for _ in range(2)]
    assert runs[0] == runs[1]


def test_the_entity_head_should_survive_save_and_load(trained, tmp_path):
    trained.save(tmp_path / "ted")
    loaded = TEDPolicy.load(tmp_path / "ted")
    assert not list(tmp_path.rglob("*.pkl"))
    for text in ("I want to go to london", "fly me to new york tomorrow", "I feel sad today"):
        assert found_entities(loaded, text) == found_entities(trained, text)


def test_finetuning_should_keep_and_train_the_entity_head(trained, tmp_path):
    trained.save(tmp_path / "ted")
    again = TEDPolicy.load(tmp_path / "ted")
    before = {k: v.clone() for k, v in again.model_.entities.state_dict().items()}
    domain = small_domain()
    more = STORIES + ("- story: one more\n  steps:\n  - intent: greet\n"
                      "  - action: utter_greet\n  - user: \"[paris](city) please\"\n"
                      "  - action: utter_ok\n")
    again.finetune(trackers(domain, more), domain, epoch_fraction=0.2,
                   text_features=words([*PLAIN, "paris please"], tokens=True))
    after = again.model_.entities.state_dict()
    assert any(not np.array_equal(before[k].numpy(), after[k].numpy()) for k in before)
    assert [e["value"] for e in found_entities(again, "I want to go to paris")] == ["paris"]


def test_a_ted_with_a_max_history_should_tag_the_deciding_turn_too():
    # (six stories: on some seeds the tags settle only after 300 epochs — seed 1 with
    # 32-row attention blocks tagged no city at all by then, the training texts' included)
    ted = train(max_history=3, epochs=2 * EPOCHS)
    assert [e["value"] for e in found_entities(ted, "I want to go to london")] == ["london"]
    assert found_entities(ted, "I feel great today") == []


# --- the numpy head (prediction) against the torch head it was trained as ------------------
def head_against_torch(ted: TEDPolicy, tracker: DialogueStateTracker, domain: Domain,
                       featurize) -> float:
    """The latest user text's tags by TED's numpy predictor (numpy dialogue output, numpy
    head) and by the torch network (torch's output, torch's head): the same tags, and the
    largest difference of their confidences (returned; also of the dialogue outputs)."""
    import torch

    from parley.dialogue.neural.entities import predict_entity_tags
    from parley.dialogue.neural.training import Dialogues
    from parley.dialogue.policies.base import prediction_states

    states = prediction_states(tracker, domain, ted.max_history,
                               use_text_for_last_user_input=True, ignore_rule_only_turns=True)
    texts = ted._texts_for([states], featurize)
    text = tracker.latest_message.text
    tokens = featurize([text], ted.featurizers, tokens=True).tokens[text].features
    _, _, outputs = ted._scores([states], texts)
    tags, confidences = ted._predictor().entities(outputs[0], tokens)
    model = ted.model_.eval()
    dialogues = Dialogues.build(ted.featurizer_.encode(states, texts),
                                [list(range(len(states)))], ted.architecture_.causal)
    with torch.inference_mode():
        reference = model.dialogue_outputs(dialogues.batch(np.arange(1))).numpy()
    torch_tags, torch_confidences = predict_entity_tags(model.entities, reference[0], tokens)
    assert tags == torch_tags
    return max(float(np.abs(outputs - reference).max()),
               float(np.abs(np.subtract(confidences, torch_confidences)).max()))


TEXTS = ["I want to go to paris", "I want to go to london", "fly me to new york tomorrow",
         "take me to rome please", "I feel great today", "new york", "sad"]


def test_the_numpy_head_should_tag_as_the_torch_head(trained):
    domain = small_domain()
    largest = max(head_against_torch(trained, said(domain, t), domain, words) for t in TEXTS)
    assert largest < 1e-5


@pytest.mark.parametrize("params", [
    {"max_history": 3},
    {"number_of_transformer_layers": {"text": 0}, "BILOU_flag": False},
    {"hidden_layers_sizes": {"text": [24, 12]}, "unidirectional_encoder": True},
    {"transformer_size": {"text": 16}, "number_of_transformer_layers": {"text": 2},
     "use_key_relative_attention": True, "use_value_relative_attention": True},
])
def test_the_numpy_head_should_follow_every_shape(params):
    ted = train(epochs=20, **params)
    assert ted.architecture_.entities is not None
    domain = small_domain()
    assert max(head_against_torch(ted, said(domain, t), domain, words) for t in TEXTS) < 1e-5


def test_a_loaded_model_should_tag_without_building_the_torch_network(trained, tmp_path):
    trained.save(tmp_path / "ted")
    loaded = TEDPolicy.load(tmp_path / "ted")
    assert [e["value"] for e in found_entities(loaded, "I want to go to london")] == ["london"]
    assert "model_" not in loaded.__dict__  # torch builds it only to train further
