"""How far confidences are from how often they are right: reliability bins and the
expected calibration error (ECE).

The ECE is the usual one (Naeini et al., 2015; Guo et al., 2017): the confidences are cut
into equal-width bins over [0, 1], and the gap between each bin's mean confidence and its
accuracy is averaged, weighted by the bin's share of the messages. 0 is perfectly
calibrated; a classifier that says 0.25 to messages it gets right 65% of the time has a
large one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["DEFAULT_BINS", "Bin", "Reliability", "reliability"]

DEFAULT_BINS = 10


@dataclass(frozen=True)
class Bin:
    """Messages whose confidence is in ``(low, high]`` (the first bin includes 0)."""

    low: float
    high: float
    count: int
    mean_confidence: float | None
    accuracy: float | None


@dataclass(frozen=True)
class Reliability:
    bins: tuple[Bin, ...]
    n_messages: int

    @property
    def expected_calibration_error(self) -> float:
        if self.n_messages == 0:
            return 0.0
        return float(sum(b.count / self.n_messages * abs(b.accuracy - b.mean_confidence)
                         for b in self.bins
                         if b.count and b.accuracy is not None and b.mean_confidence is not None))

    def as_dict(self) -> dict[str, Any]:
        return {
            "expected_calibration_error": self.expected_calibration_error,
            "messages": self.n_messages,
            "bins": [{"low": b.low, "high": b.high, "count": b.count,
                      "mean_confidence": b.mean_confidence, "accuracy": b.accuracy}
                     for b in self.bins],
        }


def reliability(confidences: Sequence[float | None], correct: Sequence[bool],
                n_bins: int = DEFAULT_BINS) -> Reliability:
    """Bins of (confidence, right or wrong) pairs; a missing confidence counts as 0."""
    if len(confidences) != len(correct):
        raise ValueError(f"{len(confidences)} confidences but {len(correct)} outcomes.")
    conf = np.clip(np.array([c or 0.0 for c in confidences], dtype=float), 0.0, 1.0)
    right = np.asarray(correct, dtype=bool)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Bin i holds (edges[i], edges[i + 1]]; 0 goes to the first bin.
    index = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    bins = []
    for i in range(n_bins):
        members = index == i
        count = int(members.sum())
        bins.append(Bin(float(edges[i]), float(edges[i + 1]), count,
                        float(conf[members].mean()) if count else None,
                        float(right[members].mean()) if count else None))
    return Reliability(tuple(bins), len(conf))
