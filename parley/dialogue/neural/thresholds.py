"""UnexpecTED's per-intent thresholds: Rasa's quantiles of the training scores, and the
pick for a ``tolerance``. Free of PyTorch: prediction reads them."""

from __future__ import annotations

import numpy as np

# Rasa's quantiles: one threshold per tolerance 0, 0.05, …, 0.95 (the (1 − tolerance)
# quantile of the scores where the intent was not said).
TOLERANCE_STEPS = 20


def label_quantiles(scores: np.ndarray, label_sets: list[list[int]]) -> dict[int, list[float]]:
    """Rasa's quantiles per intent said somewhere in the stories: over the scores of the
    examples where it was not said, the quantiles 1, 0.95, …, 0.05 (``lower``: always a
    score that occurred), none above the lowest score of an example where it was said."""
    steps = [1 - t / TOLERANCE_STEPS for t in range(TOLERANCE_STEPS)]
    said = np.zeros(scores.shape, dtype=bool)
    for row, ids in enumerate(label_sets):
        said[row, ids] = True
    out: dict[int, list[float]] = {}
    for label in np.flatnonzero(said.any(axis=0)):
        lowest_said = float(scores[said[:, label], label].min())
        others = scores[~said[:, label], label]
        if len(others):
            values = np.quantile(others, steps, method="lower")
            out[int(label)] = [min(lowest_said, float(v)) for v in values]
        else:
            out[int(label)] = [lowest_said] * TOLERANCE_STEPS
    return out


def threshold(quantiles: list[float], tolerance: float) -> float:
    """The score below which an intent is unlikely, for ``tolerance`` (Rasa's pick: the
    quantile of step ``int(tolerance × 20)``, the last one for tolerance 1)."""
    return quantiles[min(int(tolerance * len(quantiles)), len(quantiles) - 1)]
