"""The C kernel of a CRF's prediction (parley/ml/_chain.c) against the numpy code it
stands in for: the same tags, ties included; marginals equal to a float64 log-space
reference, and to the numpy code's float32 ones within its rounding."""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy.special import logsumexp

from parley.ml import chain_kernel, linear_kernel
from parley.nlu.extractors._crf import ChainLayout, ChainWeights, _predict_walked
from tests.nlu.extractors.test_crf import travel_nlu
from tests.nlu.extractors.test_crf_single import TEXTS, _trained

needs_kernel = pytest.mark.skipif(not chain_kernel.AVAILABLE,
                                  reason="the C kernel (parley/ml/_chain.c) is not built here")


def _numpy(transitions: np.ndarray, emissions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    weights = ChainWeights(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0),
                           transitions)
    return _predict_walked(weights, emissions, ChainLayout(np.array([len(emissions)])))


def _reference_marginals(transitions: np.ndarray, emissions: np.ndarray) -> np.ndarray:
    e = emissions.astype(np.float64)
    alpha, beta = [e[0]], [np.zeros(e.shape[1])]
    for i in range(1, len(e)):
        alpha.append(logsumexp(alpha[-1][:, None] + transitions, axis=0) + e[i])
    for i in range(len(e) - 1, 0, -1):
        beta.append(logsumexp(transitions + (e[i] + beta[-1])[None, :], axis=1))
    log_marginals = np.array(alpha) + np.array(beta[::-1])
    return np.exp(log_marginals - logsumexp(alpha[-1]))


@needs_kernel
@pytest.mark.parametrize("whole", [False, True], ids=["real", "ties"])
def test_the_kernel_should_tag_as_the_numpy_code_and_agree_on_marginals(whole: bool) -> None:
    rng = np.random.default_rng(17)
    for n_labels in (1, 2, 3, 7, 41, 97):
        for zeros in (0.0, 0.9):
            if whole:  # small whole numbers: many scores tie
                transitions = rng.integers(-3, 4, (n_labels, n_labels)).astype(np.float64)
            else:
                transitions = rng.normal(size=(n_labels, n_labels)) * 2
            transitions *= rng.random((n_labels, n_labels)) > zeros
            chain = chain_kernel.ChainConstants.of(transitions)
            for length in (1, 2, 5, 12):
                if whole:
                    emissions = rng.integers(-2, 3, (length, n_labels)).astype(np.float32)
                else:
                    emissions = (rng.normal(size=(length, n_labels)) * 3).astype(np.float32)
                tags, marginals = _numpy(transitions, emissions)
                assert chain_kernel.viterbi(emissions, chain).tolist() == tags.tolist()
                got = chain_kernel.marginals(emissions, chain)
                assert got is not None
                np.testing.assert_allclose(got, _reference_marginals(transitions, emissions),
                                           rtol=1e-9, atol=1e-12)
                np.testing.assert_allclose(got, marginals, atol=2e-6)
                for first in range(length):
                    assert np.array_equal(chain_kernel.marginals(emissions, chain, first),
                                          got[first:])


@needs_kernel
def test_weights_that_are_not_finite_should_give_labels_in_range_not_a_crash() -> None:
    rng = np.random.default_rng(2)
    for bad in (np.inf, -np.inf, np.nan):
        transitions = rng.normal(size=(6, 6))
        transitions[rng.random((6, 6)) < 0.4] = bad
        emissions = rng.normal(size=(7, 6)).astype(np.float32)
        emissions[2, :3] = bad
        chain = chain_kernel.ChainConstants.of(transitions)
        tags = chain_kernel.viterbi(emissions, chain)
        assert ((tags >= 0) & (tags < 6)).all()
        found = chain_kernel.marginals(emissions, chain)
        assert found is None or np.isfinite(found).all()


@needs_kernel
def test_the_kernel_should_refuse_shapes_that_do_not_fit() -> None:
    chain = chain_kernel.ChainConstants.of(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="emissions"):
        chain_kernel._kernel.viterbi(  # type: ignore[union-attr]  # noqa: SLF001
            np.zeros((2, 4), np.float32), chain.transitions, chain.row_max, chain.row_min,
            2, 3, np.empty(2, np.int64))
    with pytest.raises(ValueError, match="first"):
        chain_kernel._kernel.marginals(  # type: ignore[union-attr]  # noqa: SLF001
            np.zeros((2, 3), np.float32), chain.base, chain.indptr, chain.indices, chain.values,
            chain.exp_start, chain.exp_end, 2, 3, 2, np.empty(0))


@needs_kernel
@pytest.mark.parametrize("features", [None, [["low", "title"], ["bias", "suffix3", "prefix2"],
                                               ["upper"], ["title"], ["digit"]],
                                      [[], ["prefix2", "suffix1"], []]],
                         ids=["default", "wide-window", "narrow-window"])
def test_the_kernels_window_emissions_should_be_the_rows_summed_bit_for_bit(
        features: list[list[str]] | None) -> None:
    extractor, _ = _trained(travel_nlu(), **({} if features is None else {"features": features}))
    ids, predictor, _ = extractor.taggers_["entity"].single(extractor._window())  # noqa: SLF001
    for text in [*TEXTS, "Prague", "unknownword another Prague Lisbon Prague"]:
        texts = text.split()
        if not texts:
            continue
        want = predictor.emissions(ids.rows(texts, None))
        got = predictor.window_emissions(ids, texts)
        assert got is not None and got.dtype == np.float32
        assert got.tobytes() == want.tobytes(), text


@needs_kernel
def test_the_kernels_window_emissions_should_refuse_ids_out_of_range() -> None:
    state = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="outside"):
        chain_kernel.window_emissions([[[0], [9], [1]]], 1, None, None, state)
    with pytest.raises(ValueError, match="same slots"):
        chain_kernel.window_emissions([[[0], [1], [2]], [[0]]], 1, None, None, state)
    with pytest.raises(TypeError):
        chain_kernel.window_emissions([[[0], ["x"], [1]]], 1, None, None, state)


def test_ci_should_have_built_the_kernels() -> None:
    """CI sets PARLEY_REQUIRE_C_KERNEL: a build that quietly failed there would leave every
    kernel test skipped and parses on the slower numpy path."""
    if not os.environ.get("PARLEY_REQUIRE_C_KERNEL"):
        pytest.skip("PARLEY_REQUIRE_C_KERNEL is not set (CI sets it)")
    assert chain_kernel.AVAILABLE, "parley/ml/_chain.c was not built (pip install -e .)"
    assert linear_kernel.AVAILABLE, "parley/ml/_linear.c was not built (pip install -e .)"
