"""Parley's Adam against torch.optim.Adam(fused=True): the same numbers, bit for bit."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from parley.ml.adam import Adam  # noqa: E402


def _problem(seed: int) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    generator = torch.Generator().manual_seed(seed)
    decayed = [torch.nn.Parameter(torch.randn(7, 5, generator=generator)),
               torch.nn.Parameter(torch.randn(5, 3, generator=generator).t())]  # not contiguous
    plain = [torch.nn.Parameter(torch.randn(3, generator=generator)),
             torch.nn.Parameter(torch.randn(4, generator=generator))]  # never gets a gradient
    return decayed, plain


def _loss(decayed: list[torch.Tensor], plain: list[torch.Tensor], x: torch.Tensor,
          use_first: bool) -> torch.Tensor:
    hidden = torch.tanh(x @ decayed[0]) if use_first else x[:, :5]
    return ((hidden @ decayed[1].t() + plain[0]) ** 2).mean()


def test_matches_torch_fused_adam_bitwise_with_decay_and_unused_parameters() -> None:
    ours_decayed, ours_plain = _problem(0)
    theirs_decayed, theirs_plain = _problem(0)
    ours = Adam([(ours_decayed, 0.01), (ours_plain, 0.0)], lr=0.01, eps=1e-7)
    theirs = torch.optim.Adam([{"params": theirs_decayed, "weight_decay": 0.01},
                               {"params": theirs_plain, "weight_decay": 0.0}],
                              lr=0.01, eps=1e-7, fused=True)
    inputs = torch.Generator().manual_seed(1)
    for step in range(12):
        x = torch.randn(16, 7, generator=inputs)
        use_first = step % 3 != 1  # some steps leave the first kernel without a gradient
        for params, optimizer in ((ours_decayed + ours_plain, ours),
                                  (theirs_decayed + theirs_plain, theirs)):
            optimizer.zero_grad()
            _loss(params[:2], params[2:], x, use_first).backward()
            optimizer.step()
    for mine, reference in zip(ours_decayed + ours_plain, theirs_decayed + theirs_plain,
                               strict=True):
        assert torch.equal(mine, reference)
    assert not torch.equal(ours_decayed[0], _problem(0)[0][0])  # it did train
    assert torch.equal(ours_plain[1], _problem(0)[1][1])  # no gradient, never moved


def test_rejects_parameters_it_cannot_update() -> None:
    with pytest.raises(ValueError, match="floating-point"):
        Adam([([torch.nn.Parameter(torch.zeros(3, dtype=torch.int64), requires_grad=False)],
               0.0)], lr=0.1)


def test_a_step_in_shares_updates_every_parameter_as_one_step_does() -> None:
    whole_decayed, whole_plain = _problem(2)
    split_decayed, split_plain = _problem(2)
    whole = Adam([(whole_decayed, 0.01), (whole_plain, 0.0)], lr=0.01)
    split = Adam([(split_decayed, 0.01), (split_plain, 0.0)], lr=0.01)
    inputs = torch.Generator().manual_seed(3)
    for step in range(6):
        x = torch.randn(16, 7, generator=inputs)
        for params, optimizer, parts in ((whole_decayed + whole_plain, whole, 1),
                                         (split_decayed + split_plain, split, 3)):
            optimizer.zero_grad()
            _loss(params[:2], params[2:], x, use_first=step != 2).backward()
            for part in reversed(range(parts)):
                optimizer.step(part, parts)
    for a, b in zip(whole_decayed + whole_plain, split_decayed + split_plain, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(whole_decayed[0], _problem(2)[0][0])  # it did train
