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
        shift = self.transitions.max().detach()
        exp_transitions = torch.exp(self.transitions - shift) * self.allowed
        alpha = emissions[:, 0] + self.start_penalty
        for t in range(1, emissions.shape[1]):
            top = alpha.max(dim=1, keepdim=True).values
            step = torch.log(torch.exp(alpha - top) @ exp_transitions + 1e-30) + top + shift
            alpha = torch.where(mask[:, t:t + 1], step + emissions[:, t], alpha)
        return torch.logsumexp(alpha + self.end_penalty, dim=1)

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
