"""DIETClassifier and its parts: CRF, batching, losses, training options, finetuning."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="DIETClassifier needs PyTorch (pip install 'parley[torch]')")

from parley.data.formats.nlu_yaml import read_nlu_text  # noqa: E402
from parley.errors import ConfigError, DataError  # noqa: E402
from parley.nlu.entity_tags import bilou_moves  # noqa: E402
from parley.nlu.neural.crf import CRF  # noqa: E402
from parley.nlu.neural.diet import DIETClassifier  # noqa: E402
from parley.nlu.neural.inputs import FeatureTable, SparseRows  # noqa: E402
from parley.nlu.neural.training import MIN_SHARD, SHARDS, batch_size_at, epoch_order  # noqa: E402
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


def test_the_model_does_not_depend_on_the_number_of_threads(monkeypatch):
    """A batch runs as two shards, each drawing from its own generator: on two threads at
    once or one after the other, the weights come out the same."""
    weights = []
    for threads in ("1", "2"):
        monkeypatch.setenv("PARLEY_TORCH_THREADS", threads)
        diet, _ = trained(epochs=4, use_masked_language_model=True)
        weights.append(diet.model_.state_dict())
    assert len(read_nlu_text(TRAVEL).examples) >= SHARDS * MIN_SHARD  # it did run in shards
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


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
def test_sparse_features_reach_the_model_as_sparse_rows():
    upstream = pipeline()
    data = read_nlu_text(TRAVEL)
    run(upstream, data)
    table = FeatureTable(data.examples)
    batch = table.batch(torch, np.array([0, 10]))
    assert all(isinstance(block, SparseRows) for block in batch.sequence + batch.sentence)
    lengths = [len(data.examples[i].data["tokens"]) for i in (0, 10)]
    assert batch.lengths.tolist() == lengths
    # per message its tokens, then its sentence; both share one attention block of 64 rows
    assert [(c.start, c.count, c.width) for c in batch.chunks] == [(0, 1, 64)]
    assert batch.rows == 64
    assert batch.token_rows.tolist() == [0, 1, 2, 3, 4, 6]
    assert batch.sentence_rows.tolist() == [5, 7]
    blocked = batch.chunks[0].blocked[0, 0]
    assert not blocked[:6, :6].any() and blocked[:6, 6:].all()  # a message sees only itself
    assert not blocked[6:8, 6:8].any() and blocked[6:8, :6].all()


def test_messages_are_packed_whole_into_attention_blocks():
    from parley.nlu.neural.inputs import BLOCK, pack_blocks

    lengths = np.array([3, 40, 5, 63, 20, 70, 1, 22, 9, 100, 30])
    first, runs = pack_blocks(lengths)
    covered = np.zeros(runs[-1][0] + runs[-1][1] * runs[-1][2], dtype=int)
    for start, count, width in runs:
        assert width == BLOCK or width % 32 == 0
        for n in np.flatnonzero((first >= start) & (first < start + count * width)):
            block = (first[n] - start) // width  # a message lies inside one block
            assert (first[n] + lengths[n] - start) // width == block
            assert width >= lengths[n] + 1 and (width == BLOCK or width < lengths[n] + 33)
            covered[first[n]:first[n] + lengths[n] + 1] += 1
    assert covered.max() == 1 and covered.sum() == (lengths + 1).sum()  # no overlaps
    assert [w for _, _, w in runs] == [64, 96, 128]  # 70 and 100 tokens get wider blocks
    assert runs[0][1] == 4  # 182 rows of short messages in four 64-row blocks
    # Best fit: 40 + 24 and 30 + 20 + 14 rows fill two blocks exactly (topping up the
    # longest with the shortest would take three).
    first, runs = pack_blocks(np.array([39, 29, 23, 19, 13]))
    assert runs == [(0, 2, 64)]
    assert sorted(first.tolist()) == [0, 0 + 40, 64, 64 + 30, 64 + 50]


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
    from parley.nlu.neural.training import sentence_rows_padded

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


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dropout_drops_the_rate_and_keeps_the_mean(dtype):
    from parley.nlu.neural.layers import dropout

    torch.manual_seed(0)
    x = torch.ones(400, 1000, dtype=dtype)
    y = dropout(x, 0.2, training=True)
    assert y.dtype == dtype
    assert abs((y == 0).float().mean().item() - 0.2) < 0.005
    assert abs(y.float().mean().item() - 1.0) < 0.01
    assert dropout(x, 0.2, training=False) is x


@pytest.mark.parametrize(("shuffle", "column_major"), [(True, False), (False, False), (True, True)])
def test_grouped_layer_is_a_sparse_dense_layer_with_the_right_gradients(shuffle, column_major):
    from parley.nlu.neural.grouped import GroupedLinear, _GroupedProduct

    torch.manual_seed(0)
    layer = GroupedLinear(10, 6, density=0.34, shuffle=shuffle, column_major=column_major).double()
    assert layer.groups == 3
    # The equivalent dense kernel: each output connects to about a third of the inputs.
    kernel = torch.zeros(10, 6, dtype=torch.float64)
    for slices, o0, o1, weight in layer.groups_of(layer.kernel.detach()):
        for a, b, r in slices:
            kernel[layer.order[a:b], o0:o1] = weight[r:r + b - a]
    connected = kernel != 0
    assert connected.sum() == layer.kernel.numel()
    assert connected.any(0).all() and connected.any(1).all()
    assert (connected.sum(0) <= 4).all()
    x = torch.randn(5, 10, dtype=torch.float64, requires_grad=True)
    if not shuffle:  # as the layer after a column-major one sees its input
        x = torch.randn(10, 5, dtype=torch.float64).t().requires_grad_()
    assert torch.allclose(layer(x), x @ kernel + layer.bias)
    assert layer(x).t().is_contiguous() == column_major
    product = _GroupedProduct.apply
    assert torch.autograd.gradcheck(lambda x, b, k: product(x, layer, b, k, False),
                                    (x, layer.bias, layer.kernel))
    expected = (x @ kernel + layer.bias).float().detach()
    layer.float().train()  # training multiplies in bfloat16 where the CPU has it: close, not equal
    assert torch.allclose(layer(x.float().detach()), expected, atol=0.05)



def test_batch_size_grows_linearly_between_two_sizes():
    assert [batch_size_at(e, [64, 256], 5) for e in range(5)] == [64, 112, 160, 208, 256]
    assert batch_size_at(3, 32, 10) == 32
    assert batch_size_at(0, [64, 256], 1) == 64


def test_balanced_order_spreads_each_label_over_the_epoch():
    labels = np.array([0] * 30 + [1] * 10)
    order = epoch_order(np.random.default_rng(0), labels, 40, "balanced")
    assert sorted(order.tolist()) == list(range(40))
    first_half = labels[order[:20]]
    assert 3 <= (first_half == 1).sum() <= 7


def test_constrained_crf_matches_brute_force_over_whole_bilou_spans():
    names = ["O", "B-a", "I-a", "L-a", "U-a", "U-b"]
    allowed, may_start, may_end = bilou_moves(names)
    torch.manual_seed(1)
    crf = CRF(len(names))
    crf.constrain(torch.tensor(allowed), torch.tensor(may_start), torch.tensor(may_end))
    with torch.no_grad():
        crf.transitions.normal_()
        crf.transitions[0, 2] = 5.0  # O → I-a: the best move, were it allowed
    emissions = torch.randn(2, 4, len(names)) * 2
    emissions[:, :, 2] += 3.0  # and I-a the best tag everywhere
    mask = torch.tensor([[True] * 4, [True, True, True, False]])
    tags, confidence = crf.decode(emissions, mask)

    def whole_spans(path: tuple[int, ...]) -> bool:
        return (may_start[path[0]] and may_end[path[-1]]
                and all(allowed[i][j] for i, j in itertools.pairwise(path)))

    for b, length in enumerate((4, 3)):
        scores = {}
        for path in filter(whole_spans, itertools.product(range(len(names)), repeat=length)):
            score = sum(emissions[b, t, k] for t, k in enumerate(path))
            score += sum(crf.transitions[i, j] for i, j in itertools.pairwise(path))
            scores[path] = float(score.detach())
        best = max(scores, key=scores.get)
        assert tuple(tags[b, :length].tolist()) == best
        log_z = math.log(sum(math.exp(s) for s in scores.values()))
        nll = crf.negative_log_likelihood(emissions[b:b + 1], torch.tensor([best + (0,) * (4 - length)]),
                                          mask[b:b + 1])
        assert math.isclose(float(nll.detach()), log_z - scores[best], rel_tol=1e-4)
        for t in (0, length - 1):  # start and end constraints reach the marginals
            share = sum(math.exp(s) for p, s in scores.items() if p[t] == best[t]) / math.exp(log_z)
            assert math.isclose(float(confidence[b, t]), share, rel_tol=1e-4)



@pytest.mark.parametrize(("scale", "constrained"), [(3.0, False), (3.0, True), (200.0, True)])
def test_crf_log_partition_and_gradients_match_the_log_space_recursion(scale, constrained):
    """The scaled forward-backward (and, when scores are far enough apart to underflow it,
    its log-space fallback) gives autograd's log Z and gradients through the log-space
    recursion."""
    from parley.nlu.neural.crf import log_partition_in_log_space

    names = ["O"] + [f"{p}-{e}" for e in "abcde" for p in "BILU"]
    torch.manual_seed(3)
    crf = CRF(len(names))
    if constrained:
        crf.constrain(*(torch.tensor(m) for m in bilou_moves(names)))
    with torch.no_grad():
        crf.transitions.normal_()
    emissions = (torch.randn(5, 7, len(names)) * scale).requires_grad_()
    mask = torch.arange(7)[None] < torch.tensor([7, 1, 3, 6, 7])[:, None]
    upstream = torch.randn(5)
    results = []
    for log_partition in (crf._log_partition, lambda e, m: log_partition_in_log_space(
            e, crf.transitions, m, crf.allowed, crf.start_penalty, crf.end_penalty)):
        emissions.grad = crf.transitions.grad = None
        log_z = log_partition(emissions, mask)
        (log_z * upstream).sum().backward()
        results.append((log_z.detach(), emissions.grad.clone(), crf.transitions.grad.clone()))
    for ours, reference in zip(*results, strict=True):
        assert torch.allclose(ours, reference, rtol=1e-4, atol=1e-4)
    assert results[0][1][~mask].abs().max() == 0  # padding gets no gradient

def _exact_log_partition(crf: CRF, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log Z in float64 with blocked moves at -inf: the reference for extreme scores."""
    scores = crf.transitions.detach().double().masked_fill(~crf.allowed, float("-inf"))
    start = crf.start_penalty.double().masked_fill(crf.start_penalty < 0, float("-inf"))
    end = crf.end_penalty.double().masked_fill(crf.end_penalty < 0, float("-inf"))
    out = []
    for e, m in zip(emissions.detach().double(), mask, strict=True):
        alpha = e[0] + start
        for t in range(1, int(m.sum())):
            alpha = torch.logsumexp(alpha[:, None] + scores, dim=0) + e[t]
        out.append(torch.logsumexp(alpha + end, dim=0))
    return torch.stack(out)


def test_crf_log_partition_stays_exact_when_scores_are_far_apart():
    """Two cases a float32 forward pass in probability space gets wrong: a blocked move
    towards a tag 200 ahead (it must stay blocked), and a tag 110 behind at the start that
    wins later (its share underflows, then matters)."""
    names = ["O", "B-a", "I-a", "L-a", "U-a"]
    blocked = CRF(len(names))
    blocked.constrain(*(torch.tensor(m) for m in bilou_moves(names)))
    with torch.no_grad():
        blocked.transitions.zero_()
    far = torch.full((1, 2, len(names)), -200.0)
    far[0, :, 0] = 0.0
    far[0, 1, 3] = 200.0  # L-a, but O → L-a is not allowed
    recovering = CRF(2)
    recovering.constrain(torch.eye(2, dtype=torch.bool), torch.tensor([True, True]),
                         torch.tensor([True, True]))
    with torch.no_grad():
        recovering.transitions.zero_()
    late = torch.zeros(1, 4, 2)
    late[0, 0, 1] = -110.0
    late[0, 1:, 0] = -60.0
    for crf, emissions in ((blocked, far), (recovering, late)):
        mask = torch.ones(emissions.shape[:2], dtype=torch.bool)
        emissions = emissions.clone().requires_grad_()
        log_z = crf._log_partition(emissions, mask)
        exact = float(_exact_log_partition(crf, emissions, mask))
        assert float(log_z.detach()) == pytest.approx(exact, abs=1e-3)
        log_z.sum().backward()
        assert torch.allclose(emissions.grad.sum(dim=2), torch.ones(1, emissions.shape[1]))


def test_crf_backward_falls_back_when_the_marginals_do_not_sum_to_one(monkeypatch):
    import parley.nlu.neural.crf as crf_module

    torch.manual_seed(5)
    crf = CRF(4)
    with torch.no_grad():
        crf.transitions.normal_()
    emissions = torch.randn(3, 5, 4).requires_grad_()
    mask = torch.arange(5)[None] < torch.tensor([5, 2, 4])[:, None]
    gradients = []
    for tolerance in (1e-3, -1.0):  # -1: every check fails, the log-space gradients answer
        monkeypatch.setattr(crf_module, "_MARGINAL_TOLERANCE", tolerance)
        emissions.grad = crf.transitions.grad = None
        crf._log_partition(emissions, mask).sum().backward()
        gradients.append((emissions.grad.clone(), crf.transitions.grad.clone()))
    for scaled, log_space in zip(*gradients, strict=True):
        assert torch.allclose(scaled, log_space, atol=1e-5)


def test_crf_matches_brute_force():
    torch.manual_seed(0)
    crf = CRF(3)
    with torch.no_grad():
        crf.transitions.normal_()
    emissions = torch.randn(2, 4, 3)
    mask = torch.tensor([[True] * 4, [True, True, True, False]])
    tags, confidence = crf.decode(emissions, mask)
    for b, length in enumerate((4, 3)):
        scores = {}
        for path in itertools.product(range(3), repeat=length):
            score = sum(emissions[b, t, k] for t, k in enumerate(path))
            score += sum(crf.transitions[i, j] for i, j in itertools.pairwise(path))
            scores[path] = float(score.detach())
        best = max(scores, key=scores.get)
        assert tuple(tags[b, :length].tolist()) == best
        log_z = math.log(sum(math.exp(s) for s in scores.values()))
        nll = crf.negative_log_likelihood(emissions[b:b + 1, :length],
                                          torch.tensor([best]), mask[b:b + 1, :length])
        assert math.isclose(float(nll.detach()), log_z - scores[best], rel_tol=1e-4)
        first = sum(math.exp(s) for p, s in scores.items() if p[0] == best[0]) / math.exp(log_z)
        assert math.isclose(float(confidence[b, 0]), first, rel_tol=1e-4)
