"""The confusion matrix ``rasa test`` draws, as a PNG (matplotlib, an optional extra)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from parley.errors import ParleyError

__all__ = ["confusion_matrix", "plot_confusion_matrix"]


def confusion_matrix(targets: Sequence[str], predictions: Sequence[str]
                     ) -> tuple[list[str], np.ndarray]:
    """The labels (sorted union) and counts: row = target, column = prediction."""
    labels = sorted(set(targets) | set(predictions))
    index = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=int)
    for target, predicted in zip(targets, predictions, strict=True):
        counts[index[target], index[predicted]] += 1
    return labels, counts


def plot_confusion_matrix(targets: Sequence[str], predictions: Sequence[str], path: Path,
                          title: str = "Action Confusion matrix") -> Path:
    """Draw the confusion matrix of ``targets`` against ``predictions`` into ``path``."""
    try:
        import matplotlib
    except ImportError as error:
        raise ParleyError("drawing story_confusion_matrix.png needs matplotlib: pip install "
                          "'parley[plots]', or pass --no-plot.") from error
    matplotlib.use("Agg")  # files only: no display is needed, or wanted, on a server
    import matplotlib.pyplot as plt

    labels, counts = confusion_matrix(targets, predictions)
    size = max(6.0, 0.35 * len(labels) + 3)
    figure, axes = plt.subplots(figsize=(size, size))
    try:
        image = axes.imshow(counts, interpolation="nearest", cmap="Blues")
        figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
        axes.set(xticks=range(len(labels)), yticks=range(len(labels)), xticklabels=labels,
                 yticklabels=labels, title=title, ylabel="True label", xlabel="Predicted label")
        plt.setp(axes.get_xticklabels(), rotation=90)
        threshold = counts.max() / 2 if counts.size else 0
        for (row, column), count in np.ndenumerate(counts):
            if count:
                axes.text(column, row, str(count), ha="center", va="center", fontsize=8,
                          color="white" if count > threshold else "black")
        figure.tight_layout()
        figure.savefig(path, dpi=100)
    finally:
        plt.close(figure)
    return path
