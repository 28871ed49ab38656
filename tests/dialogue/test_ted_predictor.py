"""TED's and UnexpecTED's numpy predictor against the torch network they were trained as:
the same similarities (to 1e-5) and the same predictions, on real bots (the moodbot with
Rasa's default config, formbot, e2ebot's end-to-end config) and on every shape the
network's settings give; and a loaded model predicts without importing torch."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the reference is the torch network")

from parley.data.importer import TrainingDataImporter  # noqa: E402
from parley.dialogue.neural.training import Dialogues  # noqa: E402
from parley.dialogue.policies.ted import TEDPolicy  # noqa: E402
from parley.dialogue.policies.unexpected import UnexpecTEDIntentPolicy  # noqa: E402
from parley.evaluation.core import evaluate_core  # noqa: E402
from parley.model_training import train  # noqa: E402
from parley.progress import set_quiet  # noqa: E402
from parley.serving.agent import load  # noqa: E402
from tests.conftest import SHARED_DATA, needs_shared_data  # noqa: E402
from tests.dialogue.test_ted import PATHS, predict, trackers  # noqa: E402
from tests.dialogue.test_unexpected import STORIES as UNEXPECTED_STORIES  # noqa: E402
from tests.dialogue.test_unexpected import trackers as unexpected_trackers  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BOTS = SHARED_DATA / "bots"
TOLERANCE = 1e-5


@pytest.fixture(autouse=True)
def _quiet():
    set_quiet(True)
    yield
    set_quiet(False)


def torch_similarities(policy: TEDPolicy, inputs: dict[str, np.ndarray],
                       histories: list[range]) -> np.ndarray:
    """The dialogues' similarities to every label by the torch network, in evaluation mode
    (what TED's and UnexpecTED's predictions computed before the numpy predictor)."""
    return torch_forward(policy, inputs, histories)[0]


def torch_forward(policy: TEDPolicy, inputs: dict[str, np.ndarray],
                  histories: list[range]) -> tuple[np.ndarray, np.ndarray]:
    """The similarities and the dialogue transformer's outputs (what the heads read)."""
    model = policy.model_.eval()
    dialogues = Dialogues.build(inputs, [list(h) for h in histories], policy.architecture_.causal)
    with torch.inference_mode():
        labels = model.label_embeddings(policy._label_inputs())
        outputs = model.dialogue_outputs(dialogues.batch(np.arange(len(histories))))
        return (model.embed_dialogues(outputs) @ labels.t()).numpy(), outputs.numpy()


class Compared:
    """Wraps a policy's predictor: every prediction is also made by torch from the states'
    vectors, the largest difference kept, and torch's answer (``use_torch``) or numpy's
    (from the rows the predictor kept) returned."""

    def __init__(self, policy: TEDPolicy, use_torch: bool) -> None:
        self.policy, self.use_torch = policy, use_torch
        self.predictor = type(policy)._predictor(policy)  # the real one, whatever is patched
        self.calls, self.largest = 0, 0.0
        self.same_best = True
        self.most_variants = 0  # two: the message by its intent and by its text

    def rows(self, keys, encode):
        # every state's vectors, for torch; the rows as the policy gets them (some kept)
        self.inputs = encode(list(range(len(keys))))
        return self.predictor.rows(keys, encode)

    def predict_rows(self, rows, histories):
        mine = self.predictor.predict_rows(rows, histories)
        reference, outputs = torch_forward(self.policy, self.inputs, list(histories))
        self.calls += 1
        self.most_variants = max(self.most_variants, len(histories))
        self.largest = max(self.largest, float(np.abs(mine.similarities - reference).max()),
                           float(np.abs(mine.outputs - outputs).max()))
        self.same_best &= bool((mine.similarities.argmax(1) == reference.argmax(1)).all())
        if not self.use_torch:
            return mine
        confidences = torch.softmax(torch.from_numpy(reference), dim=-1).numpy()
        return type(mine)(reference, confidences, outputs)


def checks(report) -> list:
    return [c for r in report.results for c in r.checks]


def assert_same_checks(mine: list, reference: list) -> None:
    """The same predictions (action, policy, warning, by text), confidences to rounding."""
    assert len(mine) == len(reference)
    for a, b in zip(mine, reference, strict=True):
        confidence = getattr(a, "confidence", None)
        if confidence is not None:
            assert confidence == pytest.approx(b.confidence, abs=TOLERANCE)
            a = replace(a, confidence=b.confidence)
        assert a == b


def compare_on_bot(agent, stories, monkeypatch, parse: bool = False) -> list[Compared]:
    """The bot's test stories replayed twice — the TED policies' similarities by torch,
    then by numpy (each checked against torch) — with identical predictions."""
    neural = [p for p in agent.policies if isinstance(p, TEDPolicy)]
    assert neural, "the config has a TED policy"
    runs = []
    for use_torch in (True, False):
        wrapped = [Compared(p, use_torch) for p in neural]
        for policy, wrapper in zip(neural, wrapped, strict=True):
            monkeypatch.setattr(policy, "_predictor", lambda w=wrapper: w)
        report = evaluate_core(agent, stories, parse=parse)
        runs.append((checks(report), wrapped))
    (by_torch, _), (by_numpy, compared) = runs
    assert_same_checks(by_numpy, by_torch)
    assert len(by_numpy) > 10
    for wrapper in compared:
        assert wrapper.calls > 0
        assert wrapper.largest < TOLERANCE, (wrapper.policy.name, wrapper.largest)
        assert wrapper.same_best
    return compared


def bot_model(tmp_path: Path, name: str, config: Path, epochs: int = 20) -> tuple[Path, list]:
    """``name`` trained with ``config`` at a few epochs; its model and test stories."""
    root = tmp_path / name
    shutil.copytree(BOTS / name, root)
    text = re.sub(r"epochs: \d+", f"epochs: {epochs}", config.read_text(encoding="utf-8"))
    (root / "config.yml").write_text(text, encoding="utf-8")
    result = train(str(root / "domain.yml"), str(root / "config.yml"), str(root / "data"),
                   str(root / "models"))
    assert result.model is not None
    stories = TrainingDataImporter(root / "domain.yml", None, [root / "tests"]).test_stories
    return Path(result.model), stories


@needs_shared_data
def test_moodbot_with_rasas_default_config_predicts_as_torch(tmp_path, monkeypatch):
    model, stories = bot_model(tmp_path, "rasa-init-moodbot",
                               REPO / "benchmarks" / "configs" / "rasa-default.yml")
    agent = load(model)
    compared = compare_on_bot(agent, stories, monkeypatch)
    assert {w.policy.name for w in compared} == {"TEDPolicy", "UnexpecTEDIntentPolicy"}


@needs_shared_data
def test_formbot_predicts_as_torch(tmp_path, monkeypatch):
    root = BOTS / "rasa-example-formbot"
    model, stories = bot_model(tmp_path, root.name, root / "config-portable.yml")
    agent = load(model)
    assert load(model).policies[0].architecture_.causal  # max_history null: whole dialogues
    compare_on_bot(agent, stories, monkeypatch)


@needs_shared_data
def test_e2ebot_end_to_end_predicts_as_torch(tmp_path, monkeypatch):
    root = BOTS / "rasa-example-e2ebot"
    model, stories = bot_model(tmp_path, root.name, root / "config-portable.yml")
    agent = load(model)
    ted = agent.policies[0]
    assert ted.featurizer_.text_dim and ted.reads_user_text_
    compare_on_bot(agent, stories, monkeypatch)  # the stories' intents
    # the texts parsed and read: TED predicts from the user's words too
    compared = compare_on_bot(agent, stories, monkeypatch, parse=True)
    assert compared[0].most_variants == 2


# --- every shape the settings give, on the fixture domain ---------------------------------
SETTINGS = [
    {"max_history": None},
    {"max_history": 3},
    {"max_history": 3, "similarity_type": "cosine", "loss_type": "margin"},
    {"max_history": None, "number_of_transformer_layers": 0},
    {"max_history": 2, "number_of_transformer_layers": 2, "transformer_size": 32,
     "number_of_attention_heads": 2, "use_key_relative_attention": True,
     "use_value_relative_attention": True, "max_relative_position": 2},
    {"max_history": None, "use_key_relative_attention": True,
     "use_value_relative_attention": True},
    {"max_history": 3, "hidden_layers_sizes": {"intent": [16, 8], "action_name": [12],
                                               "label_action_name": [10, 6]},
     "connection_density": 1.0, "embedding_dimension": 8, "constrain_similarities": True},
]


def every_path_similarities(policy: TEDPolicy, domain) -> tuple[float, bool]:
    """The largest difference numpy − torch over the fixture's paths, and whether the best
    action agrees everywhere."""
    from parley.dialogue.policies.base import prediction_states
    from tests.dialogue.helpers import conversation

    largest, same = 0.0, True
    for turns, _ in PATHS:
        states = prediction_states(conversation(domain, *turns), domain, policy.max_history)
        inputs = policy.featurizer_.encode(states, policy.text_features_)
        mine = policy._predictor().predict(inputs, [range(len(states))]).similarities
        reference = torch_similarities(policy, inputs, [range(len(states))])
        largest = max(largest, float(np.abs(mine - reference).max()))
        same &= bool(mine.argmax() == reference.argmax())
    return largest, same


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_every_network_shape_predicts_as_torch(settings, tmp_path):
    domain, found = trackers()
    ted = TEDPolicy(epochs=60, random_seed=3, **settings).fit(found, domain)
    largest, same = every_path_similarities(ted, domain)
    assert largest < TOLERANCE and same
    ted.save(tmp_path / "ted")
    loaded = TEDPolicy.load(tmp_path / "ted")
    assert "model_" not in loaded.__dict__  # loading built no torch network
    assert [predict(loaded, domain, *t) for t, _ in PATHS] == \
        [predict(ted, domain, *t) for t, _ in PATHS]


def test_an_empty_conversation_and_dialogues_of_several_lengths_predict_as_torch():
    domain, found = trackers()
    ted = TEDPolicy(epochs=20, max_history=3, random_seed=5).fit(found, domain)
    states = [{}, {"prev_action": {"action_name": "action_listen"},
                   "user": {"intent": "greet"}}]
    inputs = ted.featurizer_.encode(states, ted.text_features_)
    histories = [range(0), range(0, 2), range(1, 2), range(0, 1)]
    mine = ted._predictor().predict(inputs, histories).similarities
    reference = torch_similarities(ted, inputs, histories)
    assert np.abs(mine - reference).max() < TOLERANCE


def test_finetuning_a_loaded_model_trains_torch_and_predicts_the_new_weights(tmp_path):
    domain, found = trackers()
    ted = TEDPolicy(epochs=20, max_history=3, random_seed=2).fit(found, domain)
    ted.save(tmp_path / "ted")
    loaded = TEDPolicy.load(tmp_path / "ted")
    before = loaded._predictor()
    loaded.finetune(found, domain, 1.0)
    assert "model_" in loaded.__dict__ and loaded._predictor() is not before
    assert every_path_similarities(loaded, domain)[0] < TOLERANCE


def test_unexpected_scores_as_torch_and_keeps_its_thresholds(tmp_path):
    domain, found = unexpected_trackers(UNEXPECTED_STORIES)
    policy = UnexpecTEDIntentPolicy(epochs=30, max_history=3, random_seed=1).fit(found, domain)
    policy.save(tmp_path / "unexpected")
    loaded = UnexpecTEDIntentPolicy.load(tmp_path / "unexpected")
    assert "model_" not in loaded.__dict__
    assert loaded.thresholds() == policy.thresholds()
    from parley.dialogue.featurization.intents import intent_prediction_states
    from tests.dialogue.helpers import conversation

    for turns, _ in PATHS:
        tracker = conversation(domain, *turns)
        states = intent_prediction_states(tracker, domain, 3, None)
        inputs = loaded.featurizer_.encode(states, loaded.text_features_)
        mine = loaded._intent_scores(states)
        reference = torch_similarities(policy, inputs, [range(len(states))])[0]
        assert np.abs(mine - reference).max() < TOLERANCE
        assert loaded.predict(tracker, domain).reason == policy.predict(tracker, domain).reason


def test_predictions_repeat_exactly():
    domain, found = trackers()
    ted = TEDPolicy(epochs=10, max_history=3, random_seed=4).fit(found, domain)
    first = [ted.predict(_conv(domain, t), domain).probabilities for t, _ in PATHS]
    again = [ted.predict(_conv(domain, t), domain).probabilities for t, _ in PATHS]
    assert first == again


def _conv(domain, turns):
    from tests.dialogue.helpers import conversation

    return conversation(domain, *turns)


@needs_shared_data
def test_loading_and_handling_messages_with_ted_does_not_import_torch(tmp_path):
    config = textwrap.dedent("""\
        recipe: default.v1
        language: en
        pipeline:
          - name: WhitespaceTokenizer
          - name: CountVectorsFeaturizer
          - name: DIETClassifier
            epochs: 2
        policies:
          - name: MemoizationPolicy
          - name: UnexpecTEDIntentPolicy
            max_history: 5
            epochs: 2
          - name: TEDPolicy
            max_history: 5
            epochs: 2
        """)
    root = tmp_path / "moodbot"
    shutil.copytree(BOTS / "rasa-init-moodbot", root)
    (root / "config.yml").write_text(config, encoding="utf-8")
    result = train(str(root / "domain.yml"), str(root / "config.yml"), str(root / "data"),
                   str(root / "models"))
    script = textwrap.dedent(f"""\
        import sys
        from parley.serving.agent import load
        agent = load({str(result.model)!r})
        names = [p.name for p in agent.policies]
        assert "TEDPolicy" in names and "UnexpecTEDIntentPolicy" in names, names
        from parley.data.tracker import DialogueStateTracker
        from parley.data.events import ActionExecuted, UserUttered
        tracker = DialogueStateTracker.from_domain("t", agent.domain)
        for text in ["hello", "I am sad", "yes", "bye"]:
            tracker.update(ActionExecuted(action_name="action_listen"))
            tracker.update(UserUttered(text=text, intent=agent.parse(text)["intent"]))
            prediction = agent.predict_next_action(tracker)
            assert max(prediction.probabilities) > 0, prediction
        print("torch" in sys.modules)
        """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_kept_state_rows_are_those_encoded_afresh_even_past_the_limit(monkeypatch):
    import parley.dialogue.neural.predictor as predictor_module

    monkeypatch.setattr(predictor_module, "KEPT_STATES", 3)
    domain, found = trackers()
    ted = TEDPolicy(epochs=5, max_history=3, random_seed=6).fit(found, domain)
    predictor = ted._predictor()
    states = [{}, {"prev_action": {"action_name": "action_listen"}, "user": {"intent": "greet"}},
              {"prev_action": {"action_name": "utter_greet"}, "user": {"intent": "greet"}},
              {"prev_action": {"action_name": "action_listen"}, "user": {"intent": "bye"}}]
    inputs = ted.featurizer_.encode(states, ted.text_features_)
    expected = predictor.encode_states(inputs)

    def encode(which):
        return ted.featurizer_.encode([states[i] for i in which], ted.text_features_)

    for order in ([0, 1], [1, 2, 3], [3, 0, 1, 2], [2, 2, 0], [0, 1, 2, 3]):
        keys = [repr(states[i]) for i in order]
        rows = predictor.rows(keys, lambda which, o=order: encode([o[i] for i in which]))
        assert np.allclose(rows, expected[order], rtol=0, atol=1e-6)
        assert len(predictor.kept) <= 3
