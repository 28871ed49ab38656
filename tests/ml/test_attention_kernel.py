"""Attention within each message in C (parley/ml/attention_kernel.py) against torch's
blocks of rows (MultiHeadAttention's own path): the same outputs and gradients, forward
and backward, both directions, float32 and bfloat16; and what it refuses."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from parley.ml import attention_kernel, layers
from parley.ml.batching import pack_rows
from parley.ml.layers import Grid, MultiHeadAttention

needs_kernel = pytest.mark.skipif(not attention_kernel.AVAILABLE,
                                  reason="the attention C kernel is not built")

UNITS, HEADS = 64, 4


def _grid(rows: list[int], quantum: int = 32) -> Grid:
    """Messages of ``rows`` rows each, laid out in attention blocks, padded to ``quantum``."""
    _, chunks, positions = pack_rows(torch, np.asarray(rows), quantum)
    return Grid(chunks, positions)


def _through(layer: MultiHeadAttention, x: torch.Tensor, grid: Grid, in_c: bool,
             keep: torch.Tensor | None = None, monkeypatch: pytest.MonkeyPatch | None = None
             ) -> tuple[torch.Tensor, ...]:
    """The layer's output, and the gradients of its input and weights, one way or the other."""
    assert monkeypatch is not None
    monkeypatch.setattr(layers, "MESSAGE_ATTENTION_IN_C", in_c)
    x = x.detach().requires_grad_()
    layer.zero_grad()
    out = layer(x, grid, keep)
    out.backward(torch.randn(out.shape, generator=torch.Generator().manual_seed(3)))
    return (out.detach(), x.grad, *(p.grad for p in layer.parameters()))


@needs_kernel
@pytest.mark.parametrize("unidirectional", [False, True])
@pytest.mark.parametrize("rows", [[3, 7, 1, 12, 5, 5, 2], [40, 2], [1]])
def test_attention_in_c_computes_what_the_blocks_compute(unidirectional, rows, monkeypatch):
    """float32 throughout (the layer in prediction dtype): only the order of the sums
    differs. Messages longer than a block, one-row messages and padding rows included."""
    torch.manual_seed(0)
    layer = MultiHeadAttention(UNITS, HEADS, 0.0, 1.0, False, False, 5, unidirectional).eval()
    grid = _grid(rows)
    x = torch.randn(grid.row_positions.shape[0], UNITS)
    mine = _through(layer, x, grid, True, monkeypatch=monkeypatch)
    theirs = _through(layer, x, grid, False, monkeypatch=monkeypatch)
    for a, b in zip(mine, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@needs_kernel
def test_kept_rows_get_their_own_outputs(monkeypatch):
    torch.manual_seed(1)
    layer = MultiHeadAttention(UNITS, HEADS, 0.0, 1.0, False, False, 5, False).eval()
    grid = _grid([4, 6, 3])
    x = torch.randn(grid.row_positions.shape[0], UNITS)
    keep = torch.tensor([4, 0, 14])
    mine = _through(layer, x, grid, True, keep, monkeypatch)
    theirs = _through(layer, x, grid, False, keep, monkeypatch)
    for a, b in zip(mine, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@needs_kernel
@pytest.mark.parametrize("unidirectional", [False, True])
def test_in_bfloat16_it_stays_within_bfloat16s_rounding(unidirectional):
    """The kernel rounds once, where torch rounds the scores and the weights too: the two
    agree to a few bfloat16 steps, and the kernel is the closer to float32's result."""
    grid = _grid([5, 9, 2, 6] * 4)
    projected = torch.randn(grid.row_positions.shape[0], 3 * UNITS,
                            generator=torch.Generator().manual_seed(2))
    grad = torch.randn(projected.shape[0], UNITS, generator=torch.Generator().manual_seed(4))
    exact = _kernel_pass(projected, grad, grid, unidirectional)
    rounded = _kernel_pass(projected.to(torch.bfloat16), grad.to(torch.bfloat16), grid,
                           unidirectional)
    for a, b in zip(rounded, exact, strict=True):
        assert a.dtype == torch.bfloat16
        torch.testing.assert_close(a.float(), b, rtol=0.05, atol=0.05)


def _kernel_pass(projected: torch.Tensor, grad: torch.Tensor, grid: Grid, causal: bool
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    projected = projected.detach().requires_grad_()
    out = attention_kernel.attend(projected, grid.run_starts, HEADS, UNITS // HEADS, causal)
    out.backward(grad)
    return out.detach(), projected.grad


@needs_kernel
def test_a_run_is_a_message_and_a_padding_row_is_one_of_its_own():
    rows = np.asarray([2, 3])  # a message's rows: its tokens and its sentence
    first, chunks, positions = pack_rows(torch, rows, 8)
    starts = Grid(chunks, positions).run_starts
    total = positions.shape[0]
    assert starts[0] == 0 and starts[-1] == total
    runs = dict(zip(starts[:-1].tolist(), np.diff(starts).tolist(), strict=True))
    for start, length in zip(first.tolist(), rows.tolist(), strict=True):
        assert runs.pop(start) == length
    assert set(runs.values()) == {1} and len(runs) == total - rows.sum()  # the padding


@needs_kernel
def test_the_kernel_refuses_runs_that_do_not_cover_the_rows():
    kernel = attention_kernel._kernel
    projected = np.zeros((4, 3 * UNITS), np.float32)
    out = np.zeros((4, UNITS), np.float32)
    weights = np.zeros(16 * HEADS, np.float32)
    for starts in ([0, 3], [0, 2, 2, 4], [1, 4], [0, 5]):
        with pytest.raises(ValueError, match="run starts"):
            kernel.forward(projected, np.asarray(starts, np.int64), HEADS, UNITS // HEADS,
                           0.25, False, False, out, weights)
    with pytest.raises(ValueError, match="weights"):
        kernel.forward(projected, np.asarray([0, 4], np.int64), HEADS, UNITS // HEADS, 0.25,
                       False, False, out, weights[:-1])
    with pytest.raises(ValueError, match="shapes"):
        kernel.forward(projected.reshape(-1)[:-1], np.asarray([0, 4], np.int64), HEADS, UNITS // HEADS,
                       0.25, False, False, out, weights)


def test_ci_should_have_built_the_attention_kernel():
    """CI sets PARLEY_REQUIRE_C_KERNEL: a build that quietly failed would leave training on
    torch's blocks (and every test above skipped)."""
    if not os.environ.get("PARLEY_REQUIRE_C_KERNEL"):
        pytest.skip("PARLEY_REQUIRE_C_KERNEL is not set (CI sets it)")
    assert attention_kernel.AVAILABLE, "parley/ml/_attention.c was not built (pip install -e .)"
