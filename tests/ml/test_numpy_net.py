"""The numpy prediction blocks against the torch layers they mirror."""

from __future__ import annotations

import math

import numpy as np
import pytest

from parley.ml import numpy_net
from parley.ml.crf_numpy import CRFDecoder
from parley.ml.numpy_net import GroupedDense, erf, gelu, sparse_dense

torch = pytest.importorskip("torch", reason="the reference layers are torch's")


def test_erf_and_gelu_are_accurate():
    x = np.linspace(-7, 7, 40001).astype(np.float32)
    exact = np.array([math.erf(v) for v in x.astype(np.float64)])
    assert np.abs(erf(x.copy()) - exact).max() < 5e-7
    reference = torch.nn.functional.gelu(torch.from_numpy(x)).numpy()
    assert np.abs(gelu(x.copy()) - reference).max() < 2e-6


@pytest.mark.parametrize("shape", [(256, 768, 0.2, True), (1024, 256, 0.2, False),
                                   (384, 256, 0.2, True), (50, 7, 0.3, True), (20, 12, 1.0, True),
                                   (13, 29, 0.25, False)])
@pytest.mark.parametrize("rows", [1, 11, numpy_net.DENSE_ROWS + 3])
def test_grouped_dense_matches_grouped_linear(shape, rows):
    from parley.ml.grouped import GroupedLinear

    in_features, out_features, density, shuffle = shape
    torch.manual_seed(rows)
    layer = GroupedLinear(in_features, out_features, density, shuffle=shuffle).eval()
    with torch.no_grad():
        layer.bias.uniform_(-1, 1)
    arrays = {f"x.{k}": v.detach().numpy() for k, v in layer.state_dict().items()}
    ours = GroupedDense(arrays, "x", in_features, out_features, density, shuffle=shuffle)
    x = np.random.default_rng(rows).standard_normal((rows, in_features)).astype(np.float32)
    with torch.no_grad():
        expected = layer(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours(x), expected, atol=2e-5)


def test_grouped_dense_refuses_a_kernel_of_the_wrong_size():
    arrays = {"x.kernel": np.zeros(10, np.float32), "x.bias": np.zeros(8, np.float32),
              "x.order": np.arange(6)}
    with pytest.raises(ValueError, match="x.kernel"):
        GroupedDense(arrays, "x", 6, 8, 0.5)


@pytest.mark.parametrize("entries", [0, 30, numpy_net.SPARSE_PRODUCT_ENTRIES + 10])
def test_sparse_dense_sums_the_weight_rows_of_each_row(entries):
    from scipy import sparse

    rng = np.random.default_rng(entries)
    rows, dim = max(8, entries // 3), 40
    matrix = sparse.random(rows, dim, density=entries / (rows * dim), format="lil",
                           random_state=1, dtype=np.float64)
    matrix[0] = 0  # leading and trailing empty rows
    matrix[rows - 1] = 0
    matrix = matrix.tocsr()
    weight = rng.standard_normal((dim, 16)).astype(np.float32)
    bias = rng.standard_normal(16).astype(np.float32)
    got = sparse_dense(matrix.data, matrix.indices, matrix.indptr, weight, bias)
    np.testing.assert_allclose(got, matrix.toarray() @ weight + bias, atol=1e-5)


@pytest.mark.parametrize("scale", [1.0, 200.0])  # 200: the probability-space pass underflows
def test_crf_decoder_matches_the_torch_crf(scale):
    from parley.ml.crf import CRF
    from parley.ml.entity_tags import bilou_moves

    names = ["O", "B-a", "I-a", "L-a", "U-a", "B-b", "L-b", "U-b"]
    allowed, may_start, may_end = bilou_moves(names)
    torch.manual_seed(0)
    crf = CRF(len(names))
    crf.constrain(torch.tensor(allowed), torch.tensor(may_start), torch.tensor(may_end))
    ours = CRFDecoder(crf.transitions.detach().numpy(), allowed, may_start, may_end)
    for length in (1, 2, 7):
        emissions = torch.randn(3, length, len(names)) * scale
        tags, confidence = crf.decode(emissions, torch.ones(3, length, dtype=torch.bool))
        got_tags, got_confidence = ours.decode(emissions.numpy())
        assert got_tags.tolist() == tags.tolist()
        np.testing.assert_allclose(got_confidence, confidence.numpy(), atol=1e-5)


@pytest.mark.parametrize("scale", [1.0, 30.0, 300.0])
def test_crf_decoder_should_tag_a_sequence_alone_as_in_a_batch(scale):
    from parley.ml.entity_tags import bilou_moves

    names = ["O", "B-a", "I-a", "L-a", "U-a", "B-b", "I-b", "L-b", "U-b"]
    rng = np.random.default_rng(7)
    decoder = CRFDecoder(rng.standard_normal((len(names), len(names))).astype(np.float32),
                         *bilou_moves(names))
    for length in (1, 2, 5, 13):
        emissions = (rng.standard_normal((4, length, len(names))) * scale).astype(np.float32)
        tags, confidence = decoder.decode(emissions)
        for row in range(4):  # one message: the back pointers followed in Python ints
            alone_tags, alone_confidence = decoder.decode(emissions[row:row + 1])
            assert alone_tags[0].tolist() == tags[row].tolist()
            np.testing.assert_allclose(alone_confidence[0], confidence[row], rtol=1e-6)


@pytest.mark.parametrize("kind", ["real", "scaled 300", "ties"])
def test_crf_decoder_should_tag_with_the_c_kernel_as_with_numpy(kind, monkeypatch):
    from parley.ml import chain_kernel
    from parley.ml.entity_tags import bilou_moves

    if not chain_kernel.AVAILABLE:
        pytest.skip("the C kernel (parley/ml/_chain.c) is not built here")
    names = ["O", "B-a", "I-a", "L-a", "U-a", "B-b", "I-b", "L-b", "U-b"]
    rng = np.random.default_rng(11)
    whole = kind == "ties"
    transitions = (rng.integers(-2, 3, (9, 9)) if whole else rng.standard_normal((9, 9)))
    with_kernel = CRFDecoder(transitions.astype(np.float32), *bilou_moves(names))
    monkeypatch.setattr(chain_kernel, "AVAILABLE", False)
    plain = CRFDecoder(transitions.astype(np.float32), *bilou_moves(names))
    assert with_kernel.kernel is not None and plain.kernel is None
    for length in (1, 2, 5, 13):
        if whole:
            emissions = rng.integers(-1, 2, (6, length, 9)).astype(np.float32)
        else:
            emissions = (rng.standard_normal((6, length, 9))
                         * (300.0 if kind == "scaled 300" else 2.0)).astype(np.float32)
        tags, confidence = with_kernel.decode(emissions)
        want_tags, want_confidence = plain.decode(emissions)
        assert tags.tolist() == want_tags.tolist()  # the float32 sums, ties included
        assert confidence.dtype == want_confidence.dtype
        # the kernel's float64 marginals against numpy's in float64 (its float32 log-space
        # fallback, which scale 300 needs, is off by ~4e-5)
        exact = plain.marginals(emissions.astype(np.float64))
        picked = np.take_along_axis(exact, tags[:, :, None], axis=2)[:, :, 0]
        np.testing.assert_allclose(confidence, picked, atol=1e-6)


def test_blas_threads_are_set_for_a_while_and_restored():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        before = [lib.num_threads for lib in numpy_net._blas_libraries()]
        with numpy_net.blas_threads(1):
            assert all(lib.num_threads == 1 for lib in numpy_net._blas_libraries())
        assert [lib.num_threads for lib in numpy_net._blas_libraries()] == before
