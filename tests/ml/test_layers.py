"""Dropout as the layers use it, and the sparse input layer's gradient."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="parley.ml needs PyTorch (pip install 'parley[torch]')")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dropout_drops_the_rate_and_keeps_the_mean(dtype):
    from parley.ml.layers import dropout

    torch.manual_seed(0)
    x = torch.ones(400, 1000, dtype=dtype)
    y = dropout(x, 0.2, training=True)
    assert y.dtype == dtype
    assert abs((y == 0).float().mean().item() - 0.2) < 0.005
    assert abs(y.float().mean().item() - 1.0) < 0.01
    assert dropout(x, 0.2, training=False) is x


@pytest.mark.parametrize(("columns", "rows", "most"), [(2575, 300, 60), (40, 9, 3), (5, 4, 2)])
def test_sparse_dense_weight_gradient_should_equal_torchs_own_bitwise(columns, rows, most,
                                                                     monkeypatch):
    """SparseDense's hand-written backward in torch (a transposed embedding_bag) must give
    the very gradient torch's embedding_bag backward gives; the C kernel's
    (parley/ml/_sparse.c: the non-zeros in row order, no fused multiply-adds) the same
    within float32 rounding."""
    from torch.nn import functional as F  # noqa: N812

    from parley.ml import layers, sparse_kernel
    from parley.ml.batching import SparseRows
    from parley.ml.layers import SparseDense

    generator = torch.Generator().manual_seed(columns)
    counts = torch.randint(0, most + 1, (rows,), generator=generator)  # empty rows too
    indices = torch.cat([torch.randperm(columns, generator=generator)[:c] for c in counts.tolist()])
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)[:-1]])
    values = torch.rand(indices.shape[0], generator=generator)
    grad = torch.randn(rows, 16, generator=generator)
    layer = SparseDense(columns, 16)
    monkeypatch.setattr(layers, "OWN_SPARSE_BACKWARD", 0)  # every size through it
    found = {}
    for in_c in (False, True):
        if in_c and not sparse_kernel.AVAILABLE:
            continue
        monkeypatch.setattr(sparse_kernel, "AVAILABLE", in_c)
        out = layer(SparseRows(indices, offsets, values))
        out.backward(grad)
        found[in_c] = layer.weight.grad.clone()
        layer.weight.grad = None
    reference = F.embedding_bag(indices, layer.weight, offsets, mode="sum",
                                per_sample_weights=values) + layer.bias
    reference.backward(grad)
    assert torch.equal(out, reference)
    assert torch.equal(found[False], layer.weight.grad)
    if True in found:
        torch.testing.assert_close(found[True], layer.weight.grad, rtol=1e-5, atol=1e-5)


def test_the_sparse_kernel_refuses_rows_that_do_not_fit_the_weights():
    import numpy as np

    from parley.ml import sparse_kernel

    if not sparse_kernel.AVAILABLE:
        pytest.skip("the sparse C kernel is not built")
    kernel = sparse_kernel._kernel
    grad, out = np.ones((2, 4), np.float32), np.zeros((3, 4), np.float32)
    values = np.ones(3, np.float32)
    cases = [([0, 1, 3], [0, 2], "outside"),  # column 3 of 3
             ([0, 1, 2], [1, 2], "offsets"),  # not from 0
             ([0, 1, 2], [0, 4], "offsets"),  # past the non-zeros
             ([0, 1, 2], [2, 1], "offsets")]  # falling
    for indices, offsets, match in cases:
        with pytest.raises(ValueError, match=match):
            kernel.weight_grad(np.asarray(indices, np.int64), np.asarray(offsets, np.int64),
                               values, grad, 4, out)
    with pytest.raises(ValueError, match="shapes"):
        kernel.weight_grad(np.zeros(3, np.int64), np.zeros(2, np.int64), values, grad[:1], 4,
                           out)


def test_ci_should_have_built_the_sparse_kernel():
    """CI sets PARLEY_REQUIRE_C_KERNEL: a build that quietly failed would leave the sparse
    layers' gradients to torch (and the kernel's tests skipped)."""
    import os

    from parley.ml import sparse_kernel

    if not os.environ.get("PARLEY_REQUIRE_C_KERNEL"):
        pytest.skip("PARLEY_REQUIRE_C_KERNEL is not set (CI sets it)")
    assert sparse_kernel.AVAILABLE, "parley/ml/_sparse.c was not built (pip install -e .)"
