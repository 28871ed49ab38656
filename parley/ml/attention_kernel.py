"""Attention within each message through the C kernel ``parley/ml/_attention.c``.

A transformer row attends only to the rows of its own message (or dialogue; a padding row
to itself). torch's path (:meth:`parley.ml.layers.MultiHeadAttention._attention`) scores
every pair of rows in a block of 32 and masks the pairs across messages; the kernel walks
each message's rows once, forward and backward, in one call each: scores, softmax and the
weighted sums in float32 from the projection's float32 or bfloat16, each result rounded
once where it is stored. Used for plain attention — no attention dropout, no relative
positions (Rasa's defaults for DIET and TED) — where the kernel is built; a model trained
with it differs from torch's in the last bits (its softmax is not rounded to bfloat16
before the weighted sum), so the learned components' fingerprints name it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from parley.ml.c_kernels import load_kernel
from parley.ml.tensor_memory import as_array
from parley.ml.torch_env import ATTENTION_KERNEL_VERSION

_kernel = load_kernel("_attention", version=ATTENTION_KERNEL_VERSION)
AVAILABLE = _kernel is not None

_DTYPES = (torch.float32, torch.bfloat16)


def takes(projected: torch.Tensor) -> bool:
    """Whether the kernel can take this query-key-value projection (rows × 3·units)."""
    return AVAILABLE and projected.dtype in _DTYPES and projected.dim() == 2


def run_starts(row_positions: torch.Tensor) -> np.ndarray:
    """Where each run of rows that attend to one another starts, and the row count after
    the last: a message's (or dialogue's) rows lie together and count from 0 (a padding
    row is 0 too, a run of its own)."""
    positions = row_positions.numpy()
    starts = np.flatnonzero(positions == 0)
    return np.append(starts, len(positions)).astype(np.int64)


def attend(projected: torch.Tensor, starts: np.ndarray, heads: int, depth: int,
           causal: bool) -> torch.Tensor:
    """Each row's attention over its run (rows × heads·depth, the projection's dtype):
    softmax(q·kᵀ / √depth)·v per head, each head's ``depth`` columns side by side."""
    return _MessageAttention.apply(projected, starts, heads, depth, causal)  # type: ignore[no-any-return]


class _MessageAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, projected: torch.Tensor, starts: np.ndarray, heads: int,  # type: ignore[override]
                depth: int, causal: bool) -> torch.Tensor:
        assert _kernel is not None, "the C kernel is not built: check AVAILABLE first"
        projected = projected.contiguous()
        rows = projected.shape[0]
        lengths = np.diff(starts)
        weights = np.empty(int((lengths * lengths).sum()) * heads, dtype=np.float32)
        out = projected.new_empty(rows, heads * depth)
        bf16 = projected.dtype == torch.bfloat16
        scale = 1.0 / float(np.sqrt(depth))
        _kernel.forward(as_array(projected), starts, heads, depth, scale, causal, bf16,
                        as_array(out), weights)
        ctx.save_for_backward(projected)
        ctx.attention = (starts, heads, depth, scale, causal, bf16, weights)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        assert _kernel is not None
        (projected,) = ctx.saved_tensors
        starts, heads, depth, scale, causal, bf16, weights = ctx.attention
        if grad.dtype not in _DTYPES:
            grad = grad.float()
        grad = grad.contiguous()
        out = torch.empty_like(projected)
        _kernel.backward(as_array(projected), starts, heads, depth, scale, causal, bf16, weights,
                         as_array(grad), grad.dtype == torch.bfloat16, as_array(out))
        return out, None, None, None, None
