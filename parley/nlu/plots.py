"""The pictures ``parley test nlu`` writes, as ``rasa test nlu`` does: the intent confusion
matrix and confidence histogram, and a reliability diagram of the confidences.

matplotlib is optional (``pip install parley[plots]``) and imported only here, with its
file-only backend, so that nothing opens a window or needs a display.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from parley.errors import ParleyError
from parley.nlu.reliability import Reliability

__all__ = ["PlotsUnavailable", "comparison_graph_pdf", "confidence_histogram_png",
           "confusion_matrix_png", "plots_available", "reliability_png"]

# Beyond this many labels a confusion matrix is unreadable: the most confused are kept.
MAX_MATRIX_LABELS = 40


class PlotsUnavailable(ParleyError):
    """matplotlib is not installed."""


def plots_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise PlotsUnavailable("Plots need matplotlib: pip install 'parley[plots]'.") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    _pyplot().close(figure)


def confusion_matrix_png(gold: Sequence[str], predicted: Sequence[str], path: Path,
                         title: str = "Intent confusion matrix") -> None:
    """Rows: the gold label; columns: the predicted one; counts in the cells. With many
    labels, those with the most errors (gold or predicted) are shown."""
    plt = _pyplot()
    labels = sorted(set(gold) | set(predicted))
    if len(labels) > MAX_MATRIX_LABELS:
        errors: dict[str, int] = dict.fromkeys(labels, 0)
        for g, p in zip(gold, predicted, strict=True):
            if g != p:
                errors[g] += 1
                errors[p] += 1
        labels = sorted(sorted(labels, key=lambda x: -errors[x])[:MAX_MATRIX_LABELS])
        title += f" ({MAX_MATRIX_LABELS} labels with the most errors)"
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for g, p in zip(gold, predicted, strict=True):
        if g in index and p in index:
            matrix[index[g], index[p]] += 1
    size = max(4.0, 0.3 * len(labels) + 2)
    figure, axes = plt.subplots(figsize=(size, size))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    axes.set_yticks(range(len(labels)), labels, fontsize=7)
    axes.set_xlabel("predicted")
    axes.set_ylabel("gold")
    axes.set_title(title)
    if len(labels) <= 20:
        for i, j in zip(*np.nonzero(matrix), strict=True):
            axes.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                      color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    _save(figure, path)


def confidence_histogram_png(confidences: Sequence[float | None], correct: Sequence[bool],
                             path: Path, title: str = "Intent prediction confidence") -> None:
    """Rasa's intent histogram: how many right (hits) and wrong (misses) predictions fall in
    each confidence bin, side by side."""
    plt = _pyplot()
    conf = np.array([c or 0.0 for c in confidences], dtype=float)
    right = np.asarray(correct, dtype=bool)
    bins = np.linspace(0.0, 1.0, 21)
    figure, (hits, misses) = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    hits.hist(conf[right], bins=bins, color="#2e7d32")
    hits.set_title(f"correct ({int(right.sum())})")
    misses.hist(conf[~right], bins=bins, color="#c62828")
    misses.set_title(f"wrong ({int((~right).sum())})")
    for axes in (hits, misses):
        axes.set_xlabel("confidence")
    hits.set_ylabel("messages")
    figure.suptitle(title)
    _save(figure, path)


def reliability_png(result: Reliability, path: Path, title: str = "") -> None:
    """Accuracy per confidence bin against the diagonal of perfect calibration, with the
    share of messages per bin below it."""
    plt = _pyplot()
    filled = [b for b in result.bins if b.count]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(5, 6), sharex=True,
                                         gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="calibrated")
    top.bar([(b.low + b.high) / 2 for b in filled], [b.accuracy for b in filled],
            width=[b.high - b.low for b in filled], edgecolor="black", alpha=0.7,
            label="accuracy")
    top.plot([b.mean_confidence for b in filled], [b.accuracy for b in filled], "o",
             color="black", markersize=3, label="mean confidence")
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1)
    top.legend(loc="upper left", fontsize=8)
    top.set_title(f"{title}{' — ' if title else ''}ECE "
                  f"{result.expected_calibration_error:.3f}")
    bottom.bar([(b.low + b.high) / 2 for b in result.bins],
               [b.count / max(result.n_messages, 1) for b in result.bins],
               width=[b.high - b.low for b in result.bins], edgecolor="black", color="#90a4ae")
    bottom.set_xlabel("confidence of the top intent")
    bottom.set_ylabel("share")
    bottom.set_xlim(0, 1)
    _save(figure, path)


def comparison_graph_pdf(sizes: Sequence[int],
                         curves: dict[str, tuple[Sequence[float], Sequence[float]]],
                         path: Path) -> None:
    """Rasa's ``nlu_model_comparison_graph.pdf``: per config, the mean F1 against the
    number of training examples, shaded one standard deviation either side."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 5))
    x = np.asarray(sizes, dtype=float)
    for name, (mean, std) in curves.items():
        m, s = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)
        axes.plot(x, m, marker="o", label=name)
        axes.fill_between(x, m - s, m + s, alpha=0.2)
    axes.set_xlabel("Number of intent examples present during training")
    axes.set_ylabel("Label-weighted average F1 score on test set")
    axes.legend(loc="lower right")
    _save(figure, path)
