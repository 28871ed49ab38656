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

    def constrain(self, allowed: torch.Tensor, may_start: torch.Tensor, may_end: torch.Tensor) -> None:
        """Only sequences that start, move and end as allowed get any probability."""
        self.allowed = allowed.clone()
        self.start_penalty = torch.where(may_start, 0.0, BLOCKED)
        self.end_penalty = torch.where(may_end, 0.0, BLOCKED)

    def _scores(self) -> torch.Tensor:
        return self.transitions.masked_fill(~self.allowed, BLOCKED)

    def _log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log Z per sequence; ``emissions`` B × T × K, ``mask`` B × T (True = real token)."""
        return _LogPartition.apply(emissions, self.transitions, mask, self.allowed,  # type: ignore[no-any-return]
                                   self.start_penalty, self.end_penalty)

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
        if not bool(has_tokens.any()):
            return emissions.sum() * 0.0
        emissions, tags, mask = emissions[has_tokens], tags[has_tokens], mask[has_tokens]
        nll = self._log_partition(emissions, mask) - self._gold_score(emissions, tags, mask)
        return nll.mean()

    @torch.no_grad()
    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The Viterbi tags (B × T, 0 at padding) and their marginal probabilities."""
        b, t, k = emissions.shape
        transitions = self._scores()
        score = emissions[:, 0] + self.start_penalty
        back = []
        for i in range(1, t):
            total = score.unsqueeze(2) + transitions.unsqueeze(0)  # B × from × to
            best, arg = total.max(dim=1)
            step = best + emissions[:, i]
            keep = mask[:, i:i + 1]
            score = torch.where(keep, step, score)
            back.append(torch.where(keep, arg, torch.arange(k).expand(b, k)))
        tags = torch.zeros(b, t, dtype=torch.long)
        last = (score + self.end_penalty).argmax(dim=1)
        for i in range(t - 1, -1, -1):
            tags[:, i] = last
            if i > 0:
                last = back[i - 1].gather(1, last.unsqueeze(1)).squeeze(1)
        marginals = self.marginals(emissions, mask)
        confidence = marginals.gather(2, tags.unsqueeze(2)).squeeze(2)
        lengths = mask.sum(dim=1)
        positions = torch.arange(t).unsqueeze(0)
        # Padding after a sequence's end: back-pointers there were identity, reset to 0.
        tags = torch.where(positions < lengths.unsqueeze(1), tags, torch.zeros_like(tags))
        return tags, confidence * mask

    @torch.no_grad()
    def marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """P(tag at t = k | sequence), B × T × K, by forward–backward in log space."""
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
    """log Z by the forward recursion in log space (differentiable by autograd): each step a
    product in exp space shifted by the running maximum. Slower than :class:`_LogPartition`
    but safe from underflow whatever the scores; that one falls back on it."""
    shift = transitions.max().detach()
    exp_transitions = torch.exp(transitions - shift) * allowed
    alpha = emissions[:, 0] + start_penalty
    for t in range(1, emissions.shape[1]):
        top = alpha.max(dim=1, keepdim=True).values
        step = torch.log(torch.exp(alpha - top) @ exp_transitions + 1e-30) + top + shift
        alpha = torch.where(mask[:, t:t + 1], step + emissions[:, t], alpha)
    return torch.logsumexp(alpha + end_penalty, dim=1)


# A step's normaliser below this, in float32, may have lost the path that matters.
_UNDERFLOW = 1e-30


class _LogPartition(torch.autograd.Function):
    """log Z and its gradient by the *scaled* forward–backward algorithm (Rabiner): the
    forward vector is kept in probability space, divided each step by its sum ``c_t``
    (log Z = Σ log c_t + the shifts), and the backward recursion reuses those sums, so
    d log Z / d emission is the tag's marginal α̂·β̂ and d log Z / d transition the moves'
    pairwise marginals summed in one product. About 8 small operations a position in all,
    where autograd through the log-space recursion records ~27 (the CRF was 13% of a
    snips-small training step). Emissions enter as exp(e − max_k e) per token; if a step's
    sum still underflows (scores over ~80 apart), the log-space recursion takes over."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, emissions: torch.Tensor,  # type: ignore[override]
                transitions: torch.Tensor, mask: torch.Tensor, allowed: torch.Tensor,
                start_penalty: torch.Tensor, end_penalty: torch.Tensor) -> torch.Tensor:
        b, t, _ = emissions.shape
        shift = transitions.max()
        exp_transitions = torch.exp(transitions - shift) * allowed
        top = emissions.max(dim=2, keepdim=True).values
        probabilities = torch.exp(emissions - top)
        first = probabilities[:, 0] * torch.exp(start_penalty)
        sums = [first.sum(dim=1, keepdim=True)]
        alphas = [first / sums[0]]
        for i in range(1, t):
            step = (alphas[-1] @ exp_transitions) * probabilities[:, i]
            sums.append(step.sum(dim=1, keepdim=True))
            alphas.append(torch.where(mask[:, i:i + 1], step / sums[-1], alphas[-1]))
        exp_end = torch.exp(end_penalty)
        last = (alphas[-1] * exp_end).sum(dim=1)
        sum_grid = torch.cat(sums, dim=1).masked_fill(~mask, 1.0)
        ctx.fallback = bool((sum_grid < _UNDERFLOW).any() or (last < _UNDERFLOW).any())  # type: ignore[attr-defined]
        if ctx.fallback:  # type: ignore[attr-defined]
            ctx.save_for_backward(emissions, transitions, mask, allowed, start_penalty, end_penalty)
            return log_partition_in_log_space(emissions, transitions, mask, allowed,
                                              start_penalty, end_penalty)
        steps = mask.sum(dim=1) - 1
        log_z = (torch.log(sum_grid).sum(dim=1) + (top.squeeze(2) * mask).sum(dim=1)
                 + steps * shift + torch.log(last))
        ctx.save_for_backward(probabilities, mask, exp_transitions, exp_end, last, sum_grid,
                              torch.stack(alphas, dim=1))
        return log_z

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor  # type: ignore[override]
                 ) -> tuple[torch.Tensor | None, ...]:
        if ctx.fallback:  # type: ignore[attr-defined]
            return _log_space_gradients(ctx.saved_tensors, grad, ctx.needs_input_grad)  # type: ignore[attr-defined]
        probabilities, mask, exp_transitions, exp_end, last, sum_grid, alpha = ctx.saved_tensors  # type: ignore[attr-defined]
        b, t, k = probabilities.shape
        # β̂ at a sequence's last token is end / Σ α̂·end, carried back over padding; before
        # it, β̂_t = E · (P_{t+1} ⊙ β̂_{t+1}) / c_{t+1}. Then α̂_t ⊙ β̂_t is the marginal.
        scaled = probabilities / sum_grid.unsqueeze(2)
        betas = [exp_end.expand(b, k) / last.unsqueeze(1)] * t
        exp_back = exp_transitions.t()
        for i in range(t - 2, -1, -1):
            step = (scaled[:, i + 1] * betas[i + 1]) @ exp_back
            betas[i] = torch.where(mask[:, i + 1:i + 2], step, betas[i + 1])
        beta = torch.stack(betas, dim=1)
        weight = (grad.unsqueeze(1) * mask).unsqueeze(2)
        grad_emissions = alpha * beta * weight
        grad_transitions = None
        if ctx.needs_input_grad[1]:  # type: ignore[attr-defined]
            # P(i → j at t) = α̂_{t−1,i} · E_ij · P_{t,j} · β̂_{t,j} / c_t
            left = (alpha[:, :-1] * weight[:, 1:]).reshape(-1, k)
            right = (scaled[:, 1:] * beta[:, 1:]).reshape(-1, k)
            grad_transitions = (left.t() @ right) * exp_transitions
        return grad_emissions, grad_transitions, None, None, None, None


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
        found = iter(torch.autograd.grad(log_z, wanted, grad) if wanted else ())
    return (next(found) if needs[0] else None, next(found) if needs[1] else None,
            None, None, None, None)
