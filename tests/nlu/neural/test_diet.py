"""DIETClassifier: its model on packed batches, losses, training options, finetuning.

The generic parts it is built from (CRF, batching, layers, the loop) are tested in tests/ml/."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="DIETClassifier needs PyTorch (pip install 'parley[torch]')")

from parley.data.formats.nlu_yaml import read_nlu_text  # noqa: E402
from parley.errors import ConfigError, DataError  # noqa: E402
from parley.ml.training import MIN_SHARD, SHARDS  # noqa: E402
from parley.nlu.neural.diet import DIETClassifier  # noqa: E402
from parley.registry import get_class as get_component_class  # noqa: E402
from parley.progress import set_quiet  # noqa: E402
from tests.nlu._helpers import fresh, run  # noqa: E402

TRAVEL = """
version: "3.1"
nlu:
- intent: book
  examples: |
    - fly from [berlin]{"entity": "city", "role": "from"} to [rome]{"entity": "city", "role": "to"}
    - a flight from [paris]{"entity": "city", "role": "from"} to [oslo]{"entity": "city", "role": "to"}
    - from [rome]{"entity": "city", "role": "from"} to [berlin]{"entity": "city", "role": "to"} please
    - get me from [oslo]{"entity": "city", "role": "from"} to [paris]{"entity": "city", "role": "to"}
    - book a trip from [berlin]{"entity": "city", "role": "from"} to [oslo]{"entity": "city", "role": "to"}
- intent: order
  examples: |
    - [two]{"entity": "count", "group": "1"} [pizzas]{"entity": "food", "group": "1"}
    - i want [one]{"entity": "count", "group": "1"} [salad]{"entity": "food", "group": "1"}
    - [three]{"entity": "count", "group": "1"} [pizzas]{"entity": "food", "group": "1"} please
    - order [one]{"entity": "count", "group": "1"} [pizza]{"entity": "food", "group": "1"}
    - get [two]{"entity": "count", "group": "1"} [salads]{"entity": "food", "group": "1"}
- intent: greet
  examples: |
    - hello
    - hi there
    - good morning
    - hey you
    - hello friend
"""


@pytest.fixture(autouse=True)
def _quiet():
    set_quiet(True)
    yield
    set_quiet(False)


def pipeline() -> list:
    return [get_component_class("WhitespaceTokenizer")(),
            get_component_class("CountVectorsFeaturizer")(),
            get_component_class("CountVectorsFeaturizer")(analyzer="char_wb", min_ngram=1, max_ngram=3)]


def trained(**params) -> tuple[DIETClassifier, list]:
    upstream = pipeline()
    data = read_nlu_text(TRAVEL)
    run(upstream, data)
    diet = DIETClassifier(**{"epochs": 150, "random_seed": 1, **params})
    diet.fit(data)
    return diet, upstream


def parse(diet: DIETClassifier, upstream: list, texts: list[str]) -> list:
    messages = fresh(texts)
    for component in upstream:
        component.process(messages)
    diet.process(messages)
    return messages


def entities(message) -> set[tuple]:
    return {(e["value"], e["entity"], e.get("role"), e.get("group")) for e in message.data["entities"]}


# --- the whole component ------------------------------------------------------------------
def test_should_learn_intents_and_entities_with_roles_and_groups():
    diet, upstream = trained()
    book, order, greet = parse(diet, upstream, ["fly from paris to rome", "two salads please",
                                                "hello there"])
    assert [m.data["intent"]["name"] for m in (book, order, greet)] == ["book", "order", "greet"]
    assert entities(book) == {("paris", "city", "from", None), ("rome", "city", "to", None)}
    assert entities(order) == {("two", "count", None, "1"), ("salads", "food", None, "1")}
    assert entities(greet) == set()
    found = book.data["entities"][0]
    assert found["extractor"] == "DIETClassifier"
    assert 0 < found["confidence_entity"] <= 1 and 0 < found["confidence_role"] <= 1
    ranking = book.data["intent_ranking"]
    assert math.isclose(sum(r["confidence"] for r in ranking), 1.0, rel_tol=1e-5)


def test_training_should_be_reproducible_for_a_seed_and_differ_across_seeds():
    first, up1 = trained(epochs=5)
    second, up2 = trained(epochs=5)
    other, up3 = trained(epochs=5, random_seed=2)
    text = ["fly from oslo to rome"]
    a = parse(first, up1, text)[0].data["intent_ranking"]
    assert a == parse(second, up2, text)[0].data["intent_ranking"]
    assert a != parse(other, up3, text)[0].data["intent_ranking"]


def test_the_garbage_collector_pauses_while_the_network_trains_only(monkeypatch):
    import gc

    from parley.nlu.neural import training

    seen = []
    original = training.DIETTrainer.train

    def train(self, epochs=None):
        seen.append(gc.isenabled())
        return original(self, epochs)

    monkeypatch.setattr(training.DIETTrainer, "train", train)
    assert gc.isenabled()
    trained(epochs=1)
    assert seen == [False] and gc.isenabled()
    gc.disable()  # off before: left off
    try:
        trained(epochs=1)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_the_model_does_not_depend_on_the_number_of_threads(monkeypatch):
    """A batch runs as two shards, each drawing from its own generator: on two threads at
    once or one after the other, the weights come out the same."""
    from parley.ml import training

    monkeypatch.setattr(training, "MIN_SHARD_ROWS", 1)  # 15 short messages: shards anyway
    weights = []
    for threads in ("1", "2"):
        monkeypatch.setenv("PARLEY_TORCH_THREADS", threads)
        diet, _ = trained(epochs=4, use_masked_language_model=True)
        weights.append(diet.model_.state_dict())
    assert len(read_nlu_text(TRAVEL).examples) >= SHARDS * MIN_SHARD  # it did run in shards
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="lane processes: Linux only")
def test_the_model_is_the_same_with_its_second_lane_in_a_process(monkeypatch):
    """Where a run trains one model at a time, a step's second lane runs in a forked
    process (parley/ml/lane_process.py): the weights come out as on two threads."""
    from parley.ml.cores import lanes_in_processes
    from tests.ml.lane_spy import forks_counted

    forked = forks_counted(monkeypatch)
    on_threads, _ = trained(epochs=4, use_masked_language_model=True)
    assert forked == []
    with lanes_in_processes():
        in_process, _ = trained(epochs=4, use_masked_language_model=True)
    assert len(forked) == 1
    a, b = on_threads.model_.state_dict(), in_process.model_.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="lane processes: Linux only")
def test_finetuning_is_the_same_with_its_second_lane_in_a_process(monkeypatch):
    """A model being finetuned starts in evaluation mode (as loaded, or as its first
    training left it): the lane process, forked before the first epoch, must drop out as
    the training's own threads do."""
    from parley.ml.cores import lanes_in_processes
    from tests.ml.lane_spy import forks_counted

    forked = forks_counted(monkeypatch)
    finetuned = []
    for processes in (False, True):
        diet, upstream = trained(epochs=4)
        more = read_nlu_text(TRAVEL)
        for component in upstream:
            component.process(more.examples)
        with lanes_in_processes(processes):
            diet.finetune(more, 1.0)
        finetuned.append(diet.model_.state_dict())
    assert len(forked) == 1
    a, b = finetuned
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("params", [
    {"loss_type": "margin"},
    {"similarity_type": "cosine", "constrain_similarities": True},
    {"use_masked_language_model": True},
    {"use_key_relative_attention": True, "use_value_relative_attention": True,
     "max_relative_position": 2, "unidirectional_encoder": True},
    {"connection_density": 1.0, "number_of_transformer_layers": 1, "transformer_size": 32,
     "number_of_attention_heads": 2, "hidden_layers_sizes": {"text": [64], "label": [16]}},
    {"BILOU_flag": False, "batch_strategy": "sequence", "batch_size": 4},
    {"number_of_transformer_layers": 0, "scale_loss": True},
])
def test_every_training_option_should_train_and_predict(params):
    diet, upstream = trained(epochs=40, **params)
    message = parse(diet, upstream, ["hello friend"])[0]
    assert message.data["intent"]["name"] == "greet"


def test_switches_turn_off_intents_or_entities():
    only_entities, up = trained(intent_classification=False, epochs=30)
    message = parse(only_entities, up, ["fly from paris to rome"])[0]
    assert "intent" not in message.data and message.data["entities"]
    only_intents, up = trained(entity_recognition=False, epochs=30)
    message = parse(only_intents, up, ["fly from paris to rome"])[0]
    assert message.data["intent"]["name"] == "book" and not message.data.get("entities")


def test_ranking_length_and_renormalised_confidences():
    diet, upstream = trained(epochs=5, ranking_length=2, renormalize_confidences=True)
    ranking = parse(diet, upstream, ["hello"])[0].data["intent_ranking"]
    assert len(ranking) == 2
    assert math.isclose(sum(r["confidence"] for r in ranking), 1.0, rel_tol=1e-5)


def test_held_out_evaluation_and_checkpoint(capsys, monkeypatch):
    monkeypatch.delenv("PARLEY_QUIET", raising=False)
    set_quiet(False)
    diet, _ = trained(epochs=4, evaluate_on_number_of_examples=3,
                      evaluate_every_number_of_epochs=2, checkpoint_model=True)
    shown = capsys.readouterr().err
    assert "val_i_acc" in shown and "val_e_f1" in shown and "t_loss" in shown


def test_quiet_mode_prints_no_progress(capsys):
    trained(epochs=2)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("params, message", [
    ({"loss_type": "hinge"}, "loss_type"),
    ({"transformer_size": 30, "number_of_attention_heads": 4}, "multiple"),
    ({"epochs": 0}, "epochs"),
    ({"batch_size": [64, 128, 256]}, "batch_size"),
    ({"model_confidence": "linear_norm"}, "model_confidence"),
    ({"intent_classification": False, "entity_recognition": False}, "nothing to learn"),
    ({"connection_density": 0}, "connection_density"),
])
def test_bad_parameters_should_raise_config_errors(params, message):
    with pytest.raises(ConfigError, match=message):
        trained(**params)


def test_finetuning_continues_from_the_learned_weights_and_refuses_new_labels():
    diet, upstream = trained(epochs=40)
    before = parse(diet, upstream, ["fly from paris to rome"])[0].data["intent"]["confidence"]
    more = read_nlu_text(TRAVEL + """
- intent: book
  examples: |
    - travel from [oslo]{"entity": "city", "role": "from"} to [rome]{"entity": "city", "role": "to"}
""")
    for component in upstream:
        component.process(more.examples)
    diet.finetune(more, 0.25)
    after = parse(diet, upstream, ["fly from paris to rome"])[0]
    assert after.data["intent"]["name"] == "book"
    assert after.data["intent"]["confidence"] >= before * 0.9
    new_intent = read_nlu_text('version: "3.1"\nnlu:\n- intent: weather\n  examples: |\n    - rain\n')
    for component in upstream:
        component.process(new_intent.examples)
    with pytest.raises(DataError, match="weather"):
        diet.finetune(new_intent, 0.5)


def test_corrupt_weights_should_fail_clearly(tmp_path):
    from parley.errors import ModelArchiveError

    diet, _ = trained(epochs=2)
    diet.save(tmp_path)
    arrays = dict(np.load(tmp_path / "arrays.npz"))
    first = sorted(arrays)[0]
    arrays[first] = np.zeros((1, 1), dtype=np.float32)
    np.savez(tmp_path / "arrays.npz", **arrays)
    with pytest.raises(ModelArchiveError, match="DIETClassifier"):
        DIETClassifier.load(tmp_path)


ALARMS = """
version: "3.1"
nlu:
- intent: alarm
  examples: |
    - wake me at [six thirty](time)
    - an alarm for [seven am](time) please
    - set one at [eight fifteen](time)
- intent: greet
  examples: |
    - hello
    - hi there
"""


def test_entity_crfs_rule_out_broken_bilou_spans_after_training_and_loading(tmp_path):
    def fitted(**params) -> DIETClassifier:
        data = read_nlu_text(ALARMS)
        run(pipeline(), data)
        return DIETClassifier(epochs=2, **params).fit(data)

    diet = fitted()
    diet.save(tmp_path)
    for model in (diet, DIETClassifier.load(tmp_path)):
        names = model.tags_["entity"]
        crf = model.model_.crfs["entity"]
        move = {(a, b): bool(crf.allowed[i, j]) for i, a in enumerate(names) for j, b in enumerate(names)}
        assert move["O", "B-time"] and move["B-time", "L-time"] and move["L-time", "O"]
        assert not move["O", "L-time"] and not move["B-time", "O"] and not move["L-time", "L-time"]
        assert float(crf.start_penalty[names.index("L-time")]) < 0 == float(crf.start_penalty[0])
    assert all(bool(crf.allowed.all()) for crf in fitted(BILOU_flag=False).model_.crfs.values())


# --- the parts ----------------------------------------------------------------------------
def test_a_message_is_encoded_the_same_alone_or_packed_with_others():
    diet, _ = trained(epochs=1)
    table = diet._table(diet._examples(_featurized_travel()))
    model = diet.model_.eval()
    with torch.no_grad():
        batch = table.batch(torch, np.arange(len(table)), row_quantum=128)
        together = model.encode(*model.encode_inputs(batch))[batch.sentence_rows]
        for n in (0, 7, len(table) - 1):
            alone = table.batch(torch, np.array([n]))
            out = model.encode(*model.encode_inputs(alone))[alone.sentence_rows]
            assert torch.allclose(out[0], together[n], atol=1e-5)



def test_keeping_only_sentence_rows_gives_their_outputs_and_gradients():
    """Without entities the last transformer block works on the sentence rows only; their
    outputs, and the gradients reaching the weights through them, are the full network's."""
    from parley.ml.training import sentence_rows_padded

    diet, _ = trained(epochs=1)
    table = diet._table(diet._examples(_featurized_travel()))
    model = diet.model_.eval()  # no dropout: both ways are the same function
    batch = table.batch(torch, np.arange(len(table)))
    keep = sentence_rows_padded(batch.sentence_rows, 32)
    assert keep.shape[0] == 32 and keep[:batch.size].equal(batch.sentence_rows)
    grads = []
    for rows_out in (lambda r, g: model.encode(r, g)[batch.sentence_rows],
                     lambda r, g: model.encode(r, g, keep)[:batch.size]):
        model.zero_grad()
        out = rows_out(*model.encode_inputs(batch))
        (out * torch.linspace(-1, 1, out.shape[1])).sum().backward()
        grads.append((out.detach(), [p.grad.clone() for p in model.encoder.parameters()]))
    (full, full_grads), (kept, kept_grads) = grads
    assert torch.allclose(full, kept, atol=1e-5)
    for a, b in zip(full_grads, kept_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-4)
    model.train()

def test_transformer_output_is_gelu_activated_as_in_rasa():
    diet, _ = trained(epochs=1)
    table = diet._table(diet._examples(_featurized_travel()))
    batch = table.batch(torch, np.arange(len(table)))
    with torch.no_grad():
        out = diet.model_.encode(*diet.model_.encode_inputs(batch))
    assert out.min().item() >= -0.1701  # gelu's minimum; a raw transformer output goes lower
    assert (out < 0).any()


def test_entity_only_diet_on_data_without_entities_says_there_is_nothing_to_learn():
    data = read_nlu_text('version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - hello there\n'
                         '    - hi\n- intent: bye\n  examples: |\n    - bye now\n    - see you\n')
    run(pipeline(), data)
    with pytest.raises(DataError, match="nothing to learn .*no entities"):
        DIETClassifier(epochs=1, intent_classification=False).fit(data)


def _featurized_travel():
    data = read_nlu_text(TRAVEL)
    run(pipeline(), data)
    return data


def test_a_loss_that_diverges_should_stop_training_with_what_to_lower():
    """A huge but finite learning rate passes the value checks; the weights then go to NaN.
    Training stops there instead of shipping a model whose every confidence is NaN."""
    with pytest.raises(ConfigError, match="diverged .* Lower learning_rate"):
        trained(epochs=20, learning_rate=1e10)


def test_calibration_folds_should_learn_a_saved_temperature_that_changes_no_ranking(tmp_path):
    calibrated, upstream = trained(epochs=20, calibration_folds=2)
    plain, plain_upstream = trained(epochs=20, calibration_folds=0)
    assert plain.temperature_ == 1.0 and calibrated.temperature_ != 1.0
    texts = ["fly from oslo to rome", "hello you", "two pizzas"]
    with_t = parse(calibrated, upstream, texts)
    without = parse(plain, plain_upstream, texts)
    for a, b in zip(with_t, without, strict=True):  # the same network: folds train apart
        assert [r["name"] for r in a.data["intent_ranking"]] == \
            [r["name"] for r in b.data["intent_ranking"]]
        assert a.data["entities"] == b.data["entities"]
    calibrated.save(tmp_path)
    loaded = DIETClassifier.load(tmp_path)
    assert loaded.temperature_ == calibrated.temperature_
    assert loaded.top_map_ == calibrated.top_map_ != (1.0, 0.0)
    # The loaded model (numpy) gives the saved calibration's confidences, floats and all.
    assert [r["confidence"] for r in parse(loaded, upstream, texts)[0].data["intent_ranking"]] \
        == [r["confidence"] for r in with_t[0].data["intent_ranking"]]
    again, _ = trained(epochs=20, calibration_folds=2)
    assert again.temperature_ == calibrated.temperature_  # deterministic
    assert again.top_map_ == calibrated.top_map_


def test_calibration_rounds_should_train_one_network_per_round(monkeypatch):
    """One of the calibration's folds is held out by default (one more network, on the
    rest); ``calibration_rounds`` holds out more of them in turn."""
    trainings: list[str | None] = []
    original = DIETClassifier._train

    def counting(self, table, examples, epochs, description=None, *, seed):
        trainings.append(description)
        return original(self, table, examples, epochs, description, seed=seed)

    monkeypatch.setattr(DIETClassifier, "_train", counting)
    one, _ = trained(epochs=5, calibration_folds=3)
    assert len(trainings) == 2 and trainings[1] == "DIETClassifier calibration 1/1"
    trainings.clear()
    three, _ = trained(epochs=5, calibration_folds=3, calibration_rounds=3)
    assert len(trainings) == 4
    assert (one.temperature_, one.top_map_) != (three.temperature_, three.top_map_)
    trainings.clear()
    trained(epochs=5)
    assert len(trainings) == 1 + DIETClassifier().calibration_rounds * bool(
        DIETClassifier().calibration_folds)


def test_a_calibrated_diet_should_finetune_and_keep_its_temperature():
    diet, upstream = trained(epochs=20, calibration_folds=2)
    temperature = diet.temperature_
    more = read_nlu_text(TRAVEL)
    for component in upstream:
        component.process(more.examples)
    diet.finetune(more, 0.5)
    assert diet.temperature_ == temperature
    assert parse(diet, upstream, ["hello there"])[0].data["intent"]["name"] == "greet"
