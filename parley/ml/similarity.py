"""The similarity losses of the embedding models (DIET's intents, TED's actions, and
UnexpecTED's intents, several of which may be right: :func:`multi_label_loss`).

An input (a message, a dialogue) and its label are embedded into the same space and scored by
their similarity; training contrasts the right label with ``negative_examples`` sampled wrong
ones, as in StarSpace and Rasa. :class:`LossSettings` names what shapes it; both models'
architectures carry those fields.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch.nn import functional as F  # noqa: N812

from parley.ml.torch_env import generator


class LossSettings(Protocol):
    """The loss settings, with Rasa's names for what they mean."""

    negative_examples: int
    loss_type: str  # cross_entropy | margin
    maximum_positive_similarity: float
    maximum_negative_similarity: float
    use_maximum_negative_similarity: bool
    negative_margin_scale: float
    scale_loss: bool
    constrain_similarities: bool


def label_loss(text: torch.Tensor, labels: torch.Tensor, all_labels: torch.Tensor,
               settings: LossSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """Rasa's contrast: each input against its label (the positive), ``k`` sampled wrong
    labels, and ``k`` other inputs of the batch with other labels; the positive label too
    against those wrong labels and inputs. Also the accuracy of ranking all labels."""
    n, size = all_labels.shape[0], text.shape[0]
    k = min(settings.negative_examples, n - 1)
    positive_label = all_labels[labels]
    positive = (text * positive_label).sum(dim=-1, keepdim=True)
    if k > 0:
        noise = torch.rand(size, n, generator=generator())
        noise[torch.arange(size), labels] = 2.0  # never the right label
        wrong_labels = all_labels[noise.topk(k, dim=1, largest=False).indices]
        # Other inputs of the batch; those that share the label do not count.
        others = torch.randint(size, (size, k), generator=generator())
        same = labels[others] == labels.unsqueeze(1)
        wrong_texts = text[others]
        negative = torch.cat([
            row_dots(text, wrong_labels),
            row_dots(positive_label, wrong_labels),
            row_dots(text, wrong_texts).masked_fill(same, -1e9),
            row_dots(positive_label, wrong_texts).masked_fill(same, -1e9),
        ], dim=1)
    else:
        negative = text.new_zeros(size, 0)
    loss = similarity_loss(positive, negative, settings)
    with torch.no_grad():
        accuracy = ((text @ all_labels.t()).argmax(dim=1) == labels).float().mean()
    return loss, accuracy


def row_dots(rows: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """``einsum("be,bke->bk", rows, candidates)``: each row against its own ``k``
    candidates, by :class:`_RowDots` when a gradient is wanted."""
    if torch.is_grad_enabled() and (rows.requires_grad or candidates.requires_grad):
        return _RowDots.apply(rows, candidates)  # type: ignore[no-any-return]
    return torch.einsum("be,bke->bk", rows, candidates)


class _RowDots(torch.autograd.Function):
    """:func:`row_dots` with a cheaper gradient for the candidates, bitwise the same.

    einsum's backward makes the candidates' gradient, the outer product of each row's
    gradient and its input row, as a batched product with an inner dimension of one:
    ~0.6 ms of a 500-row batch of 15 candidates × 20 dims, against 0.04 ms for a
    broadcast multiply. A product of one term is exactly that term (beta = 0 writes it, it
    adds nothing), so both give the same bits; the rows' gradient stays einsum's own
    batched product. On TED's steps the four contrasts took ~10% of a step this way."""

    @staticmethod
    def forward(ctx: Any, rows: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(rows, candidates)
        return torch.einsum("be,bke->bk", rows, candidates)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        rows, candidates = ctx.saved_tensors
        grad_rows = grad_candidates = None
        if ctx.needs_input_grad[0]:
            grad_rows = torch.bmm(grad.unsqueeze(1), candidates).squeeze(1)
        if ctx.needs_input_grad[1]:
            grad_candidates = grad.unsqueeze(2) * rows.unsqueeze(1)
        return grad_rows, grad_candidates


def similarity_loss(positive: torch.Tensor, negative: torch.Tensor,
                    settings: LossSettings) -> torch.Tensor:
    """Cross-entropy over [positive, negatives] (optionally scaled and constrained), or
    the margin loss; masked negatives are −1e9."""
    if settings.loss_type == "margin":
        loss = F.relu(settings.maximum_positive_similarity - positive.squeeze(1))
        if negative.shape[1]:
            worst = (negative.max(dim=1).values if settings.use_maximum_negative_similarity
                     else negative)
            neg = F.relu(settings.maximum_negative_similarity + worst)  # masked: -1e9 → 0
            loss = loss + settings.negative_margin_scale * (neg if neg.dim() == 1 else neg.sum(1))
        return loss.mean()
    logits = torch.cat([positive, negative], dim=1)
    target = torch.zeros(logits.shape[0], dtype=torch.long)
    per_example = F.cross_entropy(logits, target, reduction="none")
    if settings.scale_loss:  # Rasa's: weigh each example by ((1 − p_right) / 0.5)⁴
        scale = ((1 - torch.softmax(logits, dim=1)[:, 0]) / 0.5).pow(4).detach()
        per_example = per_example * scale
    loss = per_example.mean()
    if settings.constrain_similarities:
        real = logits > -1e8
        ones = torch.cat([torch.ones_like(positive), torch.zeros_like(negative)], dim=1)
        loss = loss + F.binary_cross_entropy_with_logits(logits[real], ones[real])
    return loss


def multi_label_loss(inputs: torch.Tensor, positives: torch.Tensor, all_labels: torch.Tensor,
                     candidates: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rasa's ``MultiLabelDotProductLoss``: several labels may be right for one input.

    ``positives`` (inputs × most labels of an input) are each input's right labels, padded
    with −1. Each right label, and ``candidates`` labels drawn at random from all of them
    (right or wrong: a drawn label counts as right when it is one of the input's), is
    scored by its similarity through a sigmoid against 1 or 0; the loss is the binary
    cross-entropy averaged over the real entries. Also the share of those entries the
    sigmoid puts on the right side of 0.5."""
    size, n = inputs.shape[0], all_labels.shape[0]
    real = positives >= 0
    similarities = inputs @ all_labels.t()
    positive = similarities.gather(1, positives.clamp_min(0))
    drawn = torch.randint(n, (size, candidates), generator=generator())
    drawn_right = (drawn.unsqueeze(2) == positives.unsqueeze(1)).any(dim=2)
    logits = torch.cat([positive, similarities.gather(1, drawn)], dim=1)
    targets = torch.cat([torch.ones_like(positive), drawn_right.to(logits.dtype)], dim=1)
    weights = torch.cat([real, torch.ones_like(drawn_right)], dim=1).to(logits.dtype)
    per_entry = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    loss = (per_entry * weights).sum() / weights.sum()
    with torch.no_grad():
        accuracy = (((logits > 0) == (targets > 0.5)).to(logits.dtype) * weights).sum() \
            / weights.sum()
    return loss, accuracy
