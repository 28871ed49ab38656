"""Adam for DIET's training: torch's fused CPU kernel, called directly.

``torch.optim.Adam(fused=True)`` runs the same kernel, but its first use imports
``torch._dynamo`` (~1 s: a tenth of training snips-small end to end) and every step walks its
parameter groups in Python (~0.5 ms a step). This one keeps the same state and semantics —
per-parameter step counts, a parameter without a gradient left alone, coupled L2
(``weight_decay`` added to the gradient) — and matches it bitwise (tests/ml/test_adam.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class _Group:
    params: list[torch.nn.Parameter]
    weight_decay: float
    exp_avgs: list[torch.Tensor] = field(default_factory=list)
    exp_avg_sqs: list[torch.Tensor] = field(default_factory=list)
    steps: list[torch.Tensor] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.exp_avgs = [torch.zeros_like(p, memory_format=torch.preserve_format)
                         for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p, memory_format=torch.preserve_format)
                            for p in self.params]
        self.steps = [torch.zeros((), dtype=torch.float32) for _ in self.params]


class Adam:
    """Adam over groups of (parameters, weight decay), at one learning rate."""

    def __init__(self, groups: list[tuple[list[torch.nn.Parameter], float]], lr: float,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        for params, _ in groups:
            for p in params:
                if p.device.type != "cpu" or not p.is_floating_point():
                    raise ValueError(f"Adam here takes CPU floating-point parameters, not a "
                                     f"{p.dtype} tensor on {p.device}")
        self.groups = [_Group(list(params), decay) for params, decay in groups if params]
        self.lr, self.betas, self.eps = lr, betas, eps
        self._shares: dict[tuple[int, int], list[list[int]]] = {}

    def zero_grad(self) -> None:
        for group in self.groups:
            for p in group.params:
                p.grad = None

    @torch.no_grad()
    def step(self, part: int = 0, parts: int = 1) -> None:
        """One update of the parameters that have a gradient; with ``parts`` > 1 only those
        of share ``part`` (the shares are disjoint and of about equal size, so ``parts``
        threads can update them at once — each parameter's update is the same either way)."""
        for g, group in enumerate(self.groups):
            if (g, parts) not in self._shares:
                self._shares[g, parts] = _shares(group.params, parts)
            share = self._shares[g, parts][part]
            used = [i for i in share if group.params[i].grad is not None]
            if not used:
                continue
            steps = [group.steps[i] for i in used]
            torch._foreach_add_(steps, 1)
            params = [group.params[i] for i in used]
            torch._fused_adam_(
                params, [p.grad for p in params],
                [group.exp_avgs[i] for i in used], [group.exp_avg_sqs[i] for i in used], [],
                steps, lr=self.lr, beta1=self.betas[0], beta2=self.betas[1],
                weight_decay=group.weight_decay, eps=self.eps, amsgrad=False, maximize=False,
                grad_scale=None, found_inf=None)
            # The fused kernel writes the weights without telling autograd: bump their
            # version counters as any in-place operation does, so that what is kept while
            # the weights stay the same (the grouped layers' dense kernels, a classifier's
            # predictor) sees that they changed.
            torch.autograd.graph.increment_version(params)


def _shares(params: list[torch.nn.Parameter], parts: int) -> list[list[int]]:
    """Parameter indices dealt into ``parts`` shares of about equal size: largest first,
    each to the share with the fewest elements so far."""
    shares: list[list[int]] = [[] for _ in range(parts)]
    sizes = [0] * parts
    for i in sorted(range(len(params)), key=lambda i: -params[i].numel()):
        lightest = sizes.index(min(sizes))
        shares[lightest].append(i)
        sizes[lightest] += params[i].numel()
    return [sorted(share) for share in shares]
