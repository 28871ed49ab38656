"""The C kernel of the grouped layers' training products (parley/ml/_grouped.c, float32 on
AVX2; parley/ml/_grouped_bf16.c, bfloat16 on AVX512_BF16, its products on AMX tiles with
parley/ml/_grouped_amx.c) against the layer's meaning (a
dense product with the unconnected weights zero, computed in float64 — on the bfloat16
flavour, of the inputs rounded to bfloat16 as it rounds them): the output and both
gradients, for every shape of group the layers have; the same bits on every call and
thread; used by training where wanted, and named in DIET's fingerprint."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="parley.ml needs PyTorch (pip install 'parley[torch]')")

from parley.ml import grouped, grouped_kernel  # noqa: E402

needs_kernel = pytest.mark.skipif(not grouped_kernel.AVAILABLE,
                                  reason="the grouped C kernel is not built, or the CPU lacks AVX2/FMA")
# The flavour a test runs: 0 float32, 1 bfloat16 on AVX-512 registers, 2 bfloat16 on AMX
# tiles (the C call's ``bf16``; true where a test asks "bfloat16?").
FLAVOURS = [
    pytest.param(0, id="float32", marks=needs_kernel),
    pytest.param(1, id="bfloat16", marks=pytest.mark.skipif(
        not grouped_kernel.AVAILABLE_BF16,
        reason="the grouped C kernel is not built, or the CPU lacks AVX512_BF16")),
    pytest.param(2, id="amx", marks=pytest.mark.skipif(
        not grouped_kernel.AVAILABLE_AMX,
        reason="the grouped C kernel is not built, or the CPU (or OS) gives no AMX tiles")),
]


def _forward(layer: grouped.GroupedLinear, x: torch.Tensor, kernel: torch.Tensor,
             bias: torch.Tensor | None, flavour: int,
             out_dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    return grouped_kernel.forward(layer, x, kernel, bias, flavour > 0, out_dtype,
                                  amx=flavour == 2)


def _backward(layer: grouped.GroupedLinear, saved: torch.Tensor, kernel: torch.Tensor,
              grad: torch.Tensor, want_x: bool, want_kernel: bool, flavour: int,
              x_dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor | None, ...]:
    return grouped_kernel.backward(layer, saved, kernel, grad, want_x, want_kernel, flavour > 0,
                                   x_dtype, amx=flavour == 2)


def _dense(layer: grouped.GroupedLinear, bf16: bool = False) -> torch.Tensor:
    """The layer's weights as a dense in × out float64 kernel (zeros where unconnected),
    rounded to bfloat16 first with ``bf16``."""
    kernel = torch.zeros(layer.in_features, layer.out_features, dtype=torch.float64)
    weights = layer.kernel.detach()
    weights = (weights.bfloat16() if bf16 else weights).double()
    for slices, o0, o1, weight in layer.groups_of(weights):
        for a, b, r in slices:
            kernel[layer.order[a:b], o0:o1] = weight[r:r + b - a]
    return kernel


def _as_multiplied(t: torch.Tensor, bf16: bool) -> torch.Tensor:
    return (t.bfloat16() if bf16 else t).double()


def _close(found: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float) -> bool:
    return torch.allclose(found.double(), expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("bf16", FLAVOURS)
@pytest.mark.parametrize(("in_features", "out_features", "shuffle"), [
    (23, 17, True),      # groups of two sizes (odd fan-ins), all narrower than a tile
    (23, 17, False),     # shifted groups: one wraps around the inputs (two pieces)
    (256, 256, True),    # DIET's attention layers: 5 groups of 51–52
    (256, 1024, True),   # the feed-forward layer in (groups 205 wide: 12 full panels + 13)
    (1024, 256, False),  # and out (fan-in 204–205)
    (20, 256, True),     # a sparse block's dense layer
])
@pytest.mark.parametrize("rows", [1, 5, 7, 129, 300])  # around the 6-row tile and 128-row chunk
def test_the_kernel_computes_the_layers_product_and_gradients(in_features, out_features,
                                                              shuffle, rows, bf16):
    torch.manual_seed(rows)
    layer = grouped.GroupedLinear(in_features, out_features, density=0.2, shuffle=shuffle)
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(rows, in_features)
    grad = torch.randn(rows, out_features)
    dense = _dense(layer, bf16)
    kernel = layer.kernel.detach()

    out, saved = _forward(layer, x, kernel, layer.bias.detach(), bf16)
    expected = _as_multiplied(x, bf16) @ dense + layer.bias.detach().double()
    assert _close(out, expected, rtol=1e-5, atol=1e-5)

    grad_x, grad_kernel = _backward(layer, saved, kernel, grad, True, True, bf16)
    # the bfloat16 flavour rounds the input gradient to bfloat16, as torch's bfloat16 path does
    rtol = 2 ** -8 if bf16 else 1e-5
    assert _close(grad_x, _as_multiplied(grad, bf16) @ dense.t(), rtol=rtol, atol=1e-5)
    full = _as_multiplied(x, bf16).t() @ _as_multiplied(grad, bf16)  # every weight's gradient
    assert _close(grad_kernel, _flat_by_group(layer, full), rtol=1e-4, atol=1e-4)


def _flat_by_group(layer: grouped.GroupedLinear, full: torch.Tensor) -> torch.Tensor:
    """``full`` (in × out) picked into the layer's flat kernel layout: a group's kernel rows
    follow its pieces in kernel-row order."""
    parts = []
    for slices, o0, o1, _ in layer.groups_of(layer.kernel.detach()):
        rows = torch.cat([layer.order[a:b] for a, b, _ in sorted(slices, key=lambda s: s[2])])
        parts.append(full[rows, o0:o1].reshape(-1))
    return torch.cat(parts)


@pytest.mark.parametrize("bf16", FLAVOURS[1:])
@pytest.mark.parametrize(("in_features", "out_features", "shuffle"),
                         [(256, 256, True), (1024, 256, False), (23, 17, True)])
def test_bfloat16_activations_go_in_and_come_out_as_torchs_bfloat16_path_leaves_them(
        in_features, out_features, shuffle, bf16):
    """Attention and the feed-forward's hidden layer keep bfloat16 between layers: the
    kernel takes bfloat16 inputs and gradients as they are, gives bfloat16 outputs (rounded
    once, from float32 sums) and a bfloat16 input gradient."""
    torch.manual_seed(9)
    layer = grouped.GroupedLinear(in_features, out_features, density=0.2, shuffle=shuffle)
    x = torch.randn(37, in_features).bfloat16()
    grad = torch.randn(37, out_features).bfloat16()
    kernel = layer.kernel.detach()
    dense = _dense(layer, bf16=True)
    out, saved = _forward(layer, x, kernel, layer.bias.detach(), bf16, torch.bfloat16)
    assert out.dtype == torch.bfloat16
    expected = (x.double() @ dense + layer.bias.detach().double()).bfloat16().double()
    assert _close(out, expected, rtol=2 ** -7, atol=1e-3)
    # the same as float32 inputs of the same values
    wide, _ = _forward(layer, x.float(), kernel, layer.bias.detach(), bf16)
    assert torch.equal(out, wide.bfloat16())
    grad_x, grad_kernel = _backward(layer, saved, kernel, grad, True, True, bf16, torch.bfloat16)
    assert grad_x.dtype == torch.bfloat16 and grad_kernel.dtype == torch.float32
    float_grad = _backward(layer, saved, kernel, grad.float(), True, True, bf16, torch.bfloat16)
    assert torch.equal(grad_x, float_grad[0]) and torch.equal(grad_kernel, float_grad[1])
    assert _close(grad_x, grad.double() @ dense.t(), rtol=2 ** -7, atol=1e-3)


@pytest.mark.parametrize("bf16", FLAVOURS)
def test_only_the_gradients_asked_for_are_computed(bf16):
    layer = grouped.GroupedLinear(64, 64, density=0.2)
    x, grad = torch.randn(9, 64), torch.randn(9, 64)
    kernel = layer.kernel.detach()
    _, saved = _forward(layer, x, kernel, None, bf16)
    both = _backward(layer, saved, kernel, grad, True, True, bf16)
    only_x = _backward(layer, saved, kernel, grad, True, False, bf16)
    only_kernel = _backward(layer, saved, kernel, grad, False, True, bf16)
    assert only_x[1] is None and only_kernel[0] is None
    assert torch.equal(only_x[0], both[0]) and torch.equal(only_kernel[1], both[1])
    assert _backward(layer, saved, kernel, grad, False, False, bf16) == (None, None)


@pytest.mark.parametrize("bf16", FLAVOURS)
def test_the_same_inputs_give_the_same_bits_on_every_call_and_thread(bf16):
    torch.manual_seed(3)
    layer = grouped.GroupedLinear(256, 1024, density=0.2)
    x, grad = torch.randn(333, 256), torch.randn(333, 1024)
    kernel = layer.kernel.detach()

    def run() -> tuple[torch.Tensor, ...]:
        out, saved = _forward(layer, x, kernel, layer.bias.detach(), bf16)
        return (out, *_backward(layer, saved, kernel, grad, True, True, bf16))

    first = run()
    found: list[tuple[torch.Tensor, ...]] = []
    threads = [threading.Thread(target=lambda: found.append(run())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for other in [run(), *found]:
        assert all(torch.equal(a, b) for a, b in zip(first, other, strict=True))


@pytest.mark.parametrize("bf16", FLAVOURS)
def test_training_takes_the_kernel_where_wanted_and_its_gradients_check(monkeypatch, bf16):
    """Through autograd: a layer in training runs the kernel (no torch product is called),
    its gradients match the finite differences of the float64 layer (of the bfloat16-rounded
    one for the bfloat16 flavour, within its rounding)."""
    dtype = torch.bfloat16 if bf16 else torch.float32
    monkeypatch.setattr(grouped_kernel, "WANTED_BF16" if bf16 else "WANTED", True)
    monkeypatch.setattr(grouped_kernel, "AMX", bf16 == 2)
    monkeypatch.setattr(grouped, "matmul_dtype", lambda: dtype)
    torch.manual_seed(4)
    layer = grouped.GroupedLinear(40, 30, density=0.2).train()
    x = torch.randn(11, 40, requires_grad=True)
    called = []
    real_forward = grouped_kernel.forward
    monkeypatch.setattr(grouped_kernel, "forward",
                        lambda *a: called.append(a[-1]) or real_forward(*a))
    out = layer(x)
    assert out.dtype == torch.float32
    (out * torch.arange(out.numel()).view(out.shape)).sum().backward()
    assert called and all(amx == (bf16 == 2) for amx in called)  # (its last argument)
    dense = _dense(layer, bf16)
    weights = torch.arange(out.numel(), dtype=torch.float64).view(out.shape)
    assert torch.allclose(x.grad.double(), _as_multiplied(weights, bf16) @ dense.t(),
                          rtol=2 ** -8 if bf16 else 1e-5, atol=1e-2 if bf16 else 1e-4)
    assert torch.allclose(layer.bias.grad.double(), weights.sum(0))
    # a bfloat16 output where the next layer takes the products' dtype (attention's q, k, v)
    assert layer(x, keep_product_dtype=True).dtype == dtype


def test_bad_buffers_are_refused_not_read_past():
    kernel = grouped_kernel._kernel
    if kernel is None:
        pytest.skip("the grouped C kernel is not built")
    x = np.zeros(4 * 8, np.float32)
    out = np.zeros(4 * 8, np.float32)
    cols = np.arange(8, dtype=np.int32)
    weights = np.zeros(64, np.float32)
    good = np.array([8, 8, 0, 0, 0], np.int64)
    none = np.zeros(0, np.float32)

    def forward(x=x, cols=cols, groups=good, packed=none, bf16=False, x_half=False) -> None:
        kernel.forward(x, cols, weights, none, groups, out, packed, 4, 8, 8, False, bf16,
                       x_half, False)

    forward()
    with pytest.raises(ValueError, match="outside"):  # a group past the outputs
        forward(groups=np.array([8, 8, 1, 0, 0], np.int64))
    with pytest.raises(ValueError, match="outside"):  # a column past the input
        forward(cols=np.full(8, 8, np.int32))
    with pytest.raises(ValueError, match="x"):  # fewer rows than said
        forward(x=x[:-1])
    with pytest.raises(ValueError, match="bfloat16"):  # bfloat16 x without bfloat16 products
        forward(x=np.zeros(4 * 8, np.int16), x_half=True)
    if grouped_kernel.AVAILABLE_BF16:
        forward(packed=np.zeros(4 * 8, np.int16), bf16=True)
        with pytest.raises(ValueError, match="packed"):  # no room for the packed inputs
            forward(packed=np.zeros(4 * 8 - 1, np.int16), bf16=True)
        with pytest.raises(ValueError, match="packed x"):  # the backward's packed inputs short
            kernel.backward(np.zeros(4 * 8 - 1, np.int16), cols, weights, out, good,
                            np.zeros(4 * 8, np.float32), np.zeros(64, np.float32), 4, 8, 8,
                            True, False, False)


@pytest.mark.parametrize(("dtype", "flag", "amx", "name"), [
    ("torch.float32", "grouped_kernel_products", False, "c-avx2"),
    ("torch.bfloat16", "grouped_kernel_bf16_products", False, "c-avx512bf16"),
    ("torch.bfloat16", "grouped_kernel_bf16_products", True, "c-amx"),
])
def test_the_fingerprint_names_the_kernel_where_training_takes_it(monkeypatch, dtype, flag,
                                                                  amx, name):
    from parley.ml import torch_env
    from parley.nlu.neural.diet import DIETClassifier

    monkeypatch.setattr(torch_env, "known_matmul_dtype", lambda: dtype)
    monkeypatch.setattr(torch_env, "dense_grouped_products", lambda: False)
    monkeypatch.setattr(torch_env, "grouped_kernel_amx_products", lambda: amx)
    for wanted in (True, False):
        monkeypatch.setattr(torch_env, flag, lambda w=wanted: w)
        found = DIETClassifier.runtime_fingerprint()
        assert (found.get("grouped_products") == name) is wanted


def test_the_bfloat16_kernel_is_wanted_only_where_the_products_do_not_run_dense(monkeypatch):
    """Where the dense product is asked for (``PARLEY_GROUPED_DENSE=1``, or AMX tiles the
    kernel cannot have), the kernel stays out; ``PARLEY_GROUPED_KERNEL=0`` keeps it out."""
    from parley.ml import torch_env

    monkeypatch.setattr(torch_env, "dense_grouped_products", lambda: True)
    assert not torch_env.grouped_kernel_bf16_products()
    monkeypatch.setattr(torch_env, "dense_grouped_products", lambda: False)
    monkeypatch.setenv("PARLEY_GROUPED_KERNEL", "0")
    assert not torch_env.grouped_kernel_bf16_products()


def test_on_amx_cpus_the_kernel_takes_the_tiles_unless_dense_is_asked_for(monkeypatch):
    """An AMX CPU whose OS lends the tiles runs the kernel's products on them, not one dense
    product a layer; ``PARLEY_GROUPED_DENSE=1`` or ``PARLEY_GROUPED_KERNEL=0`` turn back to
    the dense product; a CPU without AMX never takes the tiles."""
    from parley.ml import torch_env

    flags = {"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16",
             "amx_bf16", "amx_tile"}
    monkeypatch.setattr(torch_env, "_cpu_flags", lambda: flags)
    monkeypatch.setattr(torch_env, "_torch_has_onednn", lambda: True)  # (bfloat16 surely)
    monkeypatch.delenv("PARLEY_GROUPED_DENSE", raising=False)
    monkeypatch.delenv("PARLEY_GROUPED_KERNEL", raising=False)
    if grouped_kernel.AVAILABLE_AMX:  # (the OS must lend this process the tiles)
        assert torch_env.grouped_kernel_amx_products() and not torch_env.dense_grouped_products()
    monkeypatch.setenv("PARLEY_GROUPED_DENSE", "1")
    assert not torch_env.grouped_kernel_amx_products() and torch_env.dense_grouped_products()
    monkeypatch.setenv("PARLEY_GROUPED_DENSE", "")
    monkeypatch.setenv("PARLEY_GROUPED_KERNEL", "0")
    assert not torch_env.grouped_kernel_amx_products() and torch_env.dense_grouped_products()
    monkeypatch.setattr(torch_env, "_cpu_flags", lambda: flags - {"amx_bf16", "amx_tile"})
    monkeypatch.delenv("PARLEY_GROUPED_KERNEL")
    assert not torch_env.grouped_kernel_amx_products() and not torch_env.dense_grouped_products()


def test_an_amx_cpu_whose_kernel_products_are_not_taken_keeps_the_dense_product(monkeypatch):
    """The kernel's bfloat16 products are taken only where the products are surely bfloat16
    (:func:`torch_env.bfloat16_certain`): with a cap on oneDNN's instruction set, or a
    PyTorch without oneDNN's headers, an AMX CPU whose tiles the kernel could use ran its
    grouped layers neither through the kernel nor as the dense product, but batched — the
    slowest of the three there (docs/lab-notes/diet-training-profile.md)."""
    from parley.ml import torch_env

    flags = {"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16",
             "amx_bf16", "amx_tile"}
    monkeypatch.setattr(torch_env, "_cpu_flags", lambda: flags)
    monkeypatch.setattr(torch_env, "grouped_kernel_amx_products", lambda: True)
    monkeypatch.setattr(torch_env, "_torch_has_onednn", lambda: True)
    for name in ("PARLEY_GROUPED_DENSE", "PARLEY_GROUPED_KERNEL", "PARLEY_BF16",
                 "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(name, raising=False)
    assert not torch_env.dense_grouped_products()  # the kernel takes the tiles
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert torch_env.dense_grouped_products() and not torch_env.grouped_kernel_bf16_products()
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setattr(torch_env, "_torch_has_onednn", lambda: False)
    assert torch_env.dense_grouped_products() and not torch_env.grouped_kernel_bf16_products()


def test_ci_should_have_built_the_grouped_kernel():
    """CI sets PARLEY_REQUIRE_C_KERNEL: a build that quietly failed would leave training on
    the slower torch products (and the tests above skipped)."""
    if not os.environ.get("PARLEY_REQUIRE_C_KERNEL"):
        pytest.skip("PARLEY_REQUIRE_C_KERNEL is not set (CI sets it)")
    assert grouped_kernel._kernel is not None, "parley/ml/_grouped.c was not built (pip install -e .)"
