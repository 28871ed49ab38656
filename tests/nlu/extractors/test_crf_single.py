"""The CRF's one-message path (a parse) against the batch code it stands in for, bit for bit:
emissions, Viterbi tags (ties included), marginals and the fallbacks, then whole messages
through CRFEntityExtractor with roles, groups, patterns and other windows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy.sparse import csr_matrix

from parley.data.formats.nlu_yaml import read_nlu_text
from parley.ml import chain_kernel
from parley.nlu.extractors._crf import ChainWeights, predict_emissions
from parley.nlu.extractors._crf_single import AttributeIds, SequencePredictor
from parley.nlu.extractors.crf import CRFEntityExtractor
from parley.nlu.featurizers.regex import RegexFeaturizer
from parley.nlu.tokenizers.whitespace import WhitespaceTokenizer
from tests.nlu._helpers import fresh, run
from tests.nlu.extractors.test_crf import CITIES, travel_nlu


@pytest.fixture(autouse=True, params=["c-kernel", "numpy"])
def kernel(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Every test once with the C kernel (when built) and once with the numpy code: each
    path must agree with itself between a message alone and a batch."""
    on = request.param == "c-kernel"
    if on and not chain_kernel.AVAILABLE:
        pytest.skip("the C kernel (parley/ml/_chain.c) is not built here")
    monkeypatch.setattr(chain_kernel, "AVAILABLE", on)
    return on


def _weights(rng: np.random.Generator, n_labels: int, n_attributes: int, zeros: float,
             whole: bool = False) -> ChainWeights:
    """Random weights; ``zeros`` of the transitions exactly 0 (as L1 leaves them); whole
    numbers when ``whole`` (so that scores tie)."""
    draw = (lambda *shape: rng.integers(-3, 4, shape).astype(np.float64)) if whole else \
        (lambda *shape: rng.normal(size=shape) * 2)
    transitions = draw(n_labels, n_labels) * (rng.random((n_labels, n_labels)) > zeros)
    pairs = rng.random((n_attributes, n_labels)) < 0.3
    attribute, label = np.nonzero(pairs)
    return ChainWeights(attribute, label, draw(len(attribute)), transitions)


def _emissions(rng: np.random.Generator, length: int, n_labels: int, whole: bool) -> np.ndarray:
    if whole:
        return rng.integers(-2, 3, (length, n_labels)).astype(np.float32)
    return (rng.normal(size=(length, n_labels)) * 3).astype(np.float32)


def _same(got: tuple[np.ndarray, np.ndarray], want: tuple[np.ndarray, np.ndarray]) -> None:
    assert got[0].tolist() == want[0].tolist()
    assert got[1].dtype == want[1].dtype and np.array_equal(got[1], want[1])


@pytest.mark.parametrize("whole", [False, True], ids=["real", "ties"])
@pytest.mark.parametrize("zeros", [0.0, 0.9, 0.97])
def test_one_sequence_should_be_predicted_as_the_batch_code_predicts_it(zeros: float,
                                                                        whole: bool) -> None:
    rng = np.random.default_rng(7)
    for n_labels in (1, 2, 5, 13, 41):
        weights = _weights(rng, n_labels, 20, zeros, whole)
        predictor = SequencePredictor(weights, 20)
        for length in (1, 2, 3, 8, 15):
            emissions = _emissions(rng, length, n_labels, whole)
            _same(predictor.predict(emissions),
                  predict_emissions(weights, emissions, np.array([length])))


def test_viterbi_ties_should_go_as_in_the_batch_code() -> None:
    # All scores equal: every predecessor ties; the batch code takes the best before the
    # move (all equal), then the lowest index.
    weights = ChainWeights(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0),
                           np.zeros((6, 6)))
    emissions = np.zeros((5, 6), dtype=np.float32)
    tags, _ = SequencePredictor(weights, 1).predict(emissions)
    assert tags.tolist() == predict_emissions(weights, emissions, np.array([5]))[0].tolist()


def test_an_underflowing_step_should_hand_over_to_the_batch_codes_fallbacks(kernel: bool
                                                                           ) -> None:
    # Moves so costly that float32 (the numpy code) or float64 (the kernel) loses every
    # path: the batch code redoes it in float64 (and in log space); the one-sequence path
    # must come to the same numbers.
    rng = np.random.default_rng(3)
    transitions = rng.normal(size=(4, 4)) * 60 - (1000 if kernel else 120)
    transitions[0, 0] = 0.0
    weights = ChainWeights(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0),
                           transitions)
    emissions = (rng.normal(size=(6, 4)) * 40).astype(np.float32)
    if kernel:  # the one affordable path, the label the emissions rule out by far
        emissions[:, 0] -= 800
    predictor = SequencePredictor(weights, 1)
    assert predictor._marginals(emissions) is None  # noqa: SLF001 - the case under test
    _same(predictor.predict(emissions), predict_emissions(weights, emissions, np.array([6])))


def test_emissions_should_sum_as_the_sparse_product_does() -> None:
    rng = np.random.default_rng(11)
    weights = _weights(rng, 30, 200, 0.5)
    predictor = SequencePredictor(weights, 200)
    for _ in range(20):
        rows = [sorted(rng.choice(200, rng.integers(0, 25), replace=False).tolist())
                for _ in range(rng.integers(1, 10))]
        indptr = np.cumsum([0, *map(len, rows)])
        x = csr_matrix((np.ones(indptr[-1], np.float32), np.concatenate(rows).astype(np.int64)
                        if indptr[-1] else np.zeros(0, np.int64), indptr), shape=(len(rows), 200))
        want = weights.emissions(x)
        got = predictor.emissions(rows)
        assert got.dtype == want.dtype and np.array_equal(got, want)
    nothing = predictor.emissions([[], []])  # tokens with no known attribute
    assert nothing.dtype == np.float32 and nothing.shape == (2, 30) and not nothing.any()


# --- whole messages ---------------------------------------------------------------------
PATTERNS_NLU = ('version: "3.1"\nnlu:\n- intent: a\n  examples: |\n'
                + "".join(f"    - my code is [{z}](zip) ok\n" for z in ["12345", "54321", "11111"])
                + "".join(f"    - send it to [{c}](city) by [{z}](zip)\n"
                          for c, z in zip(CITIES, ["10115", "75001", "00118", "0150"], strict=False))
                + "    - my code is 42 ok\n    - my code is 7 ok\n"
                + "- regex: zip\n  examples: |\n    - \\b\\d{5}\\b\n"
                + "- regex: short\n  examples: |\n    - \\b\\d{1,2}\\b\n"
                + "- lookup: city\n  examples: |\n" + "".join(f"    - {c}\n" for c in CITIES))
TEXTS = ["fly from Prague to Lisbon", "a medium soup and a small burger", "hi", "",
         "send it to Berlin by 12345 or 98765", "my code is 7 and 42 ok", "fly fly fly",
         "a large pizza from Rome, Oslo; Madrid", "SEND IT TO PARIS", "!!", "to 11111 fly"]


def _trained(nlu: str, **params: Any) -> tuple[CRFEntityExtractor, list[Any]]:
    upstream = [WhitespaceTokenizer(), RegexFeaturizer()]
    data = read_nlu_text(nlu)
    run(upstream, data)
    return CRFEntityExtractor(**params).fit(data), upstream


@pytest.mark.parametrize("nlu, params", [
    (travel_nlu(), {}),
    (travel_nlu(), {"BILOU_flag": False}),
    (PATTERNS_NLU, {}),
    (PATTERNS_NLU, {"features": [["low", "pattern"], ["bias", "pattern", "suffix3"],
                                 ["upper", "pattern"], ["title"], ["digit"]]}),
    (PATTERNS_NLU, {"features": [[], ["prefix2", "suffix1"], []]}),
], ids=["roles-groups", "no-bilou", "patterns", "wide-window", "narrow-window"])
def test_a_message_alone_should_be_tagged_as_in_a_batch_of_one(nlu: str,
                                                               params: dict[str, Any]) -> None:
    extractor, upstream = _trained(nlu, **params)
    for text in TEXTS:
        messages = fresh([text])
        for component in upstream:
            component.process(messages)
        tokens = messages[0].data["tokens"]
        alone = extractor._predict_one(messages[0], tokens)  # noqa: SLF001 - both paths
        batch = extractor._predict_batch(messages, [tokens])[0]  # noqa: SLF001
        assert alone[0] == batch[0], text
        assert alone[1] == batch[1], text  # the same floats


def test_attribute_ids_should_be_kept_per_token_text_and_stay_the_same() -> None:
    extractor, upstream = _trained(PATTERNS_NLU)
    tagger = extractor.taggers_["entity"]
    ids = AttributeIds(tagger.index, extractor._window())  # noqa: SLF001
    first = ids.rows(["send", "it", "to", "Berlin"], None)
    assert set(ids.kept) == {"send", "it", "to", "Berlin"}
    assert ids.rows(["send", "it", "to", "Berlin"], None) == first
    assert all(row == sorted(row) for row in first)


def test_marginals_from_a_row_should_be_those_rows_of_all_marginals() -> None:
    rng = np.random.default_rng(5)
    weights = _weights(rng, 13, 20, 0.9)
    predictor = SequencePredictor(weights, 20)
    for length in (1, 2, 7):
        emissions = _emissions(rng, length, 13, whole=False)
        _, every = predictor.predict(emissions)
        for first in range(length):
            got = predictor.marginals_from(emissions, first)
            assert got is not None and np.array_equal(got, every[first:])


@pytest.mark.parametrize("nlu, params", [
    (travel_nlu(), {}),
    (travel_nlu(), {"BILOU_flag": False}),
    (PATTERNS_NLU, {}),
], ids=["roles-groups", "no-bilou", "patterns"])
def test_a_parse_should_read_the_confidences_of_entity_tokens_as_computed_for_all(
        nlu: str, params: dict[str, Any]) -> None:
    """A parse skips the forward–backward pass without an entity and stops its backward
    pass at the first entity token: the tags, and the confidences of the tokens an entity
    reads, are those of the full computation, float for float; and so are the entities."""
    extractor, upstream = _trained(nlu, **params)
    with_entities = 0
    for text in [*TEXTS, "hello there", "fly", "Berlin", "from Berlin to Rome by 12345"]:
        messages = fresh([text])
        for component in upstream:
            component.process(messages)
        tokens = messages[0].data["tokens"]
        if not tokens:
            continue
        full = extractor._predict_one(messages[0], tokens)  # noqa: SLF001 - both paths
        lean = extractor._predict_one(messages[0], tokens, entities_only=True)  # noqa: SLF001
        inside = [i for i, t in enumerate(full[0]["entity"]) if t != "O"]
        with_entities += bool(inside)
        assert lean[0]["entity"] == full[0]["entity"], text
        for attribute in full[0]:
            if inside:
                assert lean[0][attribute] == full[0][attribute], text
                assert [lean[1][attribute][i] for i in inside] == \
                    [full[1][attribute][i] for i in inside], text
            else:  # nothing reads them: no role or group tagger ran, no confidence computed
                assert attribute == "entity" or attribute not in lean[0], text
                assert all(np.isnan(c) for c in lean[1]["entity"]), text
        found = extractor._entities(text, tokens, *full)  # noqa: SLF001
        extractor.process(messages)
        assert messages[0].data["entities"] == found, text
    assert with_entities >= 4


@pytest.mark.parametrize("whole", [False, True], ids=["real", "ties"])
def test_a_step_one_predecessor_dominates_should_tag_as_the_batch_code(whole: bool) -> None:
    """Where the best label before a step beats every other into every label (most steps
    of a message's plain words), the step takes it as every label's predecessor without
    weighing the others; with whole numbers, predecessors that only tie it stay weighed."""
    rng = np.random.default_rng(13)
    for n_labels in (2, 5, 13):
        weights = _weights(rng, n_labels, 1, 0.7, whole)
        predictor = SequencePredictor(weights, 1)
        t = weights.transitions
        for length in (2, 4, 9):
            emissions = _emissions(rng, length, n_labels, whole)
            emissions[:, 0] += np.float32(4 * (np.abs(t).max() + 1))  # label 0 far ahead
            scores = emissions.astype(np.float64)
            lead = scores[0, 0] - scores[0, 1:]
            assert (lead > (t[1:] - t[0]).max(axis=1)).all()  # the first step is dominated
            want = predict_emissions(weights, emissions, np.array([length]))
            assert predictor.tags(emissions).tolist() == want[0].tolist()
            _same(predictor.predict(emissions), want)
