"""The C kernel of the grouped layers' float32 training products (parley/ml/_grouped.c)
against the layer's meaning (a dense product with the unconnected weights zero, computed in
float64): the output and both gradients, for every shape of group the layers have; the same
bits on every call and thread; used by training where wanted, and named in DIET's
fingerprint."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="parley.ml needs PyTorch (pip install 'parley[torch]')")

from parley.ml import grouped, grouped_kernel  # noqa: E402

needs_kernel = pytest.mark.skipif(not grouped_kernel.AVAILABLE,
                                  reason="the grouped C kernel is not built, or the CPU lacks AVX2/FMA")


def _dense(layer: grouped.GroupedLinear) -> torch.Tensor:
    """The layer's weights as a dense in × out float64 kernel (zeros where unconnected)."""
    kernel = torch.zeros(layer.in_features, layer.out_features, dtype=torch.float64)
    for slices, o0, o1, weight in layer.groups_of(layer.kernel.detach().double()):
        for a, b, r in slices:
            kernel[layer.order[a:b], o0:o1] = weight[r:r + b - a]
    return kernel


@needs_kernel
@pytest.mark.parametrize(("in_features", "out_features", "shuffle"), [
    (23, 17, True),      # groups of two sizes, all narrower than a tile
    (23, 17, False),     # shifted groups: one wraps around the inputs (two pieces)
    (256, 256, True),    # DIET's attention layers: 5 groups of 51–52
    (256, 1024, True),   # the feed-forward layer in (groups 205 wide: 12 full panels + 13)
    (1024, 256, False),  # and out (fan-in 204–205)
    (20, 256, True),     # a sparse block's dense layer
])
@pytest.mark.parametrize("rows", [1, 5, 7, 129, 300])  # around the 6-row tile and 128-row chunk
def test_the_kernel_computes_the_layers_product_and_gradients(in_features, out_features,
                                                              shuffle, rows):
    torch.manual_seed(rows)
    layer = grouped.GroupedLinear(in_features, out_features, density=0.2, shuffle=shuffle)
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(rows, in_features)
    grad = torch.randn(rows, out_features)
    dense = _dense(layer)
    kernel = layer.kernel.detach()

    out = grouped_kernel.forward(layer, x, kernel, layer.bias.detach())
    expected = x.double() @ dense + layer.bias.detach().double()
    assert torch.allclose(out.double(), expected, rtol=1e-5, atol=1e-5)

    grad_x, grad_kernel = grouped_kernel.backward(layer, x, kernel, grad, True, True)
    assert torch.allclose(grad_x.double(), grad.double() @ dense.t(), rtol=1e-5, atol=1e-5)
    full = x.double().t() @ grad.double()  # every weight's gradient, connected or not
    assert torch.allclose(grad_kernel.double(), _flat_by_group(layer, full), rtol=1e-4, atol=1e-4)


def _flat_by_group(layer: grouped.GroupedLinear, full: torch.Tensor) -> torch.Tensor:
    """``full`` (in × out) picked into the layer's flat kernel layout: a group's kernel rows
    follow its pieces in kernel-row order."""
    parts = []
    for slices, o0, o1, _ in layer.groups_of(layer.kernel.detach()):
        rows = torch.cat([layer.order[a:b] for a, b, _ in sorted(slices, key=lambda s: s[2])])
        parts.append(full[rows, o0:o1].reshape(-1))
    return torch.cat(parts)


@needs_kernel
def test_only_the_gradients_asked_for_are_computed():
    layer = grouped.GroupedLinear(64, 64, density=0.2)
    x, grad = torch.randn(9, 64), torch.randn(9, 64)
    kernel = layer.kernel.detach()
    both = grouped_kernel.backward(layer, x, kernel, grad, True, True)
    only_x = grouped_kernel.backward(layer, x, kernel, grad, True, False)
    only_kernel = grouped_kernel.backward(layer, x, kernel, grad, False, True)
    assert only_x[1] is None and only_kernel[0] is None
    assert torch.equal(only_x[0], both[0]) and torch.equal(only_kernel[1], both[1])
    assert grouped_kernel.backward(layer, x, kernel, grad, False, False) == (None, None)


@needs_kernel
def test_the_same_inputs_give_the_same_bits_on_every_call_and_thread():
    torch.manual_seed(3)
    layer = grouped.GroupedLinear(256, 1024, density=0.2)
    x, grad = torch.randn(333, 256), torch.randn(333, 1024)
    kernel = layer.kernel.detach()

    def run() -> tuple[torch.Tensor, ...]:
        out = grouped_kernel.forward(layer, x, kernel, layer.bias.detach())
        return (out, *grouped_kernel.backward(layer, x, kernel, grad, True, True))

    first = run()
    found: list[tuple[torch.Tensor, ...]] = []
    threads = [threading.Thread(target=lambda: found.append(run())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for other in [run(), *found]:
        assert all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


@needs_kernel
def test_training_takes_the_kernel_where_wanted_and_its_gradients_check(monkeypatch):
    """Through autograd: a float32 layer in training runs the kernel (no MKL product is
    called), its gradients match the finite differences of the float64 layer."""
    monkeypatch.setattr(grouped_kernel, "WANTED", True)
    monkeypatch.setattr(grouped, "matmul_dtype", lambda: torch.float32)
    torch.manual_seed(4)
    layer = grouped.GroupedLinear(40, 30, density=0.2).train()
    x = torch.randn(11, 40, requires_grad=True)
    called = []
    real_forward = grouped_kernel.forward
    monkeypatch.setattr(grouped_kernel, "forward",
                        lambda *a: called.append(1) or real_forward(*a))
    out = layer(x)
    (out * torch.arange(out.numel()).view(out.shape)).sum().backward()
    assert called
    dense = _dense(layer)
    weights = torch.arange(out.numel(), dtype=torch.float64).view(out.shape)
    assert torch.allclose(x.grad.double(), weights @ dense.t(), rtol=1e-5, atol=1e-4)
    assert torch.allclose(layer.bias.grad.double(), weights.sum(0))


def test_bad_buffers_are_refused_not_read_past():
    kernel = grouped_kernel._kernel
    if kernel is None:
        pytest.skip("the grouped C kernel is not built")
    x = np.zeros(4 * 8, np.float32)
    out = np.zeros(4 * 8, np.float32)
    cols = np.arange(8, dtype=np.int32)
    weights = np.zeros(64, np.float32)
    good = np.array([8, 8, 0, 0, 0], np.int64)
    kernel.forward(x, cols, weights, np.zeros(0, np.float32), good, out, 4, 8, 8, False)
    with pytest.raises(ValueError, match="outside"):  # a group past the outputs
        kernel.forward(x, cols, weights, np.zeros(0, np.float32),
                       np.array([8, 8, 1, 0, 0], np.int64), out, 4, 8, 8, False)
    with pytest.raises(ValueError, match="outside"):  # a column past the input
        kernel.forward(x, np.full(8, 8, np.int32), weights, np.zeros(0, np.float32), good,
                       out, 4, 8, 8, False)
    with pytest.raises(ValueError, match="x"):  # fewer rows than said
        kernel.forward(x[:-1], cols, weights, np.zeros(0, np.float32), good, out, 4, 8, 8, False)


def test_the_fingerprint_names_the_kernel_where_training_takes_it(monkeypatch):
    from parley.ml import torch_env
    from parley.nlu.neural.diet import DIETClassifier

    monkeypatch.setattr(torch_env, "known_matmul_dtype", lambda: "torch.float32")
    for wanted in (True, False):
        monkeypatch.setattr(torch_env, "grouped_kernel_products", lambda w=wanted: w)
        found = DIETClassifier.runtime_fingerprint()
        assert (found.get("grouped_products") == "c-avx2") is wanted


def test_ci_should_have_built_the_grouped_kernel():
    """CI sets PARLEY_REQUIRE_C_KERNEL: a build that quietly failed would leave float32
    training on MKL's slower small products (and the tests above skipped)."""
    if not os.environ.get("PARLEY_REQUIRE_C_KERNEL"):
        pytest.skip("PARLEY_REQUIRE_C_KERNEL is not set (CI sets it)")
    assert grouped_kernel._kernel is not None, "parley/ml/_grouped.c was not built (pip install -e .)"
