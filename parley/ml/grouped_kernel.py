"""A grouped layer's training products through the C kernel ``parley/ml/_grouped.c``: all
groups in one call, forward and backward (see :mod:`parley.ml.grouped`), float32 in and out.

Two flavours. In float32 (AVX2 + FMA) where
:func:`parley.ml.torch_env.grouped_kernel_products` says so — an x86 CPU with AVX2 and FMA
and no AVX-512 (whose float32 products MKL runs twice as wide), the kernel built,
``PARLEY_GROUPED_KERNEL`` not ``0`` — and training multiplies in float32. In bfloat16
(``_grouped_bf16.c``, AVX512_BF16) where :func:`parley.ml.torch_env.grouped_kernel_bf16_products`
says so — training multiplies in bfloat16 — its products on AMX tiles (``_grouped_amx.c``)
where the CPU and the OS give them (:data:`AMX`). Their sums run in another order than MKL's
or oneDNN's, so a model trained with them differs in the last bits; the DIET model's
fingerprint names the kernel (``runtime_fingerprint``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from parley.ml.c_kernels import load_kernel
from parley.ml.tensor_memory import as_array
from parley.ml.torch_env import (
    GROUPED_KERNEL_VERSION,
    grouped_kernel_amx_products,
    grouped_kernel_bf16_products,
    grouped_kernel_products,
)

if TYPE_CHECKING:
    from parley.ml.grouped import GroupedLinear

_kernel = load_kernel("_grouped", version=GROUPED_KERNEL_VERSION)
AVAILABLE = _kernel is not None and bool(_kernel.supported())
WANTED = AVAILABLE and grouped_kernel_products()  # what float32 training uses
AVAILABLE_BF16 = _kernel is not None and bool(_kernel.supported_bf16())
WANTED_BF16 = AVAILABLE_BF16 and grouped_kernel_bf16_products()  # what bfloat16 training uses
AVAILABLE_AMX = AVAILABLE_BF16 and bool(_kernel.supported_amx())  # type: ignore[union-attr]
AMX = WANTED_BF16 and grouped_kernel_amx_products()  # bfloat16 training's products on AMX tiles
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


def packed_words(layer: GroupedLinear, amx: bool = False) -> int:
    """The bfloat16 words a row of the layer's inputs packs into for the bfloat16 products:
    each group's fan-in, rounded up to even (a group's pairs start on a 32-bit word); on AMX
    tiles to a multiple of 32 (a tile row's 16 pairs; zeros between the groups)."""
    align = 32 if amx else 2
    return sum(-(-fan_in // align) * align for fan_in, _ in layer.shapes)


def forward(layer: GroupedLinear, x: torch.Tensor, kernel: torch.Tensor,
            bias: torch.Tensor | None, bf16: bool = False,
            out_dtype: torch.dtype = torch.float32, amx: bool = False
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """``x @ (the groups' kernels) + bias`` for row-major float32 ``x`` (rows × in), and what
    :func:`backward` takes for ``x``. With ``bf16`` the products take ``x`` and the kernel
    rounded to bfloat16 (sums in float32), ``x`` and the output (``out_dtype``) may be
    bfloat16, and the backward takes ``x`` as the products read it: rounded, in the groups'
    order (:func:`packed_words` a row; half of a float32 ``x``'s bytes or fewer). ``amx``
    (with ``bf16``): the products on AMX tiles; its backward must say so too."""
    assert _kernel is not None, "the C kernel is not built: check AVAILABLE first"
    table, columns = layout(layer)
    rows = x.shape[0]
    out = x.new_empty(rows, layer.out_features, dtype=out_dtype)
    packed = (x.new_empty(rows, packed_words(layer, amx), dtype=torch.bfloat16) if bf16
              else x)
    if rows:
        _kernel.forward(as_array(x), columns, as_array(kernel),
                        _NOTHING if bias is None else as_array(bias), table, as_array(out),
                        as_array(packed) if bf16 else _NOTHING,
                        rows, layer.in_features, layer.out_features, bias is not None,
                        _flavour(bf16, amx), x.dtype == torch.bfloat16,
                        out_dtype == torch.bfloat16)
    return out, packed


def backward(layer: GroupedLinear, saved: torch.Tensor, kernel: torch.Tensor, grad: torch.Tensor,
             want_x: bool, want_kernel: bool, bf16: bool = False,
             x_dtype: torch.dtype = torch.float32, amx: bool = False
             ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The input and kernel gradients (None where not wanted) of :func:`forward`, for the
    row-major float32 ``grad`` of its output; ``saved``: what the forward returned beside its
    output. With ``bf16`` the gradient is rounded to bfloat16 as torch's bfloat16 backward
    rounds it (and may come as bfloat16), and so is the input gradient, which comes in
    ``x_dtype`` (the forward's ``x``'s); the kernel's in float32."""
    assert _kernel is not None, "the C kernel is not built: check AVAILABLE first"
    table, columns = layout(layer)
    rows = saved.shape[0]
    grad_x = saved.new_empty(rows, layer.in_features, dtype=x_dtype) if want_x else None
    grad_kernel = torch.empty_like(kernel) if want_kernel else None
    if rows == 0:
        return (grad_x.zero_() if grad_x is not None else None,
                grad_kernel.zero_() if grad_kernel is not None else None)
    if want_x or want_kernel:
        _kernel.backward(as_array(saved), columns, as_array(kernel), as_array(grad), table,
                         _NOTHING if grad_x is None else as_array(grad_x),
                         _NOTHING if grad_kernel is None else as_array(grad_kernel),
                         rows, layer.in_features, layer.out_features, _flavour(bf16, amx),
                         x_dtype == torch.bfloat16, grad.dtype == torch.bfloat16)
    return grad_x, grad_kernel


def _flavour(bf16: bool, amx: bool) -> int:
    """The C call's ``bf16``: 0 float32, 1 bfloat16 on AVX-512 registers, 2 on AMX tiles."""
    if amx and not bf16:
        raise ValueError("the AMX products are bfloat16 ones: amx needs bf16")
    return 2 if amx else int(bf16)
