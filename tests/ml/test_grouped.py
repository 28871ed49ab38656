"""The randomly connected (grouped) dense layer."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="parley.ml needs PyTorch (pip install 'parley[torch]')")


@pytest.mark.parametrize(("shuffle", "column_major"), [(True, False), (False, False), (True, True)])
def test_grouped_layer_is_a_sparse_dense_layer_with_the_right_gradients(shuffle, column_major):
    from parley.ml.grouped import GroupedLinear, _GroupedProduct

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
    # Column-major output is for bfloat16 products; float32/64 ones stay row-major.
    assert layer(x).is_contiguous()
    product = _GroupedProduct.apply
    assert torch.autograd.gradcheck(lambda x, b, k: product(x, layer, b, k, False),
                                    (x, layer.bias, layer.kernel))
    expected = (x @ kernel + layer.bias).float().detach()
    layer.float().train()  # training multiplies in bfloat16 where the CPU has it: close, not equal
    assert torch.allclose(layer(x.float().detach()), expected, atol=0.05)


@pytest.mark.parametrize(("shuffle", "column_major"), [(True, False), (False, False), (True, True)])
def test_batched_per_group_and_row_major_products_agree(monkeypatch, shuffle, column_major):
    """bfloat16 training multiplies all groups in one padded bmm (or, with AMX, as one dense
    product with a zero-filled kernel), float32 training group by group in place on
    row-major activations; the per-group path (kept for prediction and
    ``PARLEY_GROUPED_BMM=0``) must give the same output and gradients as all three."""
    from parley.ml import grouped

    torch.manual_seed(1)
    layer = grouped.GroupedLinear(23, 17, density=0.2, shuffle=shuffle,
                                  column_major=column_major).double()
    assert layer.groups == 5 and len({w for _, w in layer.shapes}) > 1  # groups of two sizes
    x = torch.randn(7, 23, dtype=torch.float64)
    if not shuffle:
        x = torch.randn(23, 7, dtype=torch.float64).t()
    results = []
    for batched, row_major, dense in ((True, False, False), (False, False, False),
                                      (False, True, False), (False, False, True)):
        monkeypatch.setattr(grouped, "BATCHED", batched)
        monkeypatch.setattr(grouped, "ROW_MAJOR", row_major)
        monkeypatch.setattr(grouped, "_dense", dense)
        monkeypatch.setattr(grouped, "DENSE_DTYPES", (torch.bfloat16, torch.float64))
        layer.zero_grad()
        inputs = x.clone().requires_grad_()
        out = layer(inputs)
        (out * torch.arange(out.numel(), dtype=out.dtype).view(out.shape)).sum().backward()
        results.append((out.detach(), inputs.grad, layer.kernel.grad.clone(), layer.bias.grad.clone()))
    for other in results[1:]:
        for a, b in zip(results[0], other, strict=True):
            assert torch.allclose(a, b, atol=1e-12)


def test_row_major_products_skip_the_gradients_not_asked_for():
    """The first layer's input (sparse layers' outputs) wants its gradient; a frozen kernel
    does not: each is computed only when asked for, and right when it is."""
    from parley.ml.grouped import GroupedLinear

    torch.manual_seed(2)
    layer = GroupedLinear(12, 9, density=0.34).double().train()
    x = torch.randn(4, 12, dtype=torch.float64, requires_grad=True)
    layer.kernel.requires_grad_(False)
    layer(x).sum().backward()
    assert layer.kernel.grad is None and x.grad is not None
    dense = torch.autograd.functional.jacobian(lambda v: layer(v).sum(), x)
    assert torch.allclose(x.grad, dense)
    layer.kernel.requires_grad_(True)
    x = x.detach()
    layer(x).sum().backward()
    assert layer.kernel.grad is not None


def test_dense_kernel_is_kept_until_the_weights_change(monkeypatch):
    """The dense products' zero-filled kernel is built once for a step's shards and again
    after the optimizer (which writes the weights in place) or anything else changed them."""
    from parley.ml import grouped
    from parley.ml.adam import Adam

    monkeypatch.setattr(grouped, "_dense", True)
    monkeypatch.setattr(grouped, "DENSE_DTYPES", (torch.bfloat16, torch.float64))
    torch.manual_seed(3)
    layer = grouped.GroupedLinear(12, 10, density=0.2).double().train()
    x = torch.randn(6, 12, dtype=torch.float64)
    optimizer = Adam([([layer.kernel, layer.bias], 0.0)], lr=0.1)

    def dense_now() -> torch.Tensor:
        kernel = torch.zeros(12, 10, dtype=torch.float64)
        for slices, o0, o1, weight in layer.groups_of(layer.kernel.detach()):
            for a, b, r in slices:
                kernel[layer.order[a:b], o0:o1] = weight[r:r + b - a]
        return kernel

    for _ in range(3):
        out = layer(x)
        assert torch.allclose(out, x @ dense_now() + layer.bias, atol=1e-12)
        kept = layer.__dict__["_dense_kernel"][1]
        assert layer(x) is not None and layer.__dict__["_dense_kernel"][1] is kept  # shared
        out.square().sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    with torch.no_grad():
        layer.kernel.mul_(2)
    assert torch.allclose(layer(x), x @ dense_now() + layer.bias, atol=1e-12)


def test_padded_kernel_is_kept_until_the_weights_change(monkeypatch):
    """The batched products' padded kernel, likewise: shared by a step's shards, built again
    after the optimizer or anything else wrote the weights."""
    from parley.ml import grouped
    from parley.ml.adam import Adam

    monkeypatch.setattr(grouped, "_dense", False)
    monkeypatch.setattr(grouped, "ROW_MAJOR", False)
    torch.manual_seed(4)
    layer = grouped.GroupedLinear(12, 10, density=0.2).double().train()
    x = torch.randn(6, 12, dtype=torch.float64)
    optimizer = Adam([([layer.kernel, layer.bias], 0.0)], lr=0.1)

    def per_group() -> torch.Tensor:
        with torch.no_grad():
            return grouped._product(x, layer, layer.bias, layer.kernel, False)[0]

    for _ in range(3):
        out = layer(x)
        assert torch.allclose(out, per_group(), atol=1e-12)
        kept = layer.__dict__["_padded_kernel"][1]
        assert layer(x) is not None and layer.__dict__["_padded_kernel"][1] is kept  # shared
        out.square().sum().backward()
        optimizer.step()
        optimizer.zero_grad()
    with torch.no_grad():
        layer.kernel.mul_(2)
    assert torch.allclose(layer(x), per_group(), atol=1e-12)
