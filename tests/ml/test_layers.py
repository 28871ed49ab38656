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
    """SparseDense's hand-written backward (a transposed embedding_bag) must give the very
    gradient torch's embedding_bag backward gives: models trained before stay the same."""
    from torch.nn import functional as F  # noqa: N812

    from parley.ml import layers
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
    out = layer(SparseRows(indices, offsets, values))
    out.backward(grad)
    mine = layer.weight.grad.clone()
    layer.weight.grad = None
    reference = F.embedding_bag(indices, layer.weight, offsets, mode="sum",
                                per_sample_weights=values) + layer.bias
    reference.backward(grad)
    assert torch.equal(out, reference)
    assert torch.equal(mine, layer.weight.grad)
