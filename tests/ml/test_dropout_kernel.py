"""The C kernel of dropout (parley/ml/_dropout.c) against the numpy-mask-and-torch code it
stands in for: the same bytes, and bit for bit the same products, forward and backward —
so a model trains to the same weights with it or without it."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from parley.ml import dropout_kernel, layers
from parley.ml.torch_env import drawing_from

needs_kernel = pytest.mark.skipif(not dropout_kernel.usable(),
                                  reason="the dropout C kernel is not built or not exact here")


@pytest.fixture
def without_kernel(monkeypatch):
    def off() -> None:
        monkeypatch.setattr(dropout_kernel, "_usable", False)
    return off


@needs_kernel
@pytest.mark.parametrize("count", [0, 1, 7, 8, 9, 4099, 100_003])
def test_the_kernel_draws_numpys_sfc64_bytes(count):
    for seed in (0, 1, 2**62 + 5):
        expected = np.random.SFC64(seed).random_raw((count + 7) // 8).view(np.uint8)[:count]
        assert np.array_equal(dropout_kernel.stream_bytes(seed, count), expected)


def _draws(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _dropped(x: torch.Tensor, fused_with: torch.Tensor | None = None,
             transpose_grad: bool = False) -> tuple[torch.Tensor, ...]:
    """Output and gradients of a dropout (or ``fused_with + dropout(x)``) of ``x``."""
    x = x.detach().requires_grad_()
    base = None if fused_with is None else fused_with.detach().requires_grad_()
    with drawing_from(_draws(7)):
        out = (layers.dropout(x, 0.2, True) if base is None
               else layers.add_dropout(base, x, 0.1, True))
    grad = torch.randn(out.shape[::-1] if transpose_grad else out.shape,
                       generator=_draws(3)).to(out.dtype)
    out.backward(grad.t() if transpose_grad else grad)
    return (out, x.grad) + (() if base is None else (base.grad,))


def _same(a: tuple[torch.Tensor, ...], b: tuple[torch.Tensor, ...]) -> bool:
    return all(p.dtype == q.dtype and p.shape == q.shape and
               torch.equal(p.view(torch.int16) if p.dtype == torch.bfloat16 else p,
                           q.view(torch.int16) if q.dtype == torch.bfloat16 else q)
               for p, q in zip(a, b, strict=True))


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("shape", "transpose_grad"), [((37, 1029), False), ((37, 1029), True),
                                                     ((5,), False), ((3, 4, 5), False)])
def test_dropout_is_bitwise_the_mask_and_multiply_forward_and_backward(dtype, shape,
                                                                      transpose_grad,
                                                                      without_kernel):
    """Forward and backward: torch's mask-and-multiply gives these very bits (the FFN's
    dropout gets its gradient transposed)."""
    x = (torch.randn(shape, generator=_draws(1)) * 4).to(dtype)
    x.view(-1)[:3] = torch.tensor([float("inf"), -0.0, 1e-40])  # (no NaN: its bits vary)
    mine = _dropped(x, transpose_grad=transpose_grad)
    without_kernel()
    assert _same(mine, _dropped(x, transpose_grad=transpose_grad))


@needs_kernel
def test_a_transposed_input_is_dropped_as_its_logical_elements(without_kernel):
    x = torch.randn(300, 41, generator=_draws(2)).t()  # not contiguous, its transpose is
    mine = _dropped(x)
    without_kernel()
    assert _same(mine, _dropped(x))


@needs_kernel
def test_a_residual_dropout_is_bitwise_torchs_addcmul(without_kernel):
    if not dropout_kernel.fused_add_usable():
        pytest.skip("torch's addcmul does not fuse its multiply-add on this CPU")
    x, y = (torch.randn(97, 263, generator=_draws(k)) for k in (4, 5))
    mine = _dropped(y, fused_with=x)
    without_kernel()
    assert _same(mine, _dropped(y, fused_with=x))


@needs_kernel
def test_a_diet_model_trains_to_the_same_weights_with_or_without_the_kernel(monkeypatch):
    from tests.nlu.neural.test_diet import trained

    with_kernel, _ = trained(epochs=3, use_masked_language_model=True)
    monkeypatch.setattr(dropout_kernel, "_usable", False)
    monkeypatch.setattr(dropout_kernel, "AVAILABLE", False)  # the GELU's pass too
    without, _ = trained(epochs=3, use_masked_language_model=True)
    a, b = with_kernel.model_.state_dict(), without.model_.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@needs_kernel
def test_the_kernel_refuses_buffers_of_the_wrong_size():
    kernel = dropout_kernel._kernel
    x = np.zeros(10, np.float32)
    with pytest.raises(ValueError, match="bytes"):
        kernel.scale(x, np.zeros(9, np.uint8), 26, 1.25, False, np.zeros(10, np.float32))
    with pytest.raises(ValueError, match="out"):
        kernel.scale(x, np.zeros(10, np.uint8), 26, 1.25, False, np.zeros(9, np.float32))
    with pytest.raises(ValueError, match="threshold"):
        kernel.scale(x, np.zeros(10, np.uint8), 300, 1.25, False, x.copy())
    with pytest.raises(ValueError, match="state"):
        kernel.stream(np.zeros(3, np.uint64), np.zeros(8, np.uint8))


def test_ci_should_have_built_the_dropout_kernel():
    """CI sets PARLEY_REQUIRE_C_KERNEL: a build that quietly failed would leave training on
    the slower mask-and-multiply path (and every test above skipped)."""
    if not os.environ.get("PARLEY_REQUIRE_C_KERNEL"):
        pytest.skip("PARLEY_REQUIRE_C_KERNEL is not set (CI sets it)")
    assert dropout_kernel.AVAILABLE, "parley/ml/_dropout.c was not built (pip install -e .)"


@needs_kernel
def test_a_ted_policy_trains_to_the_same_weights_with_or_without_the_kernel(monkeypatch):
    from parley.dialogue.policies.ted import TEDPolicy
    from tests.dialogue.test_ted import trackers

    weights = []
    for usable in (True, False):
        monkeypatch.setattr(dropout_kernel, "_usable", None if usable else False)
        monkeypatch.setattr(dropout_kernel, "AVAILABLE", usable)  # the GELU's pass too
        domain, found = trackers()
        ted = TEDPolicy(epochs=6, random_seed=3, batch_size=[8, 16]).fit(found, domain)
        weights.append(ted.model_.state_dict())
    a, b = weights
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
