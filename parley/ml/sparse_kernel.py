"""A sparse input layer's weight gradient through the C kernel ``parley/ml/_sparse.c``,
when it was built (see :mod:`parley.ml.c_kernels`); :class:`parley.ml.layers.SparseDense`
checks :data:`AVAILABLE` and otherwise sorts the non-zeros by column in torch."""

from __future__ import annotations

import torch

from parley.ml.c_kernels import load_kernel
from parley.ml.torch_env import SPARSE_KERNEL_VERSION

_kernel = load_kernel("_sparse", version=SPARSE_KERNEL_VERSION)
AVAILABLE = _kernel is not None


def weight_grad(indices: torch.Tensor, offsets: torch.Tensor, values: torch.Tensor,
                grad: torch.Tensor, columns: int) -> torch.Tensor:
    """``rowsᵀ @ grad`` (columns × units, float32) for the sparse rows given as
    ``embedding_bag`` takes them (int64 ``indices`` and ``offsets``, float32 ``values``):
    the non-zeros added in row order."""
    assert _kernel is not None, "the C kernel is not built: check AVAILABLE first"
    grad = grad.contiguous().float()
    out = grad.new_empty(columns, grad.shape[1])
    _kernel.weight_grad(indices.numpy(), offsets.numpy(), values.detach().contiguous().numpy(),
                        grad.numpy(), grad.shape[1], out.numpy())
    return out
