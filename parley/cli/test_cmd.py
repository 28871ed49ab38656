"""``parley test nlu``: score a trained model on NLU test data, as ``rasa test nlu`` does."""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any

from parley.errors import DataError

DEFAULT_RESULTS = "results"
# Where test data lives by convention (rasa init writes tests/); Rasa itself reads data/.
TEST_FOLDERS = ("test", "tests")
DEFAULT_DATA = "data"


def register(commands: Any) -> None:
    test = commands.add_parser("test", help="Evaluate a trained model on test data.")
    sub = test.add_subparsers(dest="test_part", metavar="PART")
    nlu = sub.add_parser(
        "nlu", help="Score the NLU part: intents, entities, retrieval responses.",
        description="Parse every example of the NLU test data with the model and report intent "
                    "accuracy and F1, exact-match entity F1 and response selection accuracy; "
                    "write the reports as JSON into --out.",
    )
    nlu.add_argument("-m", "--model", default="models",
                     help="Model archive, or a folder to take the newest from (default: models).")
    nlu.add_argument("-u", "--nlu", nargs="+", default=None, metavar="PATH",
                     help="NLU test files or folders (default: the NLU files in test/ or tests/; "
                          "without any, data/ as Rasa does).")
    nlu.add_argument("--out", default=DEFAULT_RESULTS,
                     help=f"Folder for the reports (default: {DEFAULT_RESULTS}).")
    nlu.add_argument("--no-errors", action="store_true",
                     help="Do not write the files listing wrong predictions.")
    nlu.add_argument("--no-plot", action="store_true",
                     help="Do not write the confusion matrix, confidence histogram and "
                          "reliability diagram (PNG).")
    nlu.set_defaults(handler=run_test_nlu)
    test.set_defaults(handler=lambda args: test.print_help() or 2)


def _nlu_data(paths: list[str]) -> Any:
    from parley.data.importer import TrainingDataImporter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # files that hold only stories are fine here
        return TrainingDataImporter(None, None, paths).nlu_data


def find_test_data(given: list[str] | None) -> tuple[list[str], Any]:
    """The paths to test on and their NLU data; without ``given``, Rasa-like defaults."""
    if given:
        return given, _nlu_data(given)
    for folder in TEST_FOLDERS:
        if Path(folder).is_dir():
            data = _nlu_data([folder])
            if data.examples:
                return [folder], data
    if Path(DEFAULT_DATA).is_dir():
        return [DEFAULT_DATA], _nlu_data([DEFAULT_DATA])
    raise DataError("no NLU test data: there is no test/, tests/ or data/ folder here.",
                    hint="Pass the test files with --nlu, e.g. --nlu test/test_nlu.yml.")


def run_test_nlu(args: argparse.Namespace) -> int:
    from parley.nlu.evaluation import evaluate_nlu
    from parley.model_archive import resolve_model
    from parley.serving.agent import load

    paths, data = find_test_data(args.nlu)
    if not data.examples:
        raise DataError(f"{' '.join(paths)} holds no NLU examples to test on.",
                        hint="Pass files with an 'nlu:' section with --nlu.")
    if paths == [DEFAULT_DATA] and not args.nlu:
        print("note: no NLU test data in test/ or tests/; scoring the model on its training "
              "data in data/ (pass --nlu for held-out data).")
    archive = resolve_model(args.model)
    agent = load(archive)
    print(f"Testing {archive} on {len(data.examples)} messages from {' '.join(paths)}")
    report = evaluate_nlu(agent, data, warmup=min(3, len(data.examples)))
    print(report.summary())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, content in report.report_files(errors=not args.no_errors).items():
        (out / name).write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n",
                                encoding="utf-8")
    if not args.no_plot:
        _write_plots(report, out)
    print(f"Reports are in {out}/")
    return 0


def _write_plots(report: Any, out: Path) -> None:
    """Rasa's intent_confusion_matrix.png and intent_histogram.png (of the intents as
    returned), and intent_reliability.png (the classifier's confidences against how often
    they are right, nlu_fallback undone)."""
    from parley.nlu import plots

    if not plots.plots_available():
        print("note: no plots written — they need matplotlib: pip install 'parley[plots]'.")
        return
    if report.intents is not None:
        intents = report.intents
        plots.confusion_matrix_png(intents.gold, intents.predicted,
                                   out / "intent_confusion_matrix.png")
        plots.confidence_histogram_png(
            intents.confidences, [g == p for g, p in zip(intents.gold, intents.predicted,
                                                         strict=True)],
            out / "intent_histogram.png")
    if report.calibration is not None:
        plots.reliability_png(report.calibration, out / "intent_reliability.png", "intents")
