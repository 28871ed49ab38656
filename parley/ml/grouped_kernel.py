"""A grouped layer's float32 training products through the C kernel ``parley/ml/_grouped.c``:
all groups in one call, forward and backward (see :mod:`parley.ml.grouped`).

Used where :func:`parley.ml.torch_env.grouped_kernel_products` says so — an x86 CPU with
AVX2 and FMA and no AVX-512 (whose float32 products MKL runs twice as wide), the kernel
built, ``PARLEY_GROUPED_KERNEL`` not ``0`` — and training multiplies in float32. Its sums run
in another order than MKL's, so a model trained with it differs in the last bits; the
DIET model's fingerprint names the kernel (``runtime_fingerprint``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from parley.ml.c_kernels import load_kernel
from parley.ml.torch_env import GROUPED_KERNEL_VERSION, grouped_kernel_products

if TYPE_CHECKING:
    from parley.ml.grouped import GroupedLinear

_kernel = load_kernel("_grouped", version=GROUPED_KERNEL_VERSION)
AVAILABLE = _kernel is not None and bool(_kernel.supported())
WANTED = AVAILABLE and grouped_kernel_products()  # what training uses
_NOTHING = np.zeros(0, dtype=np.float32)


def layout(layer: GroupedLinear) -> tuple[np.ndarray, np.ndarray]:
    """The layer's groups as the kernel reads them: per group (fan-in, width, first output
    column, kernel offset, column-list offset), and the column lists — for each group's
    kernel rows in order, the input column that row multiplies (the shuffle folded in)."""
    kept = layer.__dict__.get("_kernel_layout")
    key = (layer.order.data_ptr(), layer.order._version)
    if kept is not None and kept[0] == key:
        return kept[1]  # type: ignore[no-any-return]
    order = layer.order.numpy()
    table, columns = [], []
    kernel_offset = column_offset = 0
    for slices, (o0, o1), (fan_in, width) in zip(layer.input_slices, layer.output_bounds,
                                                 layer.shapes, strict=True):
        rows = np.concatenate([order[a:b] for a, b in slices])
        assert len(rows) == fan_in
        table.append((fan_in, width, o0, kernel_offset, column_offset))
        columns.append(rows)
        kernel_offset += fan_in * width
        column_offset += fan_in
        assert o1 - o0 == width
    value = (np.asarray(table, dtype=np.int64).reshape(-1),
             np.ascontiguousarray(np.concatenate(columns), dtype=np.int32))
    layer.__dict__["_kernel_layout"] = (key, value)
    return value


def forward(layer: GroupedLinear, x: torch.Tensor, kernel: torch.Tensor,
            bias: torch.Tensor | None) -> torch.Tensor:
    """``x @ (the groups' kernels) + bias`` for row-major float32 ``x`` (rows × in)."""
    assert _kernel is not None, "the C kernel is not built: check AVAILABLE first"
    table, columns = layout(layer)
    rows = x.shape[0]
    out = x.new_empty(rows, layer.out_features)
    if rows:
        _kernel.forward(_array(x), columns, _array(kernel),
                        _NOTHING if bias is None else _array(bias), table, _array(out),
                        rows, layer.in_features, layer.out_features, bias is not None)
    return out


def backward(layer: GroupedLinear, x: torch.Tensor, kernel: torch.Tensor, grad: torch.Tensor,
             want_x: bool, want_kernel: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The input and kernel gradients (None where not wanted) of :func:`forward`, for the
    row-major float32 ``grad`` of its output."""
    assert _kernel is not None, "the C kernel is not built: check AVAILABLE first"
    table, columns = layout(layer)
    rows = x.shape[0]
    grad_x = x.new_empty(x.shape) if want_x else None
    grad_kernel = torch.empty_like(kernel) if want_kernel else None
    if rows == 0:
        return (grad_x.zero_() if grad_x is not None else None,
                grad_kernel.zero_() if grad_kernel is not None else None)
    if want_x or want_kernel:
        _kernel.backward(_array(x), columns, _array(kernel), _array(grad), table,
                         _NOTHING if grad_x is None else _array(grad_x),
                         _NOTHING if grad_kernel is None else _array(grad_kernel),
                         rows, layer.in_features, layer.out_features)
    return grad_x, grad_kernel


def _array(tensor: torch.Tensor) -> np.ndarray:
    """The tensor's memory as a numpy array (no copy: C-contiguous float32 already)."""
    assert tensor.dtype == torch.float32 and tensor.is_contiguous()
    return tensor.detach().numpy()
