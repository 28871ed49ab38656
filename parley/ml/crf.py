"""A linear-chain CRF over per-token tag scores: the entity tagger on top of DIET.

Training maximises the log-likelihood of the gold tag sequence; prediction takes the
Viterbi path, and each token's confidence is the marginal probability of its tag on that
path (forward–backward). The forward recursion runs as a matrix product in exp-space,
shifted by the running maximum, so it costs one small matmul per position.
"""

from __future__ import annotations

import torch
from torch import nn


BLOCKED = -1e4  # the score of a move that is not allowed: exp() of it is 0


class CRF(nn.Module):
    def __init__(self, n_tags: int) -> None:
        super().__init__()
        self.n_tags = n_tags
        # from → to; Glorot-uniform like Rasa's CRF layer (and L2-regularised like its kernels)
        self.transitions = nn.Parameter(nn.init.xavier_uniform_(torch.empty(n_tags, n_tags)))
        # Which moves a tag sequence may make (all by default; see constrain).
        self.register_buffer("allowed", torch.ones(n_tags, n_tags, dtype=torch.bool), persistent=False)
        self.register_buffer("start_penalty", torch.zeros(n_tags), persistent=False)
        self.register_buffer("end_penalty", torch.zeros(n_tags), persistent=False)
        self._unreachable: torch.Tensor | None = None  # per position, as long as asked so far

    def constrain(self, allowed: torch.Tensor, may_start: torch.Tensor, may_end: torch.Tensor) -> None:
        """Only sequences that start, move and end as allowed get any probability."""
        self.allowed = allowed.clone()
        self.start_penalty = torch.where(may_start, 0.0, BLOCKED)
        self.end_penalty = torch.where(may_end, 0.0, BLOCKED)
        self._unreachable = None

    def unreachable(self, length: int) -> torch.Tensor:
        """``length`` × K: 1.0 where no allowed sequence has that tag at that position, else 0."""
        if self._unreachable is None or len(self._unreachable) < length:
            reachable = reachable_tags(self.allowed, self.start_penalty == 0, length)
            self._unreachable = (~reachable).float()
        return self._unreachable[:length]

    def _scores(self) -> torch.Tensor:
        return self.transitions.masked_fill(~self.allowed, BLOCKED)

    def _log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log Z per sequence; ``emissions`` B × T × K, ``mask`` B × T (True = real token)."""
        return _LogPartition.apply(emissions, self.transitions, mask, self.allowed,  # type: ignore[no-any-return]
                                   self.start_penalty, self.end_penalty,
                                   self.unreachable(emissions.shape[1]))

    def _gold_score(self, emissions: torch.Tensor, tags: torch.Tensor,
                    mask: torch.Tensor) -> torch.Tensor:
        maskf = mask.float()
        emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)
        score = (emitted * maskf).sum(dim=1) + self.start_penalty[tags[:, 0]]
        last = tags.gather(1, (mask.sum(dim=1, keepdim=True) - 1).clamp(min=0)).squeeze(1)
        score = score + self.end_penalty[last]
        if emissions.shape[1] > 1:
            steps = self.transitions[tags[:, :-1], tags[:, 1:]]
            score = score + (steps * maskf[:, 1:]).sum(dim=1)
        return score

    def negative_log_likelihood(self, emissions: torch.Tensor, tags: torch.Tensor,
                                mask: torch.Tensor) -> torch.Tensor:
        """Mean over the sequences that have at least one token."""
        has_tokens = mask[:, 0]
        with_tokens = int(has_tokens.sum())
        if not with_tokens:
            return emissions.sum() * 0.0
        if with_tokens < len(has_tokens):  # (all have, as in training: no copies to make)
            emissions, tags, mask = emissions[has_tokens], tags[has_tokens], mask[has_tokens]
        nll = self._log_partition(emissions, mask) - self._gold_score(emissions, tags, mask)
        return nll.mean()

    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The Viterbi tags (B × T, 0 at padding) and their marginal probabilities."""
        b, t, k = emissions.shape
        transitions = self._scores().unsqueeze(0)
        score = emissions[:, 0] + self.start_penalty
        steps = emissions.unbind(1)
        keeps = mask.unsqueeze(2).unbind(1)
        identity = torch.arange(k).expand(b, k)
        full = bool(mask.all())  # no padding (one message): nothing to carry over
        back = []
        for i in range(1, t):
            best, arg = (score.unsqueeze(2) + transitions).max(dim=1)  # B × from × to
            score = best + steps[i] if full else torch.where(keeps[i], best + steps[i], score)
            back.append(arg if full else torch.where(keeps[i], arg, identity))
        last = (score + self.end_penalty).argmax(dim=1, keepdim=True)
        path = [last]
        for pointers in reversed(back):
            last = pointers.gather(1, last)
            path.append(last)
        tags = torch.cat(path[::-1], dim=1)
        confidence = self.marginals(emissions, mask).gather(2, tags.unsqueeze(2)).squeeze(2)
        # Padding after a sequence's end: back-pointers there were identity, reset to 0.
        tags = tags.masked_fill(~mask, 0)
        return tags, confidence * mask

    @torch.no_grad()
    def marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """P(tag at t = k | sequence), B × T × K, by the scaled forward–backward algorithm
        (as :class:`_LogPartition`'s, in probability space: one small product a position;
        a ``logsumexp`` over every move costs ~10× more). When a step's sum underflows or a
        token's marginals do not sum to one, the log-space recursion answers instead."""
        b, t, k = emissions.shape
        transitions = self._scores()
        shift = transitions.max()
        exp_transitions = torch.exp(transitions - shift)  # blocked moves: exactly 0
        probabilities = torch.exp(emissions - emissions.amax(dim=2, keepdim=True))
        steps = probabilities.unbind(1)
        keeps = mask.unsqueeze(2).unbind(1)
        full = bool(mask.all())  # no padding: no step is carried over
        alpha = steps[0] * torch.exp(self.start_penalty)
        sums = [alpha.sum(dim=1, keepdim=True)]
        alphas = [alpha / sums[0]]
        for i in range(1, t):
            step = (alphas[-1] @ exp_transitions) * steps[i]
            sums.append(step.sum(dim=1, keepdim=True))
            step = step / sums[-1]
            alphas.append(step if full else torch.where(keeps[i], step, alphas[-1]))
        # β̂ at a sequence's last token is exp(end penalty), carried back over padding
        betas = [torch.exp(self.end_penalty).expand(b, k)] * t
        exp_back = exp_transitions.t()
        for i in range(t - 2, -1, -1):
            step = (steps[i + 1] * betas[i + 1] / sums[i + 1]) @ exp_back
            betas[i] = step if full else torch.where(keeps[i + 1], step, betas[i + 1])
        joint = torch.stack(alphas, dim=1) * torch.stack(betas, dim=1)
        # Σ_k α̂·β̂ is the same at every position of a sequence (P(sequence) over the scales)
        totals = joint.sum(dim=2, keepdim=True)
        least = torch.cat(sums, dim=1).masked_fill(~mask, 1.0).amin()
        spread = (totals / totals[:, -1:] - 1).abs().amax() if t else joint.new_zeros(())
        least, lowest, spread = torch.stack([least, totals.amin(), spread]).tolist()
        if not (least >= _UNDERFLOW and lowest >= _UNDERFLOW
                and spread <= _MARGINAL_TOLERANCE):  # "not ≥": NaN falls back too
            return self._marginals_in_log_space(emissions, mask)
        return joint / totals

    def _marginals_in_log_space(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """:meth:`marginals` by a ``logsumexp`` over every move: exact whatever the scores."""
        b, t, k = emissions.shape
        transitions = self._scores()
        alphas = [emissions[:, 0] + self.start_penalty]
        for i in range(1, t):
            step = torch.logsumexp(alphas[-1].unsqueeze(2) + transitions, dim=1) + emissions[:, i]
            alphas.append(torch.where(mask[:, i:i + 1], step, alphas[-1]))
        # beta at a sequence's last token is its end penalty, carried back over padding
        betas = [self.end_penalty.expand(b, k)] * t
        for i in range(t - 2, -1, -1):
            step = torch.logsumexp(transitions.unsqueeze(0) + (emissions[:, i + 1]
                                   + betas[i + 1]).unsqueeze(1), dim=2)
            betas[i] = torch.where(mask[:, i + 1:i + 2], step, betas[i + 1])
        alpha = torch.stack(alphas, dim=1)
        beta = torch.stack(betas, dim=1)
        return torch.softmax(alpha + beta, dim=2)


def log_partition_in_log_space(emissions: torch.Tensor, transitions: torch.Tensor,
                               mask: torch.Tensor, allowed: torch.Tensor,
                               start_penalty: torch.Tensor, end_penalty: torch.Tensor
                               ) -> torch.Tensor:
    """log Z by the forward recursion in log space (differentiable by autograd), a
    ``logsumexp`` over every move each step. Slower than :class:`_LogPartition` but exact
    whatever the scores (a floor under exp-space products would let blocked moves back in
    once scores are ~70 apart); that one falls back on it."""
    scores = transitions.masked_fill(~allowed, BLOCKED).unsqueeze(0)
    alpha = emissions[:, 0] + start_penalty
    for t in range(1, emissions.shape[1]):
        step = torch.logsumexp(alpha.unsqueeze(2) + scores, dim=1) + emissions[:, t]
        alpha = torch.where(mask[:, t:t + 1], step, alpha)
    return torch.logsumexp(alpha + end_penalty, dim=1)


def reachable_tags(allowed: torch.Tensor, may_start: torch.Tensor, length: int) -> torch.Tensor:
    """``length`` × K: which tags some allowed sequence can have at each position."""
    moves = allowed.float()
    reach = [may_start]
    for _ in range(1, length):
        reach.append((reach[-1].float() @ moves) > 0)
    return torch.stack(reach)


# A step's normaliser, or a reachable tag's share, below this may have lost paths in float32.
_UNDERFLOW = 1e-30
# Each token's marginals sum to one; further off than this, the backward lost a path.
_MARGINAL_TOLERANCE = 1e-3


class _LogPartition(torch.autograd.Function):
    """log Z and its gradient by the *scaled* forward–backward algorithm (Rabiner): the
    forward vector is kept in probability space, divided each step by its sum ``c_t``
    (log Z = Σ log c_t + the shifts), and the backward recursion reuses those sums, so
    d log Z / d emission is the tag's marginal α̂·β̂ and d log Z / d transition the moves'
    pairwise marginals summed in one product. About 8 small operations a position in all,
    where autograd through the log-space recursion records ~27 (the CRF was 13% of a
    snips-small training step). Emissions enter as exp(e − max_k e) per token. In float32
    a tag whose share of a step falls under ~1e-38 is lost, and would be missed should later
    scores raise it again: so when any tag that some allowed sequence can reach has a share
    under :data:`_UNDERFLOW` (scores ~70 apart), or a step's sum does, the log-space
    recursion takes over; and the backward pass checks that each token's marginals still
    sum to one before it trusts them."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, emissions: torch.Tensor,  # type: ignore[override]
                transitions: torch.Tensor, mask: torch.Tensor, allowed: torch.Tensor,
                start_penalty: torch.Tensor, end_penalty: torch.Tensor,
                unreachable: torch.Tensor) -> torch.Tensor:
        b, t, _ = emissions.shape
        shift = transitions.max()
        exp_transitions = torch.exp(transitions - shift) * allowed
        top = emissions.max(dim=2, keepdim=True).values
        probabilities = torch.exp(emissions - top)
        # (each position's views made in one call: a slice costs a call a position)
        steps = probabilities.unbind(1)
        keeps = mask.unsqueeze(2).unbind(1)
        first = steps[0] * torch.exp(start_penalty)
        sums = [first.sum(dim=1, keepdim=True)]
        alphas = [first / sums[0]]
        for i in range(1, t):
            step = (alphas[-1] @ exp_transitions) * steps[i]
            sums.append(step.sum(dim=1, keepdim=True))
            alphas.append(torch.where(keeps[i], step / sums[-1], alphas[-1]))
        exp_end = torch.exp(end_penalty)
        last = (alphas[-1] * exp_end).sum(dim=1)
        sum_grid = torch.cat(sums, dim=1).masked_fill(~mask, 1.0)
        alpha = torch.stack(alphas, dim=1)
        # the smallest share of a tag some allowed sequence reaches, per real token
        least = torch.maximum(alpha, unreachable).amin(dim=2).masked_fill(~mask, 1.0)
        inputs = (emissions, transitions, mask, allowed, start_penalty, end_penalty)
        # (written as "not ≥" so that a NaN, the child of a zero sum, also falls back)
        ctx.fallback = not all(float(x.min()) >= _UNDERFLOW  # type: ignore[attr-defined]
                               for x in (sum_grid, last, least))
        if ctx.fallback:  # type: ignore[attr-defined]
            ctx.save_for_backward(*inputs)
            return log_partition_in_log_space(*inputs)
        steps = mask.sum(dim=1) - 1
        log_z = (torch.log(sum_grid).sum(dim=1) + (top.squeeze(2) * mask).sum(dim=1)
                 + steps * shift + torch.log(last))
        ctx.save_for_backward(*inputs, probabilities, exp_transitions, exp_end, last, sum_grid, alpha)
        return log_z

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor  # type: ignore[override]
                 ) -> tuple[torch.Tensor | None, ...]:
        saved = ctx.saved_tensors  # type: ignore[attr-defined]
        inputs, scaled_pass = saved[:6], saved[6:]
        if ctx.fallback:  # type: ignore[attr-defined]
            return _log_space_gradients(inputs, grad, ctx.needs_input_grad)  # type: ignore[attr-defined]
        mask = inputs[2]
        probabilities, exp_transitions, exp_end, last, sum_grid, alpha = scaled_pass
        b, t, k = probabilities.shape
        # β̂ at a sequence's last token is end / Σ α̂·end, carried back over padding; before
        # it, β̂_t = E · (P_{t+1} ⊙ β̂_{t+1}) / c_{t+1}. Then α̂_t ⊙ β̂_t is the marginal.
        scaled = probabilities / sum_grid.unsqueeze(2)
        scaled_steps = scaled.unbind(1)
        keeps = mask.unsqueeze(2).unbind(1)
        betas = [exp_end.expand(b, k) / last.unsqueeze(1)] * t
        exp_back = exp_transitions.t()
        for i in range(t - 2, -1, -1):
            step = (scaled_steps[i + 1] * betas[i + 1]) @ exp_back
            betas[i] = torch.where(keeps[i + 1], step, betas[i + 1])
        beta = torch.stack(betas, dim=1)
        marginals = alpha * beta
        if not float((marginals.sum(dim=2) - 1).abs_().masked_fill_(~mask, 0.0).max()) <= _MARGINAL_TOLERANCE:
            return _log_space_gradients(inputs, grad, ctx.needs_input_grad)  # type: ignore[attr-defined]
        weight = (grad.unsqueeze(1) * mask).unsqueeze(2)
        grad_emissions = marginals * weight
        grad_transitions = None
        if ctx.needs_input_grad[1]:  # type: ignore[attr-defined]
            # P(i → j at t) = α̂_{t−1,i} · E_ij · P_{t,j} · β̂_{t,j} / c_t
            left = (alpha[:, :-1] * weight[:, 1:]).reshape(-1, k)
            right = (scaled[:, 1:] * beta[:, 1:]).reshape(-1, k)
            grad_transitions = (left.t() @ right) * exp_transitions
        return grad_emissions, grad_transitions, None, None, None, None, None


def _log_space_gradients(saved: tuple[torch.Tensor, ...], grad: torch.Tensor,
                         needs: tuple[bool, ...]) -> tuple[torch.Tensor | None, ...]:
    """The fallback's gradients: autograd through :func:`log_partition_in_log_space`."""
    emissions, transitions, mask, allowed, start_penalty, end_penalty = saved
    with torch.enable_grad():
        emissions = emissions.detach().requires_grad_(needs[0])
        transitions = transitions.detach().requires_grad_(needs[1])
        log_z = log_partition_in_log_space(emissions, transitions, mask, allowed,
                                           start_penalty, end_penalty)
        wanted = [x for x, need in zip((emissions, transitions), needs[:2], strict=True) if need]
        # A batch of one-token messages never reaches the transitions: their gradient is 0.
        grads = torch.autograd.grad(log_z, wanted, grad, allow_unused=True) if wanted else ()
        found = iter([torch.zeros_like(x) if g is None else g
                      for x, g in zip(wanted, grads, strict=True)])
    return (next(found) if needs[0] else None, next(found) if needs[1] else None,
            None, None, None, None, None)
