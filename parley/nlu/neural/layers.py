"""DIET's building blocks in PyTorch: sparse input, randomly connected dense, transformer.

They follow Rasa's layers in what their parameters mean (``connection_density``,
``drop_rate``, relative attention, pre-norm transformer blocks) but are written for speed on
a CPU: sparse inputs go through ``embedding_bag``, nothing is padded that need not be.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - torch's own convention

from parley.nlu.neural.inputs import Chunk, SparseRows


def dropout(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Inverted dropout with a mask from random bytes (rate resolved to 1/256).

    torch draws a float per element for its dropout; eight random bytes per 64-bit draw make
    the mask several times cheaper, which matters when dropout runs on every layer.
    """
    if not training or rate <= 0 or x.numel() == 0:
        return x
    threshold = min(max(round(rate * 256), 1), 255)
    words = torch.empty((x.numel() + 7) // 8, dtype=torch.int64).random_()
    keep = words.view(torch.uint8)[: x.numel()].view(x.shape) >= threshold
    return x * keep * (256.0 / (256 - threshold))


class Dropout(nn.Module):
    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.rate, self.training)


@dataclass
class Grid:
    """Where a batch's packed rows sit for attention: one small grid per chunk of messages
    (see ``inputs``), and each row's position in its message."""

    chunks: list[Chunk]
    row_positions: torch.Tensor

    @staticmethod
    def to_grid(x: torch.Tensor, chunk: Chunk) -> torch.Tensor:
        out = x.new_zeros(chunk.size * chunk.positions, x.shape[-1])
        return out.index_copy(0, chunk.index, x).view(chunk.size, chunk.positions, -1)

    @staticmethod
    def from_grid(x: torch.Tensor, chunk: Chunk) -> torch.Tensor:
        return x.reshape(chunk.size * chunk.positions, -1).index_select(0, chunk.index)


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
        out = F.embedding_bag(rows.indices, self.weight, rows.offsets, mode="sum",
                              per_sample_weights=values, include_last_offset=False)
        return out + self.bias


class RandomlyConnectedLinear(nn.Module):
    """A dense layer where only a fraction ``density`` of the input→output connections exist.

    Rasa draws the connections at random and multiplies a dense kernel by a 0/1 mask, paying
    for every zero. Here the inputs are shuffled once at random and dealt into
    ``g = round(1 / density)`` groups; the outputs are split into ``g`` groups too, and each
    output group connects to one input group. Every input reaches some outputs, every output
    some inputs, exactly a fraction 1/g of the connections exist — and the layer costs 1/g
    of a dense one. ``density: 1`` is fully connected.

    Measured against Rasa's random mask (kept in Parley's history) on snips-small with
    Rasa's default pipeline: intent accuracy 0.936 vs 0.933, entity F1 0.377 vs 0.383 — the
    same within seed noise — at 0.6 of the training time.
    """

    def __init__(self, in_features: int, out_features: int, density: float = 1.0,
                 bias: bool = True) -> None:
        super().__init__()
        groups = max(1, min(round(1.0 / density), in_features, out_features))
        self.in_features, self.out_features, self.groups = in_features, out_features, groups
        if groups == 1:
            self.linear: nn.Linear | None = nn.Linear(in_features, out_features, bias=bias)
            return
        self.linear = None
        # Inputs in a random order, then dealt into contiguous groups of that order.
        self.register_buffer("order", torch.randperm(in_features))
        input_bounds = _bounds(in_features, groups)
        output_bounds = _bounds(out_features, groups)
        self.input_sizes = [b - a for a, b in input_bounds]
        self.weight = nn.ParameterList(
            nn.Parameter(torch.empty(i1 - i0, o1 - o0).uniform_(-1, 1) / math.sqrt(i1 - i0))
            for (i0, i1), (o0, o1) in zip(input_bounds, output_bounds, strict=True))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.linear is not None:
            return self.linear(x)  # type: ignore[no-any-return]
        # One gather, one split (its gradient is one concatenation), a small matmul per group.
        groups = x.index_select(-1, self.order).split(self.input_sizes, dim=-1)
        out = torch.cat([part @ weight for part, weight in zip(groups, self.weight, strict=True)],
                        dim=-1)
        return out + self.bias if self.bias is not None else out


def _bounds(size: int, groups: int) -> list[tuple[int, int]]:
    """``groups`` contiguous ranges covering ``range(size)``, sizes differing by at most one."""
    edges = [round(k * size / groups) for k in range(groups + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


class FeedForward(nn.Module):
    """Rasa's ``Ffnn``: dense layers with GELU and dropout (none for an empty size list)."""

    def __init__(self, in_features: int, sizes: list[int], drop_rate: float, density: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for size in sizes:
            layers += [RandomlyConnectedLinear(in_features, size, density), nn.GELU(),
                       Dropout(drop_rate)]
            in_features = size
        self.layers = nn.Sequential(*layers)
        self.out_features = in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # type: ignore[no-any-return]


class MultiHeadAttention(nn.Module):
    def __init__(self, units: int, heads: int, attention_drop: float, density: float,
                 key_relative: bool, value_relative: bool, max_relative_position: int,
                 unidirectional: bool) -> None:
        super().__init__()
        if units % heads:
            raise ValueError(f"transformer_size {units} is not divisible by "
                             f"number_of_attention_heads {heads}")
        self.heads = heads
        self.depth = units // heads
        self.query = RandomlyConnectedLinear(units, units, density, bias=False)
        self.key = RandomlyConnectedLinear(units, units, density, bias=False)
        self.value = RandomlyConnectedLinear(units, units, density, bias=False)
        self.out = RandomlyConnectedLinear(units, units, density)
        self.attention_drop = attention_drop
        self.unidirectional = unidirectional
        self.max_relative_position = max_relative_position
        span = 2 * max_relative_position + 1
        self.key_relative = nn.Parameter(torch.randn(span, self.depth) * 0.02) if key_relative else None
        self.value_relative = (nn.Parameter(torch.randn(span, self.depth) * 0.02)
                               if value_relative else None)

    def forward(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        """``x``: packed rows × units; attention runs chunk by chunk on small grids, the
        rest packed."""
        queries, keys, values = self.query(x), self.key(x), self.value(x)
        drop = self.attention_drop if self.training else 0.0
        outs = []
        for chunk in grid.chunks:
            b, t = chunk.size, chunk.positions
            q, k, v = (Grid.to_grid(part[chunk.start:chunk.end], chunk)
                       .view(b, t, self.heads, self.depth).transpose(1, 2)
                       for part in (queries, keys, values))
            mask = (~chunk.pad)[:, None, None, :]  # attend only to real positions
            if self.unidirectional:
                mask = mask & torch.ones(t, t, dtype=torch.bool).tril()
            out = self._attention(q, k, v, mask, drop)
            outs.append(Grid.from_grid(out.transpose(1, 2), chunk))
        return self.out(torch.cat(outs) if len(outs) > 1 else outs[0])  # type: ignore[no-any-return]

    def _attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   mask: torch.Tensor, drop: float) -> torch.Tensor:
        """Scaled dot-product attention, with learned embeddings of the clipped distance
        j − i when relative attention is on (Shaw et al. 2018). Written out: for messages
        of a few dozen tokens it is faster than torch's fused kernel."""
        t = q.shape[2]
        scores = q @ k.transpose(-1, -2)
        if self.key_relative is not None or self.value_relative is not None:
            distance = torch.arange(t)[None, :] - torch.arange(t)[:, None]
            bucket = distance.clamp(-self.max_relative_position, self.max_relative_position)
            bucket = bucket + self.max_relative_position
        if self.key_relative is not None:
            scores = scores + torch.einsum("bhid,ijd->bhij", q, self.key_relative[bucket])
        scores = scores / math.sqrt(self.depth)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = dropout(torch.softmax(scores, dim=-1), drop, self.training)
        out = weights @ v
        if self.value_relative is not None:
            out = out + torch.einsum("bhij,ijd->bhid", weights, self.value_relative[bucket])
        return out


class TransformerBlock(nn.Module):
    """Pre-norm block as in Rasa: x + Attention(LN(x)), then x + FFN(LN(x)) with 4× units."""

    def __init__(self, units: int, heads: int, drop_rate: float, **attention: Any) -> None:
        super().__init__()
        density = attention["density"]
        self.norm_attention = nn.LayerNorm(units, eps=1e-6)
        self.attention = MultiHeadAttention(units, heads, **attention)
        self.norm_ffn = nn.LayerNorm(units, eps=1e-6)
        self.ffn_in = RandomlyConnectedLinear(units, 4 * units, density)
        self.ffn_out = RandomlyConnectedLinear(4 * units, units, density)
        self.dropout = Dropout(drop_rate)

    def forward(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        x = x + self.dropout(self.attention(self.norm_attention(x), grid))
        hidden = self.dropout(F.gelu(self.ffn_in(self.norm_ffn(x))))
        return x + self.dropout(self.ffn_out(hidden))


def positional_encoding(positions: torch.Tensor, units: int) -> torch.Tensor:
    """The sinusoidal position code of Vaswani et al. (sin on even, cos on odd dims)."""
    dims = torch.arange(units)
    angles = positions.float().unsqueeze(1) / torch.pow(10000.0, (2 * (dims // 2)).float() / units)
    return torch.where(dims % 2 == 0, torch.sin(angles), torch.cos(angles))


class TransformerEncoder(nn.Module):
    """As Rasa's: project to ``units``, scale by √units, add the position code, dropout, the
    blocks, a final layer norm."""

    def __init__(self, in_features: int, layers: int, units: int, heads: int, drop_rate: float,
                 attention_drop: float, density: float, key_relative: bool = False,
                 value_relative: bool = False, max_relative_position: int = 5,
                 unidirectional: bool = False) -> None:
        super().__init__()
        self.units = units
        self.project = RandomlyConnectedLinear(in_features, units, density)
        self.dropout = Dropout(drop_rate)
        self.blocks = nn.ModuleList(
            TransformerBlock(units, heads, drop_rate, attention_drop=attention_drop,
                             density=density, key_relative=key_relative,
                             value_relative=value_relative,
                             max_relative_position=max_relative_position,
                             unidirectional=unidirectional)
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(units, eps=1e-6)

    def forward(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        positions = grid.row_positions
        x = self.project(x) * math.sqrt(self.units) + positional_encoding(positions, self.units)
        x = self.dropout(x)
        for block in self.blocks:
            x = block(x, grid)
        return self.norm(x)  # type: ignore[no-any-return]
