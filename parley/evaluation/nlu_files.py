"""Write what ``rasa test nlu`` writes into its ``--out`` folder, by Rasa's file names.

The JSON reports come from :meth:`NLUReport.report_files`; the pictures (with matplotlib):

- ``intent_confusion_matrix.png``, ``intent_histogram.png`` and Parley's
  ``intent_reliability.png``;
- per entity extractor ``<extractor>_confusion_matrix.png``, and for the extractors that
  give confidences (DIETClassifier, CRFEntityExtractor, as Rasa) ``<extractor>_histogram.png``;
- ``response_selection_confusion_matrix.png`` and ``response_selection_histogram.png``.

A single test run and a cross-validation (its folds' test results together) write the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["EXTRACTORS_WITH_CONFIDENCES", "write_nlu_reports"]

# Rasa draws an entity histogram only for these: the others' confidences are all 1.
EXTRACTORS_WITH_CONFIDENCES = frozenset({"DIETClassifier", "CRFEntityExtractor"})


def write_nlu_reports(report: Any, out: str | Path, *, errors: bool = True,
                      successes: bool = False, plot: bool = True) -> Path:
    """Write the reports of an :class:`~parley.nlu.evaluation.NLUReport` into ``out``."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in report.report_files(errors=errors, successes=successes).items():
        (folder / name).write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n",
                                   encoding="utf-8")
    if plot:
        _plots(report, folder)
    return folder


def _plots(report: Any, out: Path) -> None:
    """Nothing without matplotlib (the CLI says so once)."""
    from parley.nlu import plots

    if not plots.plots_available():
        return
    if report.intents is not None:
        _label_plots(plots, report.intents, out, "intent", "Intent")
    if report.calibration is not None:
        plots.reliability_png(report.calibration, out / "intent_reliability.png", "intents")
    for name, entities in report.extractors.items():
        gold = [g for g, _ in entities.label_pairs]
        predicted = [p for _, p in entities.label_pairs]
        if gold:
            plots.confusion_matrix_png(gold, predicted, out / f"{name}_confusion_matrix.png",
                                       title=f"{name} entity confusion matrix")
        if name in EXTRACTORS_WITH_CONFIDENCES and entities.confidences:
            plots.confidence_histogram_png(
                [c for c, _ in entities.confidences], [r for _, r in entities.confidences],
                out / f"{name}_histogram.png",
                title=f"{name} entity prediction confidence")
    if report.responses is not None:
        _label_plots(plots, report.responses, out, "response_selection", "Response selection")


def _label_plots(plots: Any, labels: Any, out: Path, prefix: str, what: str) -> None:
    plots.confusion_matrix_png(labels.gold, labels.predicted,
                               out / f"{prefix}_confusion_matrix.png",
                               title=f"{what} confusion matrix")
    plots.confidence_histogram_png(
        labels.confidences, [g == p for g, p in zip(labels.gold, labels.predicted, strict=True)],
        out / f"{prefix}_histogram.png", title=f"{what} prediction confidence")
