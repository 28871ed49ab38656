"""DIET's building blocks in PyTorch: sparse input, dropout, attention, the transformer.

They follow Rasa's layers in what their parameters mean (``connection_density``,
``drop_rate``, relative attention, pre-norm transformer blocks) but are written for speed on
a CPU: sparse inputs go through ``embedding_bag``, nothing is padded that need not be.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - torch's own convention

from parley.ml import attention_kernel, dropout_kernel, sparse_kernel
from parley.ml.batching import Chunk, SparseRows
from parley.ml.gelu import RationalGelu
from parley.ml.grouped import GroupedLinear
from parley.ml.torch_env import generator


def dropout_mask(x: torch.Tensor, rate: float) -> torch.Tensor:
    """Inverted dropout's mask for ``x`` (0 or 1 / (1 − rate), x's shape and dtype), drawn
    from random bytes (rate resolved to 1/256): an element is kept where its byte is at
    least :func:`_threshold`.

    The bytes come from numpy's SFC64 generator (3× faster than torch's) seeded by one draw
    from torch's, so seeding torch fixes them; numpy turns them into the mask, because
    torch's byte comparisons and bool→float casts are several times slower than numpy's.
    (:func:`dropout` and :func:`add_dropout` use the same bytes without a mask where the C
    kernel runs: :mod:`parley.ml.dropout_kernel`.)
    """
    threshold = _threshold(rate)
    words = np.random.SFC64(_seed()).random_raw((x.numel() + 7) // 8)
    keep = words.view(np.uint8)[: x.numel()] >= threshold
    scale = _scale(threshold)
    if x.dtype == torch.bfloat16:  # numpy has no bfloat16: write its bit pattern
        bits = np.multiply(keep, _bfloat16_pattern(scale), dtype=np.int16)
        return torch.from_numpy(bits).view(torch.bfloat16).view(x.shape)
    mask = torch.from_numpy(np.multiply(keep, np.float32(scale), dtype=np.float32)
                            .reshape(x.shape))
    # (shaped in numpy, no cast for float32: a torch view and a no-op cast cost ~3 µs a
    # mask, a tenth of a small mask's cost — TED draws ~10 small ones a shard)
    return mask if x.dtype == torch.float32 else mask.to(x.dtype)


def _threshold(rate: float) -> int:
    """The byte value from which an element is kept (a dropped share of ``rate``)."""
    return min(max(round(rate * 256), 1), 255)


def _scale(threshold: int) -> float:
    return 256.0 / (256 - threshold)


def _seed() -> int:
    """The seed of a mask's bytes: one draw from the training's torch generator."""
    return int(torch.empty((), dtype=torch.int64).random_(generator=generator()))


def _bfloat16_pattern(scale: float) -> np.int16:
    """``scale``'s bfloat16 bit pattern (kept: three calls, a tenth of a small mask's time)."""
    pattern = _BFLOAT16_PATTERNS.get(scale)
    if pattern is None:
        pattern = _BFLOAT16_PATTERNS[scale] = np.int16(
            torch.tensor(scale, dtype=torch.bfloat16).view(torch.int16).item())
    return pattern


_BFLOAT16_PATTERNS: dict[float, np.int16] = {}


def dropout(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Inverted dropout (see :func:`dropout_mask`). Measured on a 1,536 × 1,024
    activation: 1.5 ms forward, where torch's own dropout takes ~10 ms. With the C kernel
    the bytes go straight into one multiplying pass, forward and backward (a DIET step
    on snips-small ~15% of its time in dropout before)."""
    if not training or rate <= 0 or x.numel() == 0:
        return x
    if dropout_kernel.usable() and dropout_kernel.takes(x):
        threshold = _threshold(rate)
        keep = dropout_kernel.stream_bytes(_seed(), x.numel())
        return dropout_kernel.Dropped.apply(x, keep, threshold, _scale(threshold))  # type: ignore[no-any-return]
    return x * dropout_mask(x, rate)


def add_dropout(x: torch.Tensor, y: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """``x + dropout(y)`` in one pass (a residual connection)."""
    if not training or rate <= 0 or y.numel() == 0:
        return x + y
    if (x.dtype == y.dtype == torch.float32 and x.shape == y.shape and x.is_contiguous()
            and y.is_contiguous() and dropout_kernel.fused_add_usable()):
        threshold = _threshold(rate)
        keep = dropout_kernel.stream_bytes(_seed(), y.numel())
        return dropout_kernel.AddDropped.apply(x, y, keep, threshold,  # type: ignore[no-any-return]
                                               _scale(threshold))
    return torch.addcmul(x, y, dropout_mask(y, rate))


def gelu_dropout(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """``dropout(gelu(x))`` with :mod:`parley.ml.gelu`'s GELU (the numpy predictor's), in
    one pass of the C kernel where it runs: on a feed-forward layer's 4×-wide activation
    torch's gelu and a dropout after it were ~8% of a DIET step on an AVX2 CPU. The same
    bytes and the same results without the kernel."""
    dropped = training and rate > 0 and x.numel() > 0
    if not (dropout_kernel.AVAILABLE and dropout_kernel.takes(x)):
        return dropout(RationalGelu.apply(x), rate, training)  # type: ignore[no-untyped-call]
    x = x.contiguous()  # (the backward reads it as a buffer)
    if not dropped:
        return dropout_kernel.GeluDropped.apply(x, None, 0, 1.0)  # type: ignore[no-any-return]
    threshold = _threshold(rate)
    keep = dropout_kernel.stream_bytes(_seed(), x.numel())
    return dropout_kernel.GeluDropped.apply(x, keep, threshold,  # type: ignore[no-any-return]
                                            _scale(threshold))


def gelu(x: torch.Tensor) -> torch.Tensor:
    """:mod:`parley.ml.gelu`'s GELU of ``x`` (no dropout)."""
    return gelu_dropout(x, 0.0, False)


class Dropout(nn.Module):
    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.rate, self.training)


@dataclass
class Grid:
    """Where a batch's rows sit for attention: runs of blocks, each holding whole messages
    (see ``inputs``), and each row's position in its message."""

    chunks: list[Chunk]
    row_positions: torch.Tensor

    @functools.cached_property
    def run_starts(self) -> np.ndarray:
        """Where each message's rows (or a padding row) start: the C attention's runs."""
        return attention_kernel.run_starts(self.row_positions)


# Attention within each message in one C call (parley/ml/attention_kernel.py) where it
# applies; False: torch's blocks. Each layer of a DIET step on helpdesk-assistant's
# ~5-row messages scored 32-row blocks, 85% of them masked, in ~30 torch calls.
MESSAGE_ATTENTION_IN_C = True


# Without the C kernel (parley/ml/_sparse.c: one pass, every block takes it), weights this
# large (columns × units) or larger get _SparseProduct's torch backward: it costs a few more
# calls than torch's, which pays off only where torch's zeroing of the whole gradient is
# large (char n-gram blocks: thousands of columns). Paired timings on helpdesk-assistant:
# with it on every block a step cost 2% more, not less.
OWN_SPARSE_BACKWARD = 100_000


class SparseDense(nn.Module):
    """``x @ W + b`` for sparse rows ``x``; optional dropout of the non-zero values."""

    def __init__(self, in_features: int, units: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, units))
        self.bias = nn.Parameter(torch.zeros(units))
        self.drop_rate = drop_rate
        nn.init.xavier_uniform_(self.weight)

    def forward(self, rows: SparseRows) -> torch.Tensor:
        values = rows.values
        values = dropout(values, self.drop_rate, self.training)
        if (torch.is_grad_enabled() and self.weight.requires_grad
                and (sparse_kernel.AVAILABLE or self.weight.numel() >= OWN_SPARSE_BACKWARD)):
            out = _SparseProduct.apply(rows.indices, rows.offsets, values, self.weight)
        else:
            out = F.embedding_bag(rows.indices, self.weight, rows.offsets, mode="sum",
                                  per_sample_weights=values, include_last_offset=False)
        return out + self.bias


class _SparseProduct(torch.autograd.Function):
    """``embedding_bag`` (sparse rows times a weight matrix) with a faster weight gradient.

    The weight's gradient is the transposed product, ``rowsᵀ @ grad``: one ``embedding_bag``
    again, over the non-zeros grouped by column, each summing the output gradients of the
    rows it occurs in. torch's own backward sorts the indices too, then zeroes the whole
    gradient and adds each non-zero's row with its own call: on a batch of char n-gram
    features (2,575 columns) 1.3 ms where this takes 0.2–0.3 ms. The non-zeros of a column
    are visited in the order of torch's ``sort`` of the indices, as torch's backward visits
    them, and both sum with fused multiply-adds: the gradient is bitwise the same
    (tests/ml/test_layers.py). Where the C kernel is built it makes the gradient instead,
    in one pass over the non-zeros in row order (:mod:`parley.ml.sparse_kernel`): the
    sorting's six torch calls a layer gone, 1.2 → 0.55 ms a DIET step on helpdesk-assistant.
    """

    @staticmethod
    def forward(ctx: Any, indices: torch.Tensor, offsets: torch.Tensor, values: torch.Tensor,
                weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(indices, offsets, values)
        ctx.columns = weight.shape[0]
        return F.embedding_bag(indices, weight, offsets, mode="sum", per_sample_weights=values,
                               include_last_offset=False)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        indices, offsets, values = ctx.saved_tensors
        if not ctx.needs_input_grad[3]:
            return None, None, None, None
        if sparse_kernel.AVAILABLE:
            return None, None, None, sparse_kernel.weight_grad(indices, offsets, values, grad,
                                                               ctx.columns)
        by_column, order = indices.sort()
        # the row each non-zero lies in, in that order
        counts = torch.diff(offsets, append=offsets.new_tensor([indices.shape[0]]))
        row_of = torch.repeat_interleave(torch.arange(offsets.shape[0]), counts)
        starts = torch.searchsorted(by_column, torch.arange(ctx.columns))
        grad_weight = F.embedding_bag(row_of[order], grad.contiguous(), starts, mode="sum",
                                      per_sample_weights=values[order],
                                      include_last_offset=False)
        return None, None, None, grad_weight


class FeedForward(nn.Module):
    """Rasa's ``Ffnn``: dense layers with GELU and dropout (none for an empty size list)."""

    def __init__(self, in_features: int, sizes: list[int], drop_rate: float, density: float,
                 linear: type[nn.Module] = GroupedLinear) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for size in sizes:
            layers += [linear(in_features, size, density), nn.GELU(),
                       Dropout(drop_rate)]
            in_features = size
        self.layers = nn.Sequential(*layers)
        self.out_features = in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # type: ignore[no-any-return]


class MultiHeadAttention(nn.Module):
    def __init__(self, units: int, heads: int, attention_drop: float, density: float,
                 key_relative: bool, value_relative: bool, max_relative_position: int,
                 unidirectional: bool, linear: type[nn.Module] = GroupedLinear) -> None:
        super().__init__()
        if units % heads:
            raise ValueError(f"transformer_size {units} is not divisible by "
                             f"number_of_attention_heads {heads}")
        self.units = units
        self.heads = heads
        self.depth = units // heads
        # Query, key and value as one grouped layer, 3× wide: each input group feeds a
        # third of their units. (Rasa masks each of the three at random on its own; three
        # shuffles cost 1.4–2 ms more a layer on a banking77-small batch, for no accuracy.)
        self.query_key_value = linear(units, 3 * units, density, bias=False)
        self.out = linear(units, units, density)
        self.attention_drop = attention_drop
        self.unidirectional = unidirectional
        self.max_relative_position = max_relative_position
        span = 2 * max_relative_position + 1
        self.key_relative = nn.Parameter(torch.randn(span, self.depth) * 0.02) if key_relative else None
        self.value_relative = (nn.Parameter(torch.randn(span, self.depth) * 0.02)
                               if value_relative else None)

    def forward(self, x: torch.Tensor, grid: Grid, keep: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: rows × units; attention sees each chunk's rows as blocks (a view), each row
        only the rows of its own message. With ``keep``, only those rows' outputs (in that
        order) are projected and returned."""
        # In training q, k, v and the attention products stay in the products' dtype
        # (bfloat16 where native); the softmax runs in float32.
        projected = self.query_key_value(x, keep_product_dtype=True)
        drop = self.attention_drop if self.training else 0.0
        if (MESSAGE_ATTENTION_IN_C and drop == 0 and self.key_relative is None
                and self.value_relative is None and attention_kernel.takes(projected)):
            attended = attention_kernel.attend(projected, grid.run_starts, self.heads,
                                               self.depth, self.unidirectional)
            return self.out(attended if keep is None else attended[keep])  # type: ignore[no-any-return]
        # One split, not a slice per chunk: a slice's gradient is a zeroed full-size tensor.
        parts = projected.split([c.count * c.width for c in grid.chunks])
        outs = []
        heads, depth = self.heads, self.depth
        for chunk, rows in zip(grid.chunks, parts, strict=True):
            b, t = chunk.count, chunk.width
            # one copy into (q|k|v) × blocks·heads × rows × depth, not one for each of the three
            q, k, v = rows.view(b, t, 3, heads, depth).permute(2, 0, 3, 1, 4).reshape(
                3, b * heads, t, depth).unbind(0)
            out = self._attention(q, k, v, self._mask(chunk, projected.dtype), drop)
            outs.append(out.view(b, heads, t, depth).transpose(1, 2).reshape(b * t, self.units))
        attended = torch.cat(outs) if len(outs) > 1 else outs[0]
        if keep is not None:
            attended = attended[keep]
        return self.out(attended)  # type: ignore[no-any-return]

    def _mask(self, chunk: Chunk, dtype: torch.dtype) -> torch.Tensor:
        """0 where a row may attend, −inf where not, per block and head — made once per
        batch and shared by the layers."""
        key = ("attention mask", self.heads, dtype, self.unidirectional)
        if key not in chunk.cache:
            blocked = chunk.blocked
            if self.unidirectional:  # messages lie in order within a block: no later rows
                blocked = blocked | torch.ones(chunk.width, chunk.width, dtype=torch.bool).triu(1)
            mask = torch.zeros(blocked.shape, dtype=dtype).masked_fill_(blocked, float("-inf"))
            chunk.cache[key] = mask.expand(-1, self.heads, -1, -1).reshape(
                chunk.count * self.heads, chunk.width, chunk.width)
        return chunk.cache[key]  # type: ignore[no-any-return]

    def _attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   mask: torch.Tensor, drop: float) -> torch.Tensor:
        """Scaled dot-product attention over (blocks × heads, rows, depth), with learned
        embeddings of the clipped distance j − i when relative attention is on (Shaw et al.
        2018). Written out: on blocks of 64 rows in bfloat16 it is 3× faster than torch's
        fused kernel."""
        t = q.shape[1]
        scale = 1 / math.sqrt(self.depth)
        scores = torch.baddbmm(mask, q, k.transpose(1, 2), alpha=scale)
        if self.key_relative is not None or self.value_relative is not None:
            distance = torch.arange(t)[None, :] - torch.arange(t)[:, None]
            bucket = distance.clamp(-self.max_relative_position, self.max_relative_position)
            bucket = bucket + self.max_relative_position
        if self.key_relative is not None:
            relative = self.key_relative[bucket].to(q.dtype)
            scores = scores + torch.einsum("nid,ijd->nij", q, relative) * scale
        # softmax in float32 whatever the products ran in
        weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        weights = dropout(weights, drop, self.training)
        out = torch.bmm(weights, v)
        if self.value_relative is not None:
            relative = self.value_relative[bucket].to(q.dtype)
            out = out + torch.einsum("nij,ijd->nid", weights, relative)
        return out


class TransformerBlock(nn.Module):
    """Pre-norm block as in Rasa: x + Attention(LN(x)), then x + FFN(LN(x)) with 4× units."""

    def __init__(self, units: int, heads: int, drop_rate: float, **attention: Any) -> None:
        super().__init__()
        density = attention["density"]
        linear = attention.get("linear", GroupedLinear)
        self.norm_attention = nn.LayerNorm(units, eps=1e-6)
        self.attention = MultiHeadAttention(units, heads, **attention)
        self.norm_ffn = nn.LayerNorm(units, eps=1e-6)
        self.ffn_in = linear(units, 4 * units, density, column_major=True)
        self.ffn_out = linear(4 * units, units, density, shuffle=False)
        self.drop_rate = drop_rate  # (its dropouts run fused: add_dropout, gelu_dropout)

    def forward(self, x: torch.Tensor, grid: Grid, keep: torch.Tensor | None = None) -> torch.Tensor:
        """With ``keep``, only those rows go on past attention (every row is still a key and
        value): the output is theirs, in that order."""
        attended = self.attention(self.norm_attention(x), grid, keep)
        x = add_dropout(x if keep is None else x[keep], attended, self.drop_rate, self.training)
        # The 4×-wide hidden layer stays in the products' dtype (half the bytes in bfloat16)
        # and, with bfloat16 products, column-major (see GroupedLinear); gelu and dropout
        # (one pass) run on its contiguous transpose — on the column-major view elementwise
        # passes are 2× slower. float32 products keep it row-major.
        hidden = self.ffn_in(self.norm_ffn(x), keep_product_dtype=True)
        if hidden.is_contiguous():
            hidden = gelu_dropout(hidden, self.drop_rate, self.training)
        else:
            hidden = gelu_dropout(hidden.t(), self.drop_rate, self.training).t()
        return add_dropout(x, self.ffn_out(hidden), self.drop_rate, self.training)


def positional_encoding(positions: torch.Tensor, units: int, keep: bool = False) -> torch.Tensor:
    """The sinusoidal position code of Vaswani et al. (sin on even, cos on odd dims) of each
    row's position, looked up in a table of the few positions there are. With ``keep``
    the table is kept and grown as needed: making it is a dozen calls, as many as the rest
    of a message's input layer (and ~1% of a TED training step, made again for every
    shard). A longer table's first rows are bitwise those of a shorter one."""
    needed = int(positions.max()) + 1 if positions.numel() else 1
    if not keep:
        return _position_table(needed, units)[positions]
    table = _position_tables.get(units)
    if table is None or len(table) < needed:
        with torch.inference_mode(False), torch.no_grad():
            table = _position_tables[units] = _position_table(max(needed, 64), units)
    return table[positions]


def _position_table(length: int, units: int) -> torch.Tensor:
    steps = torch.arange(length).float()
    dims = torch.arange(units)
    angles = steps.unsqueeze(1) / torch.pow(10000.0, (2 * (dims // 2)).float() / units)
    return torch.where(dims % 2 == 0, torch.sin(angles), torch.cos(angles))


_position_tables: dict[int, torch.Tensor] = {}


class TransformerEncoder(nn.Module):
    """As Rasa's: project to ``units``, scale by √units, add the position code, dropout, the
    blocks, a final layer norm."""

    def __init__(self, in_features: int, layers: int, units: int, heads: int, drop_rate: float,
                 attention_drop: float, density: float, key_relative: bool = False,
                 value_relative: bool = False, max_relative_position: int = 5,
                 unidirectional: bool = False, linear: type[nn.Module] = GroupedLinear) -> None:
        """``linear`` builds the layers: :class:`GroupedLinear` (DIET's, fast on wide
        layers) or :class:`RandomlyConnectedLinear` (Rasa's random mask; TED's)."""
        super().__init__()
        self.units = units
        self.project = linear(in_features, units, density)
        self.dropout = Dropout(drop_rate)
        self.blocks = nn.ModuleList(
            TransformerBlock(units, heads, drop_rate, attention_drop=attention_drop,
                             density=density, key_relative=key_relative,
                             value_relative=value_relative,
                             max_relative_position=max_relative_position,
                             unidirectional=unidirectional, linear=linear)
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(units, eps=1e-6)

    def forward(self, x: torch.Tensor, grid: Grid, keep: torch.Tensor | None = None) -> torch.Tensor:
        """The encoded rows; with ``keep``, only those rows (in that order), which spares the
        last block's output projection and feed-forward layer for the others."""
        positions = grid.row_positions
        x = (self.project(x) * math.sqrt(self.units)
             + positional_encoding(positions, self.units, keep=True))
        x = self.dropout(x)
        last = len(self.blocks) - 1
        for depth, block in enumerate(self.blocks):
            x = block(x, grid, keep if depth == last else None)
        if keep is not None and last < 0:
            x = x[keep]
        return self.norm(x)  # type: ignore[no-any-return]
