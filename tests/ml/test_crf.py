"""The linear-chain CRF: decoding, likelihood and marginals against brute force, and its
scaled forward-backward against the log-space recursion."""

from __future__ import annotations

import itertools
import math

import pytest

torch = pytest.importorskip("torch", reason="parley.ml needs PyTorch (pip install 'parley[torch]')")

from parley.ml.crf import CRF  # noqa: E402
from parley.ml.entity_tags import bilou_moves  # noqa: E402  (a real constraint set)

# Five entities' BILOU tags and O: 21 tags.
BILOU_NAMES = ["O"] + [f"{p}-{e}" for e in "abcde" for p in "BILU"]


def random_crf(seed: int, n_tags: int, constrained_to: list[str] | None = None) -> CRF:
    """A CRF with normal random transitions drawn after ``torch.manual_seed(seed)``,
    limited to the BILOU moves of ``constrained_to`` when given."""
    torch.manual_seed(seed)
    crf = CRF(n_tags)
    if constrained_to:
        crf.constrain(*(torch.tensor(m) for m in bilou_moves(constrained_to)))
    with torch.no_grad():
        crf.transitions.normal_()
    return crf


def test_constrained_crf_matches_brute_force_over_whole_bilou_spans():
    names = ["O", "B-a", "I-a", "L-a", "U-a", "U-b"]
    allowed, may_start, may_end = bilou_moves(names)
    torch.manual_seed(1)
    crf = CRF(len(names))
    crf.constrain(torch.tensor(allowed), torch.tensor(may_start), torch.tensor(may_end))
    with torch.no_grad():
        crf.transitions.normal_()
        crf.transitions[0, 2] = 5.0  # O → I-a: the best move, were it allowed
    emissions = torch.randn(2, 4, len(names)) * 2
    emissions[:, :, 2] += 3.0  # and I-a the best tag everywhere
    mask = torch.tensor([[True] * 4, [True, True, True, False]])
    tags, confidence = crf.decode(emissions, mask)

    def whole_spans(path: tuple[int, ...]) -> bool:
        return (may_start[path[0]] and may_end[path[-1]]
                and all(allowed[i][j] for i, j in itertools.pairwise(path)))

    for b, length in enumerate((4, 3)):
        paths = filter(whole_spans, itertools.product(range(len(names)), repeat=length))
        scores = _path_scores(crf, emissions[b], paths)
        best = max(scores, key=scores.get)
        assert tuple(tags[b, :length].tolist()) == best
        log_z = math.log(sum(math.exp(s) for s in scores.values()))
        nll = crf.negative_log_likelihood(emissions[b:b + 1], torch.tensor([best + (0,) * (4 - length)]),
                                          mask[b:b + 1])
        assert math.isclose(float(nll.detach()), log_z - scores[best], rel_tol=1e-4)
        for t in (0, length - 1):  # start and end constraints reach the marginals
            share = sum(math.exp(s) for p, s in scores.items() if p[t] == best[t]) / math.exp(log_z)
            assert math.isclose(float(confidence[b, t]), share, rel_tol=1e-4)


@pytest.mark.parametrize(("scale", "constrained"), [(3.0, False), (3.0, True), (200.0, True)])
def test_crf_log_partition_and_gradients_match_the_log_space_recursion(scale, constrained):
    """The scaled forward-backward (and, when scores are far enough apart to underflow it,
    its log-space fallback) gives autograd's log Z and gradients through the log-space
    recursion."""
    from parley.ml.crf import log_partition_in_log_space

    names = BILOU_NAMES
    crf = random_crf(3, len(names), names if constrained else None)
    emissions = (torch.randn(5, 7, len(names)) * scale).requires_grad_()
    mask = torch.arange(7)[None] < torch.tensor([7, 1, 3, 6, 7])[:, None]
    upstream = torch.randn(5)
    results = []
    for log_partition in (crf._log_partition, lambda e, m: log_partition_in_log_space(
            e, crf.transitions, m, crf.allowed, crf.start_penalty, crf.end_penalty)):
        emissions.grad = crf.transitions.grad = None
        log_z = log_partition(emissions, mask)
        (log_z * upstream).sum().backward()
        results.append((log_z.detach(), emissions.grad.clone(), crf.transitions.grad.clone()))
    for ours, reference in zip(*results, strict=True):
        assert torch.allclose(ours, reference, rtol=1e-4, atol=1e-4)
    assert results[0][1][~mask].abs().max() == 0  # padding gets no gradient

def _path_scores(crf: CRF, emissions: torch.Tensor, paths) -> dict[tuple[int, ...], float]:
    """Each tag path's score over one message's emissions: the brute-force reference."""
    scores = {}
    for path in paths:
        score = sum(emissions[t, k] for t, k in enumerate(path))
        score += sum(crf.transitions[i, j] for i, j in itertools.pairwise(path))
        scores[path] = float(score.detach())
    return scores


def _exact_log_partition(crf: CRF, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log Z in float64 with blocked moves at -inf: the reference for extreme scores."""
    scores = crf.transitions.detach().double().masked_fill(~crf.allowed, float("-inf"))
    start = crf.start_penalty.double().masked_fill(crf.start_penalty < 0, float("-inf"))
    end = crf.end_penalty.double().masked_fill(crf.end_penalty < 0, float("-inf"))
    out = []
    for e, m in zip(emissions.detach().double(), mask, strict=True):
        alpha = e[0] + start
        for t in range(1, int(m.sum())):
            alpha = torch.logsumexp(alpha[:, None] + scores, dim=0) + e[t]
        out.append(torch.logsumexp(alpha + end, dim=0))
    return torch.stack(out)


def tag_far_behind_wins_later() -> tuple[CRF, torch.Tensor]:
    """Two tags that may only repeat, and emissions where tag 1 starts 110 behind (its
    share underflows in probability space) and then wins: 1 → 1 → 1 → 1 scores −110,
    0 → … −180."""
    crf = CRF(2)
    crf.constrain(torch.eye(2, dtype=torch.bool), torch.tensor([True, True]),
                  torch.tensor([True, True]))
    with torch.no_grad():
        crf.transitions.zero_()
    emissions = torch.zeros(1, 4, 2)
    emissions[0, 0, 1] = -110.0
    emissions[0, 1:, 0] = -60.0
    return crf, emissions

def test_crf_log_partition_stays_exact_when_scores_are_far_apart():
    """Two cases a float32 forward pass in probability space gets wrong: a blocked move
    towards a tag 200 ahead (it must stay blocked), and a tag 110 behind at the start that
    wins later (its share underflows, then matters)."""
    names = ["O", "B-a", "I-a", "L-a", "U-a"]
    blocked = CRF(len(names))
    blocked.constrain(*(torch.tensor(m) for m in bilou_moves(names)))
    with torch.no_grad():
        blocked.transitions.zero_()
    far = torch.full((1, 2, len(names)), -200.0)
    far[0, :, 0] = 0.0
    far[0, 1, 3] = 200.0  # L-a, but O → L-a is not allowed
    recovering, late = tag_far_behind_wins_later()
    for crf, emissions in ((blocked, far), (recovering, late)):
        mask = torch.ones(emissions.shape[:2], dtype=torch.bool)
        emissions = emissions.clone().requires_grad_()
        log_z = crf._log_partition(emissions, mask)
        exact = float(_exact_log_partition(crf, emissions, mask))
        assert float(log_z.detach()) == pytest.approx(exact, abs=1e-3)
        log_z.sum().backward()
        assert torch.allclose(emissions.grad.sum(dim=2), torch.ones(1, emissions.shape[1]))


def test_crf_backward_falls_back_when_the_marginals_do_not_sum_to_one(monkeypatch):
    import parley.ml.crf as crf_module

    crf = random_crf(5, 4)
    emissions = torch.randn(3, 5, 4).requires_grad_()
    mask = torch.arange(5)[None] < torch.tensor([5, 2, 4])[:, None]
    gradients = []
    for tolerance in (1e-3, -1.0):  # -1: every check fails, the log-space gradients answer
        monkeypatch.setattr(crf_module, "_MARGINAL_TOLERANCE", tolerance)
        emissions.grad = crf.transitions.grad = None
        crf._log_partition(emissions, mask).sum().backward()
        gradients.append((emissions.grad.clone(), crf.transitions.grad.clone()))
    for scaled, log_space in zip(*gradients, strict=True):
        assert torch.allclose(scaled, log_space, atol=1e-5)


def test_crf_matches_brute_force():
    crf = random_crf(0, 3)
    emissions = torch.randn(2, 4, 3)
    mask = torch.tensor([[True] * 4, [True, True, True, False]])
    tags, confidence = crf.decode(emissions, mask)
    for b, length in enumerate((4, 3)):
        scores = _path_scores(crf, emissions[b], itertools.product(range(3), repeat=length))
        best = max(scores, key=scores.get)
        assert tuple(tags[b, :length].tolist()) == best
        log_z = math.log(sum(math.exp(s) for s in scores.values()))
        nll = crf.negative_log_likelihood(emissions[b:b + 1, :length],
                                          torch.tensor([best]), mask[b:b + 1, :length])
        assert math.isclose(float(nll.detach()), log_z - scores[best], rel_tol=1e-4)
        first = sum(math.exp(s) for p, s in scores.items() if p[0] == best[0]) / math.exp(log_z)
        assert math.isclose(float(confidence[b, 0]), first, rel_tol=1e-4)


def test_crf_log_space_fallback_on_one_token_messages_gives_zero_transition_gradients(
        monkeypatch):
    """One-token messages never use a transition; the fallback's autograd must say 0 for
    them, not fail (seen when a huge learning rate pushed DIET into the fallback)."""
    import parley.ml.crf as crf_module

    monkeypatch.setattr(crf_module, "_MARGINAL_TOLERANCE", -1.0)  # always the fallback
    crf = CRF(3)
    emissions = torch.randn(2, 1, 3).requires_grad_()
    crf._log_partition(emissions, torch.ones(2, 1, dtype=torch.bool)).sum().backward()
    assert torch.equal(crf.transitions.grad, torch.zeros_like(crf.transitions))
    assert torch.allclose(emissions.grad.sum(dim=2), torch.ones(2, 1))


@pytest.mark.parametrize(("scale", "constrained"), [(3.0, False), (3.0, True), (200.0, True)])
def test_crf_marginals_match_the_log_space_recursion(scale, constrained):
    """Prediction's marginals in probability space (with its fallback when scores are far
    enough apart to underflow it) are the log-space recursion's, padding and empty
    messages included."""
    names = BILOU_NAMES
    crf = random_crf(7, len(names), names if constrained else None)
    emissions = torch.randn(4, 6, len(names)) * scale
    mask = torch.arange(6)[None] < torch.tensor([6, 3, 1, 0])[:, None]
    scaled = crf.marginals(emissions, mask)
    exact = crf._marginals_in_log_space(emissions, mask)
    assert torch.allclose(scaled, exact, atol=1e-5)
    assert torch.allclose(scaled.sum(dim=2), torch.ones(4, 6), atol=1e-5)


def test_crf_marginals_stay_exact_when_a_tag_far_behind_wins_later():
    recovering, late = tag_far_behind_wins_later()
    mask = torch.ones(1, 4, dtype=torch.bool)
    marginals = recovering.marginals(late, mask)
    assert torch.allclose(marginals, recovering._marginals_in_log_space(late, mask), atol=1e-6)
    tags, _ = recovering.decode(late, mask)
    assert tags.tolist() == [[1, 1, 1, 1]]  # 1 → 1 → 1 → 1 scores −110, 0 → … −180
