"""Inverted dropout through the C kernel ``parley/ml/_dropout.c``, when it was built and
computes on this machine exactly what torch does (see :func:`usable`).

A dropout here keeps one random byte an element (the element stays where its byte is at
least the threshold) and multiplies in one pass, forward and backward; the bytes are the
ones :func:`parley.ml.layers.dropout_mask` draws with numpy, so a model comes out bitwise
the same with or without the kernel. Where the kernel is missing (:data:`AVAILABLE`
False; see :mod:`parley.ml.c_kernels`) or a tensor is neither float32 nor bfloat16, callers run the
mask-and-multiply code in :mod:`parley.ml.layers`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from parley.ml.c_kernels import load_kernel
from parley.ml.tensor_memory import as_array

# ``DROPOUT_KERNEL_VERSION`` in _dropout.c
_kernel = load_kernel("_dropout", version=3)
AVAILABLE = _kernel is not None

_DTYPES = (torch.float32, torch.bfloat16)


def stream_bytes(seed: int, count: int) -> np.ndarray:
    """The first ``count`` bytes of numpy's ``SFC64(seed)`` stream (``random_raw``'s words
    read as their bytes in memory), drawn by the kernel without the words array."""
    assert _kernel is not None, "the C kernel is not built: check AVAILABLE first"
    state = np.random.SFC64(seed).state["state"]["state"].copy()
    out = np.empty(count, dtype=np.uint8)
    _kernel.stream(state, out)
    return out


def usable() -> bool:
    """Whether the kernel is built and, on this machine, multiplies bit for bit as torch's
    kernels do (float32 and bfloat16 products, addcmul's fused multiply-add): checked once,
    on a few thousand random elements."""
    global _usable
    if _usable is None:
        _usable = AVAILABLE and _agrees_with_torch()
    return _usable


_usable: bool | None = None


def _agrees_with_torch() -> bool:
    # (a length that is no multiple of any vector width: the loops' tails are checked too)
    generator = torch.Generator().manual_seed(0)
    x, y = (torch.randn(4099, generator=generator) * 8 for _ in range(2))
    keep = stream_bytes(1, 4099)
    threshold, scale = 51, 256.0 / 205
    mask = torch.from_numpy((keep >= threshold) * np.float32(scale))
    try:
        fused_ok = _kernel.has_fma() and torch.equal(  # type: ignore[union-attr]
            add_scaled(x, y, keep, threshold, scale), torch.addcmul(x, y, mask))
        same = [torch.equal(scaled(a, keep, threshold, scale), a * mask.to(a.dtype))
                for a in (x, x.to(torch.bfloat16))]
    except (RuntimeError, ValueError):
        return False
    global _fused
    _fused = bool(fused_ok)
    return all(same)


_fused = False


def fused_add_usable() -> bool:
    """Whether ``x + dropout(y)`` may run as the kernel's fused multiply-add."""
    return usable() and _fused


def takes(t: torch.Tensor) -> bool:
    """Whether the kernel multiplies ``t``'s dtype."""
    return t.dtype in _DTYPES


def scaled(x: torch.Tensor, keep: np.ndarray, threshold: int, scale: float) -> torch.Tensor:
    """``x`` times ``scale`` (in x's dtype) where ``keep`` (x's elements in their logical
    order) is at least ``threshold``, else times 0; a new contiguous tensor.

    An ``x`` laid out otherwise is copied contiguous first (the feed-forward layer's
    dropout gets its gradient as a transpose): torch's transposing copy and one contiguous
    pass take ~0.75 of a pass that walks the transpose (or of torch's multiplication of it)."""
    assert _kernel is not None
    x = x.contiguous()
    out = torch.empty_like(x)
    bfloat16 = x.dtype == torch.bfloat16
    _kernel.scale(as_array(x), keep, threshold, _in_bfloat16(scale) if bfloat16 else scale,
                  bfloat16, as_array(out))
    return out


def _in_bfloat16(scale: float) -> float:
    """``scale`` rounded to bfloat16: what a bfloat16 mask holds (kept per value)."""
    rounded = _ROUNDED.get(scale)
    if rounded is None:
        rounded = _ROUNDED[scale] = float(torch.tensor(scale, dtype=torch.bfloat16))
    return rounded


_ROUNDED: dict[float, float] = {}


def add_scaled(x: torch.Tensor, y: torch.Tensor, keep: np.ndarray, threshold: int,
               scale: float) -> torch.Tensor:
    """``x + y × (scale or 0)`` as torch's ``addcmul`` computes it; x and y contiguous
    float32 of one shape."""
    assert _kernel is not None
    out = torch.empty_like(x)
    _kernel.add_scaled(as_array(x), as_array(y), keep, threshold, scale, as_array(out))
    return out


class Dropped(torch.autograd.Function):
    """``x × mask`` with the mask kept as bytes (one an element, not a tensor of x's dtype)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, keep: np.ndarray, threshold: int,  # type: ignore[override]
                scale: float) -> torch.Tensor:
        ctx.drop = (keep, threshold, scale)
        return scaled(x, keep, threshold, scale)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        return scaled(grad, *ctx.drop), None, None, None


class AddDropped(torch.autograd.Function):
    """``x + y × mask`` (a residual connection), the mask kept as bytes."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, y: torch.Tensor, keep: np.ndarray,  # type: ignore[override]
                threshold: int, scale: float) -> torch.Tensor:
        ctx.drop = (keep, threshold, scale)
        return add_scaled(x, y, keep, threshold, scale)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        grad_y = scaled(grad, *ctx.drop) if ctx.needs_input_grad[1] else None
        return grad, grad_y, None, None, None


def gelu_scaled(x: torch.Tensor, keep: np.ndarray | None, threshold: int,
                scale: float) -> torch.Tensor:
    """``gelu(x)`` (:mod:`parley.ml.gelu`'s) times ``scale`` or 0 where ``keep`` is at least
    or below ``threshold``; without ``keep``, ``gelu(x)``. A new contiguous tensor."""
    assert _kernel is not None
    x = x.contiguous()
    out = torch.empty_like(x)
    bfloat16 = x.dtype == torch.bfloat16
    _kernel.gelu(as_array(x), b"" if keep is None else keep, threshold,
                 _in_bfloat16(scale) if bfloat16 else scale, bfloat16, as_array(out))
    return out


def gelu_grad_scaled(x: torch.Tensor, grad: torch.Tensor, keep: np.ndarray | None,
                     threshold: int, scale: float) -> torch.Tensor:
    """The gradient at ``x`` of :func:`gelu_scaled`, given the output's ``grad``."""
    assert _kernel is not None
    grad = grad.contiguous()
    out = torch.empty_like(grad)
    bfloat16 = x.dtype == torch.bfloat16
    _kernel.gelu_grad(as_array(x), as_array(grad), b"" if keep is None else keep, threshold,
                      _in_bfloat16(scale) if bfloat16 else scale, bfloat16, as_array(out))
    return out


class GeluDropped(torch.autograd.Function):
    """``gelu(x) × mask`` (no mask: ``gelu(x)``), the mask kept as bytes; x contiguous."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, keep: np.ndarray | None,  # type: ignore[override]
                threshold: int, scale: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.drop = (keep, threshold, scale)
        return gelu_scaled(x, keep, threshold, scale)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return gelu_grad_scaled(x, grad, *ctx.drop), None, None, None
