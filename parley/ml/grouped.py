"""Dense layers with a fraction of the connections (Rasa's ``connection_density``), fast.

:class:`GroupedLinear` is what DIET's transformer and feed-forward layers are built from;
:class:`_GroupedProduct` its forward and backward by hand: in training the groups run as one
batched product (:func:`_batched_product`) in bfloat16 where the CPU has it, or else group by
group in float32 on row-major activations, in place (:func:`_row_major_forward`), or — on
AMX tiles — as one dense product with a zero-filled kernel (:func:`_dense_forward`); where
Parley's C kernel runs them (:mod:`parley.ml.grouped_kernel`: float32 on AVX2 CPUs, bfloat16
on AVX512_BF16 ones without AMX), every group of a layer in one call
(:func:`_kernel_forward`); prediction without gradients multiplies group by group, each
product writing straight into one output.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from parley.ml import grouped_kernel
from parley.ml.torch_env import dense_grouped_products


class GroupedLinear(nn.Module):
    """A dense layer where only a fraction ``density`` of the input→output connections exist.

    Rasa draws the connections at random and multiplies a dense kernel by a 0/1 mask, paying
    for every zero. Here the inputs are shuffled once at random and dealt into
    ``g = round(1 / density)`` groups; the outputs are split into ``g`` groups too, and each
    output group connects to one input group. Every input reaches some outputs, every output
    some inputs, exactly a fraction 1/g of the connections exist — and the layer costs 1/g
    of a dense one. ``density: 1`` is fully connected.

    ``column_major=True`` lays the output out column by column (a transposed view): each
    group's product then writes a contiguous block, and a next layer reading its columns in
    groups reads contiguous blocks too — the feed-forward hidden layer, 4× wide, between
    two grouped layers. (Row-major, a group's columns are strided: the bfloat16 products
    copy them.)

    ``shuffle=False`` is for inputs whose order means nothing, such as the hidden units of
    a feed-forward block: the groups are then contiguous, shifted by half a group (the last
    one wraps around), so each output group still mixes two groups of the layer before —
    without a column shuffle, which costs as much as the product on a 1,024-wide input.

    Measured against Rasa's random mask (kept in Parley's history) on snips-small with
    Rasa's default pipeline: intent accuracy 0.936 vs 0.933, entity F1 0.377 vs 0.383 — the
    same within seed noise — at 0.6 of the training time.
    """

    def __init__(self, in_features: int, out_features: int, density: float = 1.0,
                 bias: bool = True, shuffle: bool = True,
                 column_major: bool = False) -> None:
        super().__init__()
        self.column_major = column_major
        groups = max(1, min(round(1.0 / density), in_features, out_features))
        self.in_features, self.out_features, self.groups = in_features, out_features, groups
        self.shuffle = shuffle and groups > 1
        # Inputs in a random order, then dealt into contiguous groups of that order.
        self.register_buffer("order", torch.randperm(in_features) if self.shuffle
                             else torch.arange(in_features))
        self.input_slices = (_shifted(in_features, groups) if not self.shuffle and groups > 1
                             else [[bounds] for bounds in _bounds(in_features, groups)])
        self.output_bounds = _bounds(out_features, groups)
        # All groups' kernels in one flat parameter (one cast, one gradient per call).
        self.shapes = [(sum(b - a for a, b in slices), o1 - o0)
                       for slices, (o0, o1) in zip(self.input_slices, self.output_bounds, strict=True)]
        self.kernel = nn.Parameter(torch.cat([
            (torch.empty(fan_in, width).uniform_(-1, 1) / math.sqrt(fan_in)).view(-1)
            for fan_in, width in self.shapes]))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        # As split sizes, which forward and backward use: one ``split`` call cuts
        # every group's view of a tensor (five slicing calls per tensor cost more Python time
        # than the products on small batches). The inputs are cut into *pieces* — the groups'
        # slices, in input order — and each group lists its pieces in kernel-row order (two
        # when a shifted group wraps around).
        edges = sorted({edge for slices in self.input_slices for pair in slices for edge in pair})
        self.piece_sizes = [b - a for a, b in itertools.pairwise(edges)]
        self.group_pieces = [[edges.index(a) for a, _ in slices] for slices in self.input_slices]
        self.group_piece_rows = [[b - a for a, b in slices] for slices in self.input_slices]
        self.kernel_sizes = [fan_in * width for fan_in, width in self.shapes]
        self.output_sizes = [o1 - o0 for o0, o1 in self.output_bounds]

    def forward(self, x: torch.Tensor, keep_product_dtype: bool = False) -> torch.Tensor:
        """``x @ kernel + bias``; float32 out unless ``keep_product_dtype`` (then in the
        dtype the product ran in, for a next layer that takes it as it is)."""
        shape = x.shape
        rows = x.reshape(-1, shape[-1])
        if torch.is_grad_enabled():
            out = _GroupedProduct.apply(rows, self, self.bias, self.kernel, keep_product_dtype)
        else:  # prediction: no autograd node to build
            out = _product(rows, self, self.bias, self.kernel, keep_product_dtype)[0]
        return out.view(*shape[:-1], out.shape[-1])  # type: ignore[no-any-return]

    def groups_of(self, flat: torch.Tensor) -> Iterator[tuple[list[tuple[int, int, int]], int, int,
                                                              torch.Tensor]]:
        """Per group: its input slices as (start, end, first kernel row), its output columns,
        and its kernel (a view of ``flat``, laid out as :attr:`kernel`)."""
        for slices, (o0, o1), kernel, shape in zip(self.input_slices, self.output_bounds,
                                                   flat.split(self.kernel_sizes), self.shapes,
                                                   strict=True):
            first_rows = list(itertools.accumulate(b - a for a, b in slices))[:-1]
            placed = [(a, b, r) for (a, b), r in zip(slices, [0, *first_rows], strict=True)]
            yield placed, o0, o1, kernel.view(shape)


class _GroupedProduct(torch.autograd.Function):
    """``GroupedLinear``'s product with a hand-written backward. With more than one group
    (and ``PARLEY_GROUPED_BMM`` not ``0``) all groups run as one ``bmm`` forward and two
    backward (:func:`_batched_product`): each oneDNN call costs ~28 µs before any
    arithmetic, as much as one group's product on a 128-row shard, so five products a call
    became one (helpdesk-assistant's DIET steps 84–94 → 68–73 ms CPU; on banking77-small's
    ~900-row shards, where the arithmetic dominates, about even). Otherwise each
    group's matmul writes straight into its columns of one output (no concatenation, no
    split), and the input gradient goes back through the shuffle in one ``index_add_``.

    In training the products run in :func:`matmul_dtype` (bfloat16 where the CPU multiplies
    it natively: 2.5× faster than float32 there); what goes in and comes out, the weights kept
    and the gradients returned are float32, and prediction multiplies in float32. Where the
    training products run in float32, neither of the above: :func:`_row_major_forward`; where
    they run in bfloat16 on AMX tiles, neither either: :func:`_dense_forward`.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, layer: GroupedLinear, bias: torch.Tensor | None,
                kernel: torch.Tensor, keep_product_dtype: bool) -> torch.Tensor:
        dtype = _products_dtype(layer, kernel)
        ctx.dense = False
        if layer.groups > 1 and dtype in DENSE_DTYPES and dense_products():
            # (one group is one product already: _product)
            ctx.dense = True
            return _dense_forward(ctx, x, layer, bias, kernel, keep_product_dtype)
        ctx.row_major = ctx.in_c = False
        # (the kernel takes float32 weights: a layer cast to bfloat16 stays with torch)
        if IN_C and kernel.dtype == torch.float32 and x.dtype in (torch.float32, dtype) and (
                (dtype == torch.float32 and grouped_kernel.WANTED)
                or (dtype == torch.bfloat16 and grouped_kernel.WANTED_BF16)):
            ctx.in_c = True
            return _kernel_forward(ctx, x, layer, bias, kernel, dtype,
                                   dtype if keep_product_dtype else kernel.dtype)
        if dtype != torch.bfloat16 and ROW_MAJOR:
            ctx.row_major = True
            return _row_major_forward(ctx, x, layer, bias, kernel)
        batched = layer.groups > 1 and BATCHED
        product = _batched_product if batched else _product
        out, inputs, flat = product(x, layer, bias, kernel, keep_product_dtype)
        ctx.batched = batched
        ctx.layer = layer
        ctx.has_bias = bias is not None
        ctx.save_for_backward(inputs, flat)
        ctx.dtype = x.dtype
        ctx.input_column_major = _is_column_major(x)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        if ctx.dense:
            return _dense_backward(ctx, grad)
        if ctx.in_c:
            return _kernel_backward(ctx, grad)
        if ctx.row_major:
            return _row_major_backward(ctx, grad)
        if ctx.batched:
            return _batched_backward(ctx, grad)
        layer: GroupedLinear = ctx.layer
        inputs, flat = ctx.saved_tensors
        down = grad.to(inputs.dtype)
        down = down.t().contiguous().t() if layer.column_major else down.contiguous()
        # The input gradient is built transposed when it goes back through the shuffle (a
        # row scatter, not a column one) or to a column-major input (its layout);
        # grad_inputs[:, a:b] is then grad_rows[a:b].t().
        transposed = layer.shuffle or ctx.input_column_major
        grad_rows = None
        if ctx.needs_input_grad[0]:
            grad_rows = down.new_empty(inputs.shape[1], inputs.shape[0]) if transposed \
                else down.new_empty(inputs.shape)
        grad_flat = torch.empty_like(flat) if ctx.needs_input_grad[3] else None
        weights = flat.split(layer.kernel_sizes)
        grad_weights = grad_flat.split(layer.kernel_sizes) if grad_flat is not None else None
        downs = down.split(layer.output_sizes, dim=1)
        downs_t = down.t().split(layer.output_sizes)
        grad_pieces = None
        if grad_rows is not None:
            grad_pieces = (grad_rows.split(layer.piece_sizes) if transposed
                           else grad_rows.split(layer.piece_sizes, dim=1))
        pieces_t = inputs.t().split(layer.piece_sizes)
        for g, shape in enumerate(layer.shapes):
            if grad_pieces is not None:
                for p, rows in _piece_rows(layer, g, weights[g].view(shape)):
                    if transposed:
                        torch.mm(rows, downs_t[g], out=grad_pieces[p])
                    else:
                        torch.mm(downs[g], rows.t(), out=grad_pieces[p])
            if grad_weights is not None:
                for p, rows in _piece_rows(layer, g, grad_weights[g].view(shape)):
                    torch.mm(pieces_t[p], downs[g], out=rows)
        grad_x = None
        if grad_rows is not None:
            if layer.shuffle:
                # Undo the shuffle (a row gather), then transpose while still bfloat16 (half
                # the bytes; torch's transposing casts are ~5× slower than a transpose then a
                # cast): the layer norm before gets the row-major gradient it works on.
                natural = grad_rows.index_select(0, torch.argsort(layer.order))
                grad_x = natural.t().contiguous().to(ctx.dtype)
            elif transposed:
                grad_x = grad_rows.to(ctx.dtype).t()
            else:
                grad_x = grad_rows.to(ctx.dtype)
        grad_bias = grad.sum(0).float() if ctx.has_bias and ctx.needs_input_grad[2] else None
        return (grad_x, None, grad_bias, grad_flat.float() if grad_flat is not None else None, None)


def _products_dtype(layer: GroupedLinear, kernel: torch.Tensor) -> torch.dtype:
    """What the products run in: :func:`matmul_dtype` in training, else the kernel's."""
    return matmul_dtype() if layer.training and kernel.dtype == torch.float32 else kernel.dtype


# --- as one dense product with a zero-filled kernel (AMX) ------------------------------------
def _dense_forward(ctx: Any, x: torch.Tensor, layer: GroupedLinear, bias: torch.Tensor | None,
                   kernel: torch.Tensor, keep_product_dtype: bool) -> torch.Tensor:
    """Training's forward where the CPU multiplies bfloat16 matrices in tiles (AMX): the
    groups' kernels laid into one zero-filled in × out kernel, rows in the inputs' own
    order (the shuffle folded in), and one ``addmm``. It multiplies by every zero — 1/density
    times the arithmetic — and still takes no longer than the padded batched product of
    the groups alone (a 768 × 256 by 256 × 1,024 product: 0.26 ms dense against 0.27 ms
    batched, 1.5 TFLOP/s against 0.3), while the gathers, transposes and padding around
    the batched product (twice its own time in a step) all go."""
    dtype = _products_dtype(layer, kernel)
    dense = _dense_kernel(layer, kernel, dtype)
    inputs = x.to(dtype)
    out = (torch.addmm(bias.to(dtype), inputs, dense) if bias is not None
           else torch.mm(inputs, dense))
    ctx.layer = layer
    ctx.has_bias = bias is not None
    ctx.dtype = x.dtype
    ctx.kernel_dtype = kernel.dtype
    ctx.save_for_backward(inputs, dense)
    return out if keep_product_dtype else out.to(kernel.dtype)


def _dense_backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
    layer: GroupedLinear = ctx.layer
    inputs, dense = ctx.saved_tensors
    down = grad.to(inputs.dtype)
    grad_x = grad_kernel = grad_bias = None
    if ctx.needs_input_grad[0]:
        grad_x = torch.mm(down, dense.t()).to(ctx.dtype)
    if ctx.needs_input_grad[3]:
        grad_dense = torch.mm(inputs.t(), down).view(-1)
        grad_kernel = grad_dense.index_select(0, _dense_slots(layer)).to(ctx.kernel_dtype)
    if ctx.has_bias and ctx.needs_input_grad[2]:
        grad_bias = grad.sum(0).to(ctx.kernel_dtype)
    return grad_x, None, grad_bias, grad_kernel, None


def _dense_kernel(layer: GroupedLinear, kernel: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The dense in × out kernel (zeros where no connection), kept until the weights change:
    a step's shards share it (it is only read)."""
    def build() -> torch.Tensor:
        dense = kernel.new_zeros(layer.in_features * layer.out_features, dtype=dtype)
        dense.index_copy_(0, _dense_slots(layer), kernel.detach().to(dtype))
        return dense.view(layer.in_features, layer.out_features)

    return _kept(layer, "_dense_kernel", (kernel.data_ptr(), kernel._version, dtype),  # type: ignore[no-any-return]
                 build)


def _kept(layer: GroupedLinear, name: str, key: Any, build: Any) -> Any:
    """``build()``, kept on the layer under ``name`` until ``key`` (the data pointers and
    version counters of what it is made from) changes. One assignment stores it: a shard on
    another thread sees the old entry or the new, either whole."""
    kept = layer.__dict__.get(name)
    if kept is not None and kept[0] == key:
        return kept[1]
    value = build()
    layer.__dict__[name] = (key, value)
    return value


def _order_key(layer: GroupedLinear) -> tuple[int, int]:
    return layer.order.data_ptr(), layer.order._version


def _dense_slots(layer: GroupedLinear) -> torch.Tensor:
    """Each kernel entry's place in the dense in × out kernel (flat, row-major)."""
    def build() -> torch.Tensor:
        parts = []
        for slices, (o0, o1) in zip(layer.input_slices, layer.output_bounds, strict=True):
            rows = torch.cat([layer.order[a:b] for a, b in slices])
            parts.append((rows[:, None] * layer.out_features + torch.arange(o0, o1)).view(-1))
        return torch.cat(parts)

    return _kept(layer, "_dense_slots", _order_key(layer), build)  # type: ignore[no-any-return]


def dense_products() -> bool:
    """Whether bfloat16 training products run dense (:func:`_dense_forward`): see
    :func:`parley.ml.torch_env.dense_grouped_products` (decided without PyTorch, so that a
    model's fingerprint can name it before training imports PyTorch)."""
    global _dense
    if _dense is None:
        _dense = dense_grouped_products()
    return _dense


_dense: bool | None = None
DENSE_DTYPES = (torch.bfloat16,)  # products that run dense where dense_products() (tests add float64)


# --- every group in one call of the C kernel (float32 on AVX2, bfloat16 on AVX512_BF16) ---
def _kernel_forward(ctx: Any, x: torch.Tensor, layer: GroupedLinear,
                    bias: torch.Tensor | None, kernel: torch.Tensor, dtype: torch.dtype,
                    out_dtype: torch.dtype) -> torch.Tensor:
    """Training's forward where the products run through the C kernel
    (:mod:`parley.ml.grouped_kernel`), in float32 or bfloat16 (``dtype``): the shuffle read
    through each group's column list, so the input is kept as it is, not gathered; the bias
    starts the sums. With bfloat16 products, input and output may be bfloat16 as torch's
    path leaves them (``keep_product_dtype``: attention and the feed-forward's hidden layer
    then run in bfloat16, as they do without the kernel); the kernel rounds the rest."""
    x = x.contiguous()
    kernel = kernel.detach()
    bf16 = dtype == torch.bfloat16
    amx = bf16 and grouped_kernel.AMX
    out, saved = grouped_kernel.forward(layer, x, kernel,
                                        bias.detach() if bias is not None else None, bf16,
                                        out_dtype, amx)
    ctx.bf16 = bf16
    ctx.amx = amx
    ctx.x_dtype = x.dtype
    ctx.layer = layer
    ctx.has_bias = bias is not None
    ctx.save_for_backward(saved, kernel)
    return out


def _kernel_backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
    layer: GroupedLinear = ctx.layer
    saved, kernel = ctx.saved_tensors
    if grad.dtype != torch.float32 and not ctx.bf16:
        grad = grad.float()
    grad = grad.contiguous()
    grad_x, grad_kernel = grouped_kernel.backward(layer, saved, kernel, grad,
                                                  ctx.needs_input_grad[0],
                                                  ctx.needs_input_grad[3], ctx.bf16, ctx.x_dtype,
                                                  ctx.amx)
    grad_bias = (grad.sum(0, dtype=torch.float32) if ctx.has_bias and ctx.needs_input_grad[2]
                 else None)
    return grad_x, None, grad_bias, grad_kernel, None


# --- in the kernel's own dtype, row-major throughout ---------------------------------------
def _row_major_forward(ctx: Any, x: torch.Tensor, layer: GroupedLinear,
                       bias: torch.Tensor | None, kernel: torch.Tensor) -> torch.Tensor:
    """Training's forward when the products run in float32 (no native bfloat16): the
    inputs shuffled by one column gather (``index_select`` along the columns: as fast as a
    copy), then each group's product reads its columns of that in place and writes its
    columns of the row-major output in place, the bias added by the same ``addmm``. No
    transposes and no padding: a transpose of a 768 × 1,024 activation costs ~1 ms, as
    much as a group's product, and the batched path made three a layer. MKL's float32
    products take strided operands at full speed (a group's fan-in of ~52 columns of 256
    as fast as a contiguous block), unlike bfloat16's oneDNN kernels."""
    x = x.contiguous()
    shuffled = x.index_select(1, layer.order) if layer.shuffle else x
    out = x.new_empty(x.shape[0], layer.out_features)
    shifts = bias.split(layer.output_sizes) if bias is not None else None
    for g, (pieces, o0, o1, weight) in enumerate(_row_major_groups(layer, kernel)):
        target = out[:, o0:o1]
        for n, (a, b, r) in enumerate(pieces):
            rows = weight[r:r + b - a]
            if n:
                target.addmm_(shuffled[:, a:b], rows)
            elif shifts is None:
                torch.mm(shuffled[:, a:b], rows, out=target)
            else:
                torch.addmm(shifts[g], shuffled[:, a:b], rows, out=target)
    ctx.layer = layer
    ctx.has_bias = bias is not None
    ctx.save_for_backward(shuffled, kernel)
    return out


def _row_major_backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
    """Each group's input and kernel gradients written in place, as its forward."""
    layer: GroupedLinear = ctx.layer
    shuffled, kernel = ctx.saved_tensors
    grad = grad.contiguous()
    want_x, want_kernel = ctx.needs_input_grad[0], ctx.needs_input_grad[3]
    # Every input lies in exactly one group's pieces: each is written once.
    grad_shuffled = grad.new_empty(shuffled.shape) if want_x else None
    grad_kernel = torch.empty_like(kernel) if want_kernel else None
    grad_groups = _row_major_groups(layer, grad_kernel) if want_kernel else None
    for g, (pieces, o0, o1, weight) in enumerate(_row_major_groups(layer, kernel)):
        down = grad[:, o0:o1]
        grad_weight = grad_groups[g][3] if grad_groups is not None else None
        for a, b, r in pieces:
            if grad_shuffled is not None:
                torch.mm(down, weight[r:r + b - a].t(), out=grad_shuffled[:, a:b])
            if grad_weight is not None:
                torch.mm(shuffled[:, a:b].t(), down, out=grad_weight[r:r + b - a])
    grad_x = None
    if grad_shuffled is not None:
        grad_x = (grad_shuffled.index_select(1, _unshuffle(layer)) if layer.shuffle
                  else grad_shuffled)
    grad_bias = grad.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
    return grad_x, None, grad_bias, grad_kernel, None


def _row_major_groups(layer: GroupedLinear, flat: torch.Tensor
                      ) -> list[tuple[list[tuple[int, int, int]], int, int, torch.Tensor]]:
    """:meth:`GroupedLinear.groups_of` as a list, the pieces' bounds computed once."""
    pieces = layer.__dict__.get("_row_major_pieces")
    if pieces is None:
        pieces = layer.__dict__["_row_major_pieces"] = [
            (placed, o0, o1) for placed, o0, o1, _ in layer.groups_of(flat)]
    return [(placed, o0, o1, kernel.view(shape)) for (placed, o0, o1), kernel, shape
            in zip(pieces, flat.split(layer.kernel_sizes), layer.shapes, strict=True)]


def _unshuffle(layer: GroupedLinear) -> torch.Tensor:
    """Each input's column among the shuffled ones (the inverse of ``layer.order``)."""
    return _kept(layer, "_unshuffle", _order_key(layer),  # type: ignore[no-any-return]
                 lambda: torch.argsort(layer.order))


def _product(x: torch.Tensor, layer: GroupedLinear, bias: torch.Tensor | None,
             kernel: torch.Tensor, keep_product_dtype: bool
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The layer's output, and the (shuffled, cast) inputs and kernel the products used."""
    dtype = _products_dtype(layer, kernel)
    if layer.shuffle:
        # Columns are gathered as the rows of the transpose (a column gather is ~10×
        # slower); the products read the column-major result as it is.
        inputs = x.to(dtype).t().contiguous().index_select(0, layer.order).t()
    else:
        inputs = x.to(dtype)
    flat = kernel.to(dtype)
    weights, shifts = _views(layer, flat, bias.to(dtype) if bias is not None else None)
    if layer.column_major:  # out.t() is filled: row block by row block
        out_t = inputs.new_empty(layer.out_features, x.shape[0])
        pieces_t = inputs.t().split(layer.piece_sizes)
        for g, target in enumerate(out_t.split(layer.output_sizes)):
            for n, (p, rows) in enumerate(_piece_rows(layer, g, weights[g])):
                rows_t = rows.t()
                if n:
                    target.addmm_(rows_t, pieces_t[p])
                elif shifts is None:
                    torch.mm(rows_t, pieces_t[p], out=target)
                else:
                    torch.addmm(shifts[g][:, None], rows_t, pieces_t[p], out=target)
        out = out_t.t()
    else:
        out = inputs.new_empty(x.shape[0], layer.out_features)
        pieces = inputs.split(layer.piece_sizes, dim=1)
        for g, target in enumerate(out.split(layer.output_sizes, dim=1)):
            for n, (p, rows) in enumerate(_piece_rows(layer, g, weights[g])):
                if n:
                    target.addmm_(pieces[p], rows)
                elif shifts is None:
                    torch.mm(pieces[p], rows, out=target)
                else:
                    torch.addmm(shifts[g], pieces[p], rows, out=target)
    return (out if keep_product_dtype else out.to(kernel.dtype)), inputs, flat


def _views(layer: GroupedLinear, flat: torch.Tensor, shift: torch.Tensor | None
           ) -> tuple[list[torch.Tensor], Any]:
    """Each group's kernel (a view of ``flat``) and bias. When predicting they are kept on
    the layer until the weights change: cutting them is a dozen calls a layer, as long as
    the products themselves for one message."""
    key = (flat.data_ptr(), flat._version, shift.data_ptr() if shift is not None else 0,
           shift._version if shift is not None else 0)
    kept = layer.__dict__.get("_kept_views")
    if not layer.training and kept is not None and kept[0] == key:
        return kept[1], kept[2]
    weights = [k.view(shape) for k, shape in zip(flat.split(layer.kernel_sizes), layer.shapes,
                                                 strict=True)]
    shifts = shift.split(layer.output_sizes) if shift is not None else None
    if not layer.training and flat.dtype == layer.kernel.dtype:
        layer.__dict__["_kept_views"] = (key, weights, shifts)
    return weights, shifts


def _piece_rows(layer: GroupedLinear, group: int,
                weight: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
    """A group's input pieces, each with the rows of ``weight`` (the group's kernel, or its
    gradient) that multiply it."""
    pieces = layer.group_pieces[group]
    if len(pieces) == 1:
        return [(pieces[0], weight)]
    return list(zip(pieces, weight.split(layer.group_piece_rows[group]), strict=True))


def _is_column_major(x: torch.Tensor) -> bool:
    return x.dim() == 2 and not x.is_contiguous() and x.t().is_contiguous()


def matmul_dtype() -> torch.dtype:
    """bfloat16 for the grouped layers' products when the CPU has native bfloat16 dot
    products (and ``PARLEY_BF16`` is not ``0``), else float32."""
    global _matmul_dtype
    if _matmul_dtype is None:
        wanted = os.environ.get("PARLEY_BF16", "1") != "0"
        native = wanted and bool(torch.backends.mkldnn.is_available()) and _native_bf16()
        _matmul_dtype = torch.bfloat16 if native else torch.float32
    return _matmul_dtype


def _native_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


_matmul_dtype: torch.dtype | None = None
BATCHED = os.environ.get("PARLEY_GROUPED_BMM", "1") != "0"  # A/B switch while measuring
ROW_MAJOR = os.environ.get("PARLEY_GROUPED_ROW_MAJOR", "1") != "0"  # likewise
IN_C = True  # where grouped_kernel.WANTED; tests and A/B runs turn it off


def _shifted(size: int, groups: int) -> list[list[tuple[int, int]]]:
    """``groups`` ranges of ``range(size)`` shifted by half a group, the last wrapping around."""
    shift = size // (2 * groups)
    ranges = []
    for a, b in _bounds(size, groups):
        a, b = a + shift, b + shift
        ranges.append([(a, b)] if b <= size else [(a, size), (0, b - size)])
    return ranges


def _as_slices(bounds: list[Any]) -> list[list[tuple[int, int]]]:
    return [item if isinstance(item, list) else [item] for item in bounds]


def _bounds(size: int, groups: int) -> list[tuple[int, int]]:
    """``groups`` contiguous ranges covering ``range(size)``, sizes differing by at most one."""
    edges = [round(k * size / groups) for k in range(groups + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


class RandomlyConnectedLinear(nn.Module):
    """Rasa's ``RandomlyConnectedDense``: a dense layer whose kernel is multiplied by a fixed
    random 0/1 mask keeping a fraction ``density`` of the connections (every input and every
    output keeps at least one). It costs a dense layer; on small layers that is what a
    grouped one costs too, and a random mask mixes every input into every output group:
    TED's transformer (128 units) learned the fixture stories in 200 steps with it and
    not with :class:`GroupedLinear`'s block-diagonal groups. Takes GroupedLinear's layout
    arguments, which mean nothing here, so that the layers can build either.
    """

    def __init__(self, in_features: int, out_features: int, density: float = 1.0,
                 bias: bool = True, shuffle: bool = True, column_major: bool = False) -> None:
        super().__init__()
        # Scaled to the connections each output keeps, as GroupedLinear's kernels are:
        # a dense layer's scale, masked to a fifth, starts with outputs too small to learn.
        fan_in = max(1.0, density * in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-1, 1)
                                   / math.sqrt(fan_in))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        mask = torch.rand(out_features, in_features) < density
        mask[torch.arange(out_features), torch.randint(in_features, (out_features,))] = True
        mask[torch.randint(out_features, (in_features,)), torch.arange(in_features)] = True
        self.register_buffer("mask", mask.float())

    def forward(self, x: torch.Tensor, keep_product_dtype: bool = False) -> torch.Tensor:
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


# --- the groups as one batched product --------------------------------------------------
@dataclass(frozen=True)
class _Plan:
    """Index tensors that lay a grouped layer out as ``groups`` equal products, padded to
    the widest group's fan-in ``kp`` and width ``np`` (group sizes differ by at most one).

    Padding costs nothing in the result: a padded kernel row or column is zero, so a padded
    input row (a repeat of one of the group's inputs) adds exact zeros, and a padded output
    is never read. With zero padding a batched product gives the same bits as the per-group
    ones it replaces."""

    kp: int
    np: int
    inputs: torch.Tensor  # (groups·kp,): input column of each padded input row
    input_slot: torch.Tensor  # (in_features,): each input's row among the padded ones
    kernel: torch.Tensor  # (groups·kp·np,): flat kernel index per padded entry (numel: zero)
    kernel_slot: torch.Tensor  # (numel,): each kernel entry's padded position
    outputs: torch.Tensor  # (out_features,): each output's row among the padded ones
    padded_outputs: torch.Tensor  # (groups·np,): the output each padded row reads (any of its group)


def _plan(layer: GroupedLinear) -> _Plan:
    return _kept(layer, "_plan", _order_key(layer), lambda: _new_plan(layer))  # type: ignore[no-any-return]


def _new_plan(layer: GroupedLinear) -> _Plan:
    groups = layer.groups
    kp = max(fan_in for fan_in, _ in layer.shapes)
    np_ = max(width for _, width in layer.shapes)
    order = layer.order.tolist()
    inputs, input_slot = [], [0] * layer.in_features
    kernel = torch.full((groups, kp, np_), layer.kernel.numel(), dtype=torch.long)
    outputs, padded_outputs = [], []
    start = 0
    for g, (slices, (o0, o1), (fan_in, width)) in enumerate(
            zip(layer.input_slices, layer.output_bounds, layer.shapes, strict=True)):
        columns = [order[i] for a, b in slices for i in range(a, b)]
        for row, column in enumerate(columns):
            input_slot[column] = g * kp + row
        inputs += columns + [columns[0]] * (kp - fan_in)
        kernel[g, :fan_in, :width] = torch.arange(start, start + fan_in * width).view(fan_in, width)
        start += fan_in * width
        outputs += range(g * np_, g * np_ + width)
        padded_outputs += list(range(o0, o1)) + [o0] * (np_ - width)
    flat = kernel.view(-1)
    kernel_slot = torch.empty(layer.kernel.numel(), dtype=torch.long)
    real = flat < layer.kernel.numel()
    kernel_slot[flat[real]] = torch.arange(flat.numel())[real]
    return _Plan(kp, np_, torch.tensor(inputs), torch.tensor(input_slot), flat, kernel_slot,
                 torch.tensor(outputs), torch.tensor(padded_outputs))


def _batched_product(x: torch.Tensor, layer: GroupedLinear, bias: torch.Tensor | None,
                     kernel: torch.Tensor, keep_product_dtype: bool
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The layer's output, and the padded inputs as groups × rows × kp (a view) and the
    padded kernel (groups × kp × np) the batched product used.

    A training step's shards are mostly fixed cost (helpdesk-assistant: ~16 ms a shard
    whatever its rows, ~1,260 aten calls), so this makes as few calls as it can: the padded
    kernel is kept until the weights change (:func:`_padded_kernel`), float32 inputs are
    gathered by columns before the cast (one float32 ``index_select`` along the columns is
    as fast as a copy; bfloat16 transposes and column gathers are 2–6× slower) and the
    product reads the group blocks of that row-major result in place. Every way of laying
    the operands out gives the same bits (oneDNN sums each dot product in one order)."""
    plan = _plan(layer)
    dtype = matmul_dtype() if layer.training and kernel.dtype == torch.float32 else kernel.dtype
    rows = x.shape[0]
    weights, shift = _padded_kernel(layer, kernel, bias, dtype, plan)
    if _is_column_major(x):  # x.t() is contiguous: gather its rows
        inputs = x.t().to(dtype).index_select(0, plan.inputs).view(
            layer.groups, plan.kp, rows).transpose(1, 2)
    elif x.dtype != torch.bfloat16:
        # (made contiguous: the kernel gradient's product reads it 10–20% slower strided)
        inputs = x.index_select(1, plan.inputs).to(dtype).view(
            rows, layer.groups, plan.kp).transpose(0, 1).contiguous()
    else:  # (a bfloat16 column gather is ~6× slower than a transpose and a row gather)
        inputs = x.to(dtype).t().contiguous().index_select(0, plan.inputs).view(
            layer.groups, plan.kp, rows).transpose(1, 2)
    if layer.column_major:  # out.t() is filled: each group's rows, then the real ones kept
        out_t = torch.bmm(weights.transpose(1, 2), inputs.transpose(1, 2)).view(-1, rows)
        out_t = out_t.index_select(0, plan.outputs)
        if shift is not None:
            out_t += shift[:, None]
        out = out_t.t()
    else:
        products = torch.bmm(inputs, weights)  # groups × rows × np
        # one concatenation of the groups' real columns (five copies cost ~35% more)
        out = torch.cat([product if width == plan.np else product[:, :width]
                         for product, width in zip(products.unbind(0), layer.output_sizes,
                                                   strict=True)], dim=1)
        if shift is not None:
            out += shift
    return (out if keep_product_dtype else out.to(kernel.dtype)), inputs, weights


def _padded_kernel(layer: GroupedLinear, kernel: torch.Tensor, bias: torch.Tensor | None,
                   dtype: torch.dtype, plan: _Plan) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The groups' kernels cast and padded (groups × kp × np) and the bias cast, kept until
    the weights change: a step's shards share them (they are only read), and they spare
    five calls a layer a shard."""
    def build() -> tuple[torch.Tensor, torch.Tensor | None]:
        padded = torch.cat([kernel.detach().to(dtype), kernel.new_zeros(1, dtype=dtype)])
        weights = padded.index_select(0, plan.kernel).view(layer.groups, plan.kp, plan.np)
        return weights, (bias.detach().to(dtype) if bias is not None else None)

    key = (kernel.data_ptr(), kernel._version, dtype,
           None if bias is None else (bias.data_ptr(), bias._version))
    return _kept(layer, "_padded_kernel", key, build)  # type: ignore[no-any-return]


def _batched_backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
    layer: GroupedLinear = ctx.layer
    plan = _plan(layer)
    inputs, weights = ctx.saved_tensors  # groups × rows × kp (a view), groups × kp × np
    groups, rows = layer.groups, inputs.shape[1]
    # The output gradient as groups × rows × np (a view), padded columns read from their group.
    if _is_column_major(grad):
        down = grad.t().to(inputs.dtype).index_select(0, plan.padded_outputs).view(
            groups, plan.np, rows).transpose(1, 2)
    elif grad.dtype != torch.bfloat16:
        down = grad.index_select(1, plan.padded_outputs).to(inputs.dtype).view(
            rows, groups, plan.np).transpose(0, 1)
    else:
        down = grad.to(inputs.dtype).t().contiguous().index_select(0, plan.padded_outputs).view(
            groups, plan.np, rows).transpose(1, 2)
    grad_x = grad_flat = None
    if ctx.needs_input_grad[0]:
        # Padded kernel rows are zero: so are the padded inputs' gradients, which are dropped.
        if ctx.input_column_major or ctx.dtype == torch.bfloat16:
            grad_inputs = torch.bmm(weights, down.transpose(1, 2)).view(-1, rows)
            grad_x_t = grad_inputs.index_select(0, plan.input_slot)
            grad_x = (grad_x_t.to(ctx.dtype).t() if ctx.input_column_major
                      else grad_x_t.t().contiguous().to(ctx.dtype))
        else:  # written as rows × groups × kp by the product, then gathered by columns
            grad_inputs = inputs.new_empty(rows, groups, plan.kp)
            torch.bmm(down, weights.transpose(1, 2), out=grad_inputs.transpose(0, 1))
            grad_x = grad_inputs.view(rows, -1).to(ctx.dtype).index_select(1, plan.input_slot)
    if ctx.needs_input_grad[3]:
        grad_padded = torch.bmm(inputs.transpose(1, 2), down).view(-1)
        grad_flat = grad_padded.index_select(0, plan.kernel_slot).float()
    grad_bias = grad.sum(0).float() if ctx.has_bias and ctx.needs_input_grad[2] else None
    return grad_x, None, grad_bias, grad_flat, None
