"""The grouped C kernel (parley/ml/_grouped.c, _grouped_bf16.c) at its edges: arguments a
caller got wrong are refused with an exception, never read or written past (sizes whose
products wrap around int64, group tables that wrap, buffers of the wrong item size); a
layer the kernel cannot take goes to torch; odd shapes (fan-in or width 1, a lone group,
inputs past 1,024, rows around the 6-row tile and the 128-row chunk) and layers trained
on two threads at once against the float64 layer and against one thread."""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="parley.ml needs PyTorch (pip install 'parley[torch]')")

from parley.ml import grouped, grouped_kernel  # noqa: E402
from tests.ml.test_grouped_kernel import FLAVOURS, _dense, _flat_by_group  # noqa: E402

needs_bf16 = pytest.mark.skipif(not grouped_kernel.AVAILABLE_BF16,
                                reason="the grouped C kernel is not built, or the CPU lacks AVX512_BF16")
BIG = np.iinfo(np.int64).max - 3  # an offset that wraps past int64 once a size is added


Array = np.ndarray | None


def _raw_forward(bf16: bool, *, x: Array = None, cols: Array = None, weights: Array = None,
                 groups: Array = None, out: Array = None, packed: Array = None, rows: int = 4,
                 in_f: int = 8, out_f: int = 8) -> None:
    """The C forward of one 8 × 8 group on 4 rows, with any argument replaced."""
    kernel = grouped_kernel._kernel
    if kernel is None:
        pytest.skip("the grouped C kernel is not built")
    kernel.forward(np.ones(32, np.float32) if x is None else x,
                   np.arange(8, dtype=np.int32) if cols is None else cols,
                   np.ones(64, np.float32) if weights is None else weights,
                   np.zeros(0, np.float32),
                   np.array([8, 8, 0, 0, 0], np.int64) if groups is None else groups,
                   np.zeros(32, np.float32) if out is None else out,
                   (np.zeros(32 if bf16 else 0, np.int16) if packed is None else packed),
                   rows, in_f, out_f, False, bf16, False, False)


def _raw_backward(bf16: bool, *, saved: Array = None, cols: Array = None, weights: Array = None,
                  grad: Array = None, groups: Array = None, grad_x: Array = None,
                  grad_kernel: Array = None, rows: int = 4, in_f: int = 8,
                  out_f: int = 8) -> None:
    kernel = grouped_kernel._kernel
    if kernel is None:
        pytest.skip("the grouped C kernel is not built")
    kernel.backward(np.zeros(32, np.int16 if bf16 else np.float32) if saved is None else saved,
                    np.arange(8, dtype=np.int32) if cols is None else cols,
                    np.ones(64, np.float32) if weights is None else weights,
                    np.ones(32, np.float32) if grad is None else grad,
                    np.array([8, 8, 0, 0, 0], np.int64) if groups is None else groups,
                    np.zeros(32, np.float32) if grad_x is None else grad_x,
                    np.zeros(64, np.float32) if grad_kernel is None else grad_kernel,
                    rows, in_f, out_f, bf16, False, False)


@pytest.mark.parametrize("bf16", FLAVOURS)
@pytest.mark.parametrize("entry", [
    [8, 8, BIG, 0, 0],  # first output column: o0 + width wrapped negative, written before out
    [8, 8, 0, BIG, 0],  # kernel offset: read before the kernel
    [8, 8, 0, 0, BIG],  # column-list offset: read before the column list
], ids=["o0", "koff", "coff"])
def test_a_group_table_whose_offsets_wrap_around_is_refused(bf16, entry):
    """read_groups compared ``offset + size`` with the layer's sizes: an offset near
    INT64_MAX wrapped the sum negative and passed, and the products ran outside the
    buffers (a write before ``out`` for o0)."""
    groups = np.array(entry, np.int64)
    with pytest.raises(ValueError, match="outside"):
        _raw_forward(bf16, groups=groups)
    with pytest.raises(ValueError, match="outside"):
        _raw_backward(bf16, groups=groups)


@pytest.mark.parametrize("bf16", FLAVOURS)
def test_sizes_whose_product_wraps_around_are_refused(bf16):
    """rows × in (and rows × out) wrapped to 0 for rows = 2^61 and 8 columns: empty buffers
    passed the size checks, and the products ran over 2^61 rows of them."""
    empty, rows = np.zeros(0, np.float32), 2 ** 61
    with pytest.raises(ValueError, match="x"):
        _raw_forward(bf16, x=empty, out=empty, packed=np.zeros(0, np.int16), rows=rows)
    with pytest.raises(ValueError, match="grad"):
        _raw_backward(bf16, saved=np.zeros(0, np.int16 if bf16 else np.float32), grad=empty,
                      rows=rows)


@pytest.mark.parametrize("bf16", FLAVOURS)
def test_no_rows_is_refused_with_a_value_error(bf16):
    """rows <= 0 returned NULL without an exception set (a SystemError)."""
    for rows in (0, -1):
        with pytest.raises(ValueError, match="rows"):
            _raw_forward(bf16, rows=rows)
        with pytest.raises(ValueError, match="rows"):
            _raw_backward(bf16, rows=rows)


@pytest.mark.parametrize("bf16", FLAVOURS)
def test_a_group_wider_than_the_inputs_is_refused(bf16):
    """A fan-in past the input's width (columns repeated) passed, and the float32 input
    gradient wrote its column list (in + 16 slots) past the end: 1,000 slots for 17."""
    cols = np.zeros(1000, np.int32)
    groups = np.array([1000, 1, 0, 0, 0], np.int64)
    with pytest.raises(ValueError, match="outside"):
        _raw_forward(bf16, x=np.ones(4, np.float32), cols=cols, weights=np.ones(1000, np.float32),
                     groups=groups, out=np.zeros(4, np.float32),
                     packed=np.zeros(4000 if bf16 else 0, np.int16), in_f=1, out_f=1)
    with pytest.raises(ValueError, match="outside"):
        _raw_backward(bf16, saved=np.zeros(4000, np.int16) if bf16 else np.ones(4, np.float32),
                      cols=cols, weights=np.ones(1000, np.float32), grad=np.ones(4, np.float32),
                      groups=groups, in_f=1, out_f=1, grad_x=np.zeros(4, np.float32),
                      grad_kernel=np.zeros(1000, np.float32))


@pytest.mark.parametrize("bf16", FLAVOURS)
def test_buffers_of_the_wrong_item_size_are_refused_with_a_value_error(bf16):
    """int64 columns or a float64 kernel returned NULL without an exception set: a
    SystemError, not the ValueError every other bad buffer gives."""
    with pytest.raises(ValueError, match="cols"):
        _raw_forward(bf16, cols=np.arange(8, dtype=np.int64))
    with pytest.raises(ValueError, match="kernel"):
        _raw_forward(bf16, weights=np.ones(32, np.float64))
    with pytest.raises(ValueError, match="cols"):
        _raw_backward(bf16, cols=np.arange(8, dtype=np.int16))
    with pytest.raises(ValueError, match="kernel"):
        _raw_backward(bf16, weights=np.ones(32, np.float64))


@needs_bf16
def test_a_bfloat16_layer_in_training_leaves_its_products_to_torch(monkeypatch):
    """A layer whose weights are bfloat16 multiplies in bfloat16 too: the kernel, which
    takes float32 weights, refused them (a SystemError); torch's path takes them."""
    monkeypatch.setattr(grouped_kernel, "WANTED_BF16", True)
    monkeypatch.setattr(grouped, "matmul_dtype", lambda: torch.bfloat16)
    torch.manual_seed(5)
    layer = grouped.GroupedLinear(40, 30, density=0.2).train().to(torch.bfloat16)
    x = torch.randn(11, 40, dtype=torch.bfloat16, requires_grad=True)
    out = layer(x)
    out.float().sum().backward()
    assert out.dtype == x.grad.dtype == layer.kernel.grad.dtype == torch.bfloat16
    dense = _dense(layer, bf16=True)
    expected = x.detach().double() @ dense + layer.bias.detach().double()
    assert torch.allclose(out.double(), expected, rtol=2 ** -6, atol=1e-2)


@pytest.mark.parametrize("bf16", FLAVOURS[1:])  # the register tiles and the AMX tiles
@pytest.mark.parametrize(("in_features", "out_features", "density", "shuffle"), [
    (1, 1, 1.0, True),        # one group of one
    (3, 65, 0.1, True),       # three groups of fan-in 1
    (65, 3, 0.1, False),      # three groups of width 1, shifted
    (33, 100, 0.5, False),    # two groups of odd fan-in (16, 17), shifted with a wrap
    (17, 17, 0.1, True),      # ten groups of fan-in and width 1–2
    (1000, 63, 1.0, True),    # one group, fan-in past a vpermt2w pair of registers
    (2049, 31, 0.2, True),    # inputs past 2,048 (33 registers: an odd last pair)
    (64, 1000, 0.2, False),   # a wide output: panels 12 + 9 lanes
])
@pytest.mark.parametrize("rows", [1, 2, 127, 257])
def test_odd_shapes_match_the_float64_layer_through_autograd(monkeypatch, in_features,
                                                            out_features, density, shuffle,
                                                            rows, bf16):
    """Training through autograd with bfloat16 products on transposed (non-contiguous)
    inputs and gradients: output, input, kernel and bias gradients against the float64
    layer of the bfloat16-rounded values."""
    monkeypatch.setattr(grouped_kernel, "WANTED_BF16", True)
    monkeypatch.setattr(grouped_kernel, "AMX", bf16 == 2)
    monkeypatch.setattr(grouped, "matmul_dtype", lambda: torch.bfloat16)
    torch.manual_seed(rows + in_features)
    layer = grouped.GroupedLinear(in_features, out_features, density, shuffle=shuffle).train()
    with torch.no_grad():
        layer.bias.normal_()
    base = torch.randn(in_features, rows, requires_grad=True)
    x = base.t()
    called = []
    real_forward = grouped_kernel.forward
    monkeypatch.setattr(grouped_kernel, "forward", lambda *a: called.append(1) or real_forward(*a))
    out = layer(x)
    weights = torch.randn(out_features, rows).t()
    out.backward(weights)
    assert called
    dense = _dense(layer, bf16=True)
    xs, ws = x.detach().bfloat16().double(), weights.bfloat16().double()
    assert torch.allclose(out.double(), xs @ dense + layer.bias.detach().double(),
                          rtol=1e-5, atol=1e-5)
    assert torch.allclose(base.grad.t().double(), ws @ dense.t(), rtol=2 ** -7, atol=1e-5)
    assert torch.allclose(layer.kernel.grad.double(), _flat_by_group(layer, xs.t() @ ws),
                          rtol=1e-4, atol=1e-4)
    assert torch.allclose(layer.bias.grad.double(), weights.double().sum(0), rtol=1e-5,
                          atol=1e-4)


@pytest.mark.parametrize("bf16", FLAVOURS)
def test_two_layers_trained_on_two_threads_give_the_bits_of_one_thread(monkeypatch, bf16):
    """The products let go of the interpreter lock: two trainings at once, each its own
    layer, end with the same outputs and weights, bit for bit, as one after the other."""
    dtype = torch.bfloat16 if bf16 else torch.float32
    monkeypatch.setattr(grouped_kernel, "WANTED_BF16" if bf16 else "WANTED", True)
    monkeypatch.setattr(grouped_kernel, "AMX", bf16 == 2)
    monkeypatch.setattr(grouped, "matmul_dtype", lambda: dtype)
    torch.manual_seed(6)
    layers = [grouped.GroupedLinear(256, 1024, density=0.2).train(),
              grouped.GroupedLinear(1024, 256, density=0.2, shuffle=False).train()]
    inputs = [torch.randn(333, 256), torch.randn(200, 1024)]

    def train(k: int) -> list[torch.Tensor]:
        layer = copy.deepcopy(layers[k])
        optimizer = torch.optim.SGD(layer.parameters(), lr=0.01)
        outputs = []
        for _ in range(3):
            optimizer.zero_grad()
            out = layer(inputs[k])
            out.square().sum().backward()
            optimizer.step()
            outputs.append(out.detach())
        return [*outputs, layer.kernel.detach().clone(), layer.bias.detach().clone()]

    alone = [train(0), train(1)]
    found: list[list[torch.Tensor]] = [[], []]
    threads = [threading.Thread(target=lambda k=k: found[k].extend(train(k))) for k in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for one, other in zip(alone, found, strict=True):
        assert len(one) == len(other)
        assert all(torch.equal(a, b) for a, b in zip(one, other, strict=True))
