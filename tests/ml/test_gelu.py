"""The transformer's GELU (parley/ml/gelu.py): the C kernel's pass (with the dropout after
it) against the torch code it stands in for and the numpy predictor's activation — the same
bits — and its slope against the exact GELU's derivative."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from parley.ml import dropout_kernel, layers
from parley.ml.gelu import RationalGelu, gelu_slope
from parley.ml.numpy_net import gelu as numpy_gelu
from parley.ml.torch_env import drawing_from

needs_kernel = pytest.mark.skipif(not dropout_kernel.AVAILABLE,
                                  reason="the dropout C kernel (which has the GELU) is not built")


def _inputs(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1)) * 4
    # both ends of the clamped range, a signed zero, a huge and a denormal input (no NaN
    # or infinity: a NaN's bits vary)
    edges = torch.tensor([5.6568542, -5.6568542, 9.0, -9.0, -0.0, 1e30, 1e-40])
    x.view(-1)[:7] = edges[: x.numel()]
    return x.to(dtype)


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int16) if t.dtype == torch.bfloat16 else t.view(torch.int32)


def _through(x: torch.Tensor, rate: float, training: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Output and input gradient of ``dropout(gelu(x))``."""
    x = x.detach().requires_grad_()
    with drawing_from(torch.Generator().manual_seed(7)):
        out = layers.gelu_dropout(x, rate, training)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(3)).to(out.dtype)
    out.backward(grad)
    return out.detach(), x.grad


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(37, 1029), (5,), (3, 4, 5)])
@pytest.mark.parametrize(("rate", "training"), [(0.2, True), (0.2, False), (0.0, True)])
def test_the_kernel_computes_the_torch_codes_bits_forward_and_backward(dtype, shape, rate,
                                                                       training, monkeypatch):
    """Dropout included: the kernel draws the bytes the torch path's dropout draws."""
    x = _inputs(shape, dtype)
    mine = _through(x, rate, training)
    monkeypatch.setattr(dropout_kernel, "AVAILABLE", False)
    monkeypatch.setattr(dropout_kernel, "_usable", False)
    theirs = _through(x, rate, training)
    for a, b in zip(mine, theirs, strict=True):
        assert a.dtype == b.dtype == dtype and torch.equal(_bits(a), _bits(b))


@needs_kernel
def test_a_dropout_drops_what_the_bytes_say():
    x = _inputs((64, 256), torch.float32)
    out, _ = _through(x, 0.5, True)
    plain, _ = _through(x, 0.0, False)
    kept = out != 0
    assert 0.4 < kept.float().mean() < 0.6
    assert torch.equal(out[kept], plain[kept] * 2)


@needs_kernel
def test_training_activates_as_the_numpy_predictor_bit_for_bit():
    x = _inputs((41, 1024), torch.float32)
    with torch.no_grad():
        ours = layers.gelu(x)
    expected = numpy_gelu(x.numpy().copy())
    assert np.array_equal(ours.numpy().view(np.int32), expected.view(np.int32))


def test_the_torch_code_activates_as_the_numpy_predictor_bit_for_bit():
    x = _inputs((41, 1024), torch.float32)
    with torch.no_grad():
        ours = RationalGelu.apply(x)
    assert np.array_equal(ours.numpy().view(np.int32),
                          numpy_gelu(x.numpy().copy()).view(np.int32))


def test_the_activation_and_its_slope_are_the_exact_gelus_within_float32_error():
    x = torch.linspace(-12, 12, 200_001, dtype=torch.float64)
    exact = x.clone().requires_grad_()
    torch.nn.functional.gelu(exact).sum().backward()
    ours = RationalGelu.apply(x.float())
    assert torch.allclose(ours.double(), torch.nn.functional.gelu(x), rtol=0, atol=4e-6)
    slope_error = (gelu_slope(x.float()).double() - exact.grad).abs()
    assert slope_error.max() < 1e-5
    # away from where erf's argument is held at ±4 it is float32 rounding only
    assert slope_error[x.abs() < 5].max() < 2e-6


def test_the_slope_is_the_derivative_of_the_activation():
    """Central differences in float64 of the float32 activation's rational function."""
    x = torch.linspace(-5.5, 5.5, 1_001, dtype=torch.float32)
    h = 1e-2
    numeric = (RationalGelu.apply(x + h).double() - RationalGelu.apply(x - h).double()) / (2 * h)
    assert (gelu_slope(x).double() - numeric).abs().max() < 1e-3
    assert math.isclose(float(gelu_slope(torch.tensor([0.0]))), 0.5, abs_tol=1e-7)


@needs_kernel
def test_the_kernel_refuses_buffers_of_the_wrong_size():
    kernel = dropout_kernel._kernel
    x = np.zeros(10, np.float32)
    with pytest.raises(ValueError, match="bytes"):
        kernel.gelu(x, np.zeros(9, np.uint8), 26, 1.25, False, x.copy())
    with pytest.raises(ValueError, match="out"):
        kernel.gelu(x, b"", 0, 1.0, False, np.zeros(9, np.float32))
    with pytest.raises(ValueError, match="grad"):
        kernel.gelu_grad(x, np.zeros(11, np.float32), b"", 0, 1.0, False, x.copy())
    with pytest.raises(ValueError, match="threshold"):
        kernel.gelu_grad(x, x, np.zeros(10, np.uint8), -1, 1.0, False, x.copy())
