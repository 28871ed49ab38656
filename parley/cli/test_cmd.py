"""``parley test [core|nlu]``: evaluate a trained model on test data, as ``rasa test`` does.

Thin: the work is :mod:`parley.evaluation.run`'s. Options may come before or after the
part (``parley test --out r core`` and ``parley test core --out r`` are the same;
:mod:`parley.cli.parts`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from parley.cli.numbers import whole_number
from parley.errors import DataError

__all__ = ["find_test_data", "register"]

# parley.evaluation.run's (a test holds them equal): the evaluation is imported only when a
# test runs, not by every command (~0.1 s of each `parley train`).
DEFAULT_RESULTS = "results"
DEFAULT_MODELS = "models"
# parley.evaluation.cross_validation's, held equal by a test as DEFAULT_RESULTS is.
DEFAULT_FOLDS = 5
DEFAULT_SEED = 0
DEFAULT_RUNS = 3  # parley.evaluation.comparison's
DEFAULT_PERCENTAGES = (0, 25, 50, 75)


def find_test_data(given: Any) -> Any:
    """:func:`parley.evaluation.run.find_nlu_test_data`, the name this module gave it before."""
    from parley.evaluation.run import find_nlu_test_data

    return find_nlu_test_data(given)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--model", default=None,
                        help="Model archive, or a folder to take the newest from (default: "
                             "models). Not used by the NLU part of --cross-validation or of "
                             "a comparison of configs, which train their own.")
    parser.add_argument("--out", default=DEFAULT_RESULTS,
                        help=f"Folder for the reports (default: {DEFAULT_RESULTS}).")
    parser.add_argument("--no-errors", action="store_true",
                        help="Do not write the files listing wrong predictions.")
    parser.add_argument("--no-plot", action="store_true",
                        help="Do not draw the confusion matrices and histograms (PNG).")
    parser.add_argument("--successes", action="store_true",
                        help="Also write the right predictions: successful_test_stories.yml, "
                             "intent_successes.json, <extractor>_successes.json, "
                             "response_selection_successes.json.")


def _core(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-s", "--stories", nargs="+", default=None, metavar="PATH",
                        help="Test story files or folders (default: the test_*.yml files in "
                             "tests/ or test/).")
    parser.add_argument("--e2e", "--end-to-end", action="store_true",
                        help="End-to-end: also check the entities the model finds in user: "
                             "texts, and score intents and entities in story_report.json "
                             "(the texts are parsed, and their intents checked, either way).")
    parser.add_argument("--fail-on-prediction-errors", action="store_true",
                        help="Exit with 1 when a test story fails (for CI).")
    parser.add_argument("--no-warnings", action="store_true",
                        help="Do not write stories_with_warnings.yml.")


def _nlu(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-u", "--nlu", nargs="+", default=None, metavar="PATH",
                        help="NLU test files or folders (default: the NLU files in test/ or "
                             "tests/; without any, data/ as Rasa does). With "
                             "--cross-validation: the data to split (default: data/).")
    parser.add_argument("-c", "--config", nargs="+", default=None, metavar="CONFIG",
                        help="With --cross-validation: the config to train on each fold "
                             "(default: config.yml). Several configs (or a folder of them): "
                             "compare them, each trained on shrinking parts of the data. One "
                             "config without --cross-validation is not used (the model is "
                             "tested, as rasa test does; a note says so).")
    parser.add_argument("--cross-validation", action="store_true",
                        help="Cross-validate the NLU part: train the config on all folds but "
                             "one and test on that one, for each fold (the NLU part loads no model).")
    parser.add_argument("-f", "--folds", type=int, default=None,
                        help="Number of folds of --cross-validation (default: "
                             f"{DEFAULT_FOLDS}).")
    parser.add_argument("--seed", type=whole_number(0), default=None,
                        help="Seed of the --cross-validation folds or the comparison's splits "
                             f"(default: {DEFAULT_SEED}; the same seed, the same splits).")
    parser.add_argument("-d", "--domain", default=None,
                        help="With --cross-validation or several configs: the domain whose "
                             "retrieval responses the ResponseSelector learns (default: "
                             "domain.yml if there is one).")
    parser.add_argument("-r", "--runs", type=int, default=None,
                        help="Comparing configs: how many train/test splits (default: "
                             f"{DEFAULT_RUNS}).")
    parser.add_argument("-p", "--percentages", type=int, nargs="+", default=None,
                        metavar="PERCENT",
                        help="Comparing configs: the shares of the training data to leave out "
                             f"(default: {' '.join(map(str, DEFAULT_PERCENTAGES))}).")


def register(commands: Any) -> None:
    test = commands.add_parser(
        "test", help="Evaluate a trained model on test stories and NLU test data.",
        description="Without a part, test both: the test stories (core) and the NLU test data "
                    "(nlu), with one loaded model, reports into --out.")
    for add in (_common, _core, _nlu):
        add(test)
    sub = test.add_subparsers(dest="test_part", metavar="PART")
    core = sub.add_parser(
        "core", help="Replay test stories: actions, and the parses of their user texts.",
        description="Replay every test story with the model: each user: text is parsed by the "
                    "model's NLU (an intent written beside it is the label the parse must "
                    "match) and each action is predicted by its policies; forms and loops "
                    "follow the story's own events. Writes story_report.json, "
                    "failed_test_stories.yml (wrong predictions marked '# predicted: …'), "
                    "stories_with_warnings.yml and story_confusion_matrix.png into --out.")
    _common(core)
    _core(core)
    core.set_defaults(handler=run_test_core)
    nlu = sub.add_parser(
        "nlu", help="Score the NLU part: intents, entities, retrieval responses.",
        description="Parse every example of the NLU test data with the model and report intent "
                    "accuracy and F1, exact-match entity F1 (per entity extractor) and "
                    "response selection accuracy; write the reports as JSON into --out. With "
                    "--cross-validation, train the config (-c) on k-1 folds of the NLU data "
                    "and test on the k-th instead, for each fold; with several configs "
                    "(-c a.yml b.yml), compare them trained on shrinking parts of the data.")
    _common(nlu)
    _nlu(nlu)
    nlu.set_defaults(handler=run_test_nlu)
    test.set_defaults(handler=run_test_both)


def _core_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"e2e": args.e2e, "errors": not args.no_errors, "successes": args.successes,
            "warnings": not args.no_warnings, "plot": not args.no_plot}


def _report_core(run: Any, args: argparse.Namespace) -> int:
    report = run.core
    print(f"Tested {run.model} on {report.n_stories} test "
          f"{'story' if report.n_stories == 1 else 'stories'} from "
          f"{' '.join(run.core_paths)}")
    for note in report.notes:
        print(f"note: {note}")
    print(report.summary())
    if args.fail_on_prediction_errors and report.failed:
        where = ("the wrong predictions are marked in "
                 f"{Path(args.out) / 'failed_test_stories.yml'}" if not args.no_errors else
                 "no failed_test_stories.yml was written (--no-errors); the summary above "
                 "names each story's first wrong prediction")
        print(f"error: {len(report.failed)} of {report.n_stories} test stories failed "
              f"(--fail-on-prediction-errors); {where}.", file=sys.stderr)
        return 1
    return 0


def _report_nlu(run: Any, args: argparse.Namespace) -> None:
    if run.nlu_paths == ["data"] and not args.nlu:
        print("note: no NLU test data in test/ or tests/; scoring the model on its training "
              "data in data/ (pass --nlu for held-out data).")
    print(f"Testing {run.model} on {run.nlu.n_messages} messages from {' '.join(run.nlu_paths)}")
    print(run.nlu.summary())


def _check_out(args: argparse.Namespace) -> None:
    """Refuse a --out that cannot hold the reports before testing, not after it (a
    cross-validation trains every fold first)."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file, but the reports are written into a folder.",
                        hint="Move the file, or pass another folder with --out.")


def run_test_core(args: argparse.Namespace) -> int:
    from parley.evaluation.run import run_core_test

    _check_out(args)

    run = run_core_test(_model(args), args.stories, args.out, **_core_options(args))
    code = _report_core(run, args)
    _plots_note(args)
    print(f"Reports are in {args.out}/")
    return code


def _plots_note(args: argparse.Namespace) -> None:
    from parley.nlu.plots import plots_available

    if not args.no_plot and not plots_available():
        print("note: no plots written — they need matplotlib: pip install 'parley[plots]'.")


def _model(args: argparse.Namespace) -> str:
    return args.model if args.model is not None else DEFAULT_MODELS


MODEL, CROSS_VALIDATION, COMPARISON = "model", "cross-validation", "comparison"
# The options each way of running the NLU part uses (with the argparse dest).
MODE_OPTIONS = {
    MODEL: {},
    CROSS_VALIDATION: {"-c/--config": "config", "-d/--domain": "domain", "--seed": "seed",
                       "-f/--folds": "folds"},
    COMPARISON: {"-c/--config": "config", "-d/--domain": "domain", "--seed": "seed",
                 "-r/--runs": "runs", "-p/--percentages": "percentages"},
}
WHAT_NOT = {MODEL: "without --cross-validation or several configs the trained model "
                   "(--model) is tested as it is",
            CROSS_VALIDATION: "--cross-validation does not use it",
            COMPARISON: "comparing configs does not use it"}


def _nlu_mode(args: argparse.Namespace) -> str:
    """How the NLU part runs: test the model, cross-validate one config, or compare
    several. An option of another mode is refused (Rasa ignores it silently), except one
    config without --cross-validation: ``rasa test -c config.yml`` tests the model, and CI
    scripts written for Rasa pass it, so it is taken with a note (:func:`_unused_config`)."""
    configs = args.config or []
    comparing = len(configs) > 1 or any(Path(c).is_dir() for c in configs)
    if comparing and args.cross_validation:
        raise DataError(f"--cross-validation takes one config, not -c {' '.join(configs)}.",
                        hint="Drop --cross-validation to compare the configs, or pass one.")
    mode = COMPARISON if comparing else CROSS_VALIDATION if args.cross_validation else MODEL
    for other in (CROSS_VALIDATION, COMPARISON):
        for flag, dest in MODE_OPTIONS[other].items():
            if flag in MODE_OPTIONS[mode] or getattr(args, dest) is None:
                continue
            if mode == MODEL and dest == "config":
                continue  # one config: Rasa's rasa test takes it and tests the model
            where = ("--cross-validation" if other == CROSS_VALIDATION
                     else "comparing several configs (-c a.yml b.yml)")
            if flag in MODE_OPTIONS[CROSS_VALIDATION] and flag in MODE_OPTIONS[COMPARISON]:
                where = "--cross-validation or comparing several configs"
            hint = ("Add --cross-validation, or leave out " if mode == MODEL
                    and flag in MODE_OPTIONS[CROSS_VALIDATION] else "Leave out ")
            raise DataError(f"{flag} is used by {where} only; {WHAT_NOT[mode]}.",
                            hint=f"{hint}{flag}.")
    return mode


def _unused_config(args: argparse.Namespace, mode: str) -> None:
    if mode == MODEL and args.config:
        print(f"note: -c {args.config[0]} is not used: without --cross-validation the "
              "trained model is tested, as rasa test does (add --cross-validation to "
              "cross-validate the config).")


def _print_fold(number: int, total: int, n_train: int, n_test: int) -> None:
    print(f"Fold {number}/{total}: training on {n_train} examples, testing on {n_test}",
          flush=True)


def _cross_validate(args: argparse.Namespace) -> None:
    from parley.evaluation.cross_validation import run_cross_validation

    paths, result = run_cross_validation(
        args.config[0] if args.config else None, args.nlu, args.out,
        folds=args.folds if args.folds is not None else DEFAULT_FOLDS,
        seed=args.seed if args.seed is not None else DEFAULT_SEED, domain=args.domain,
        errors=not args.no_errors, successes=args.successes, plot=not args.no_plot,
        on_fold=_print_fold)
    print(f"Cross-validated on {len(result.report.intents.gold) if result.report.intents else 0}"
          f" NLU examples from {' '.join(paths)} (seed {result.seed})")
    print(result.summary())
    print("The test folds together:")
    print(result.report.summary())


def _compare(args: argparse.Namespace) -> None:
    from parley.evaluation.comparison import run_comparison

    paths, comparison = run_comparison(
        args.config, args.nlu, args.out,
        runs=args.runs if args.runs is not None else DEFAULT_RUNS,
        percentages=args.percentages or list(DEFAULT_PERCENTAGES),
        seed=args.seed if args.seed is not None else DEFAULT_SEED, domain=args.domain,
        plot=not args.no_plot, on_step=lambda line: print(line, flush=True))
    print(f"Compared {len(comparison.f1)} configs on the NLU data of {' '.join(paths)}")
    print(comparison.summary())


def _train_and_test_nlu(args: argparse.Namespace, mode: str, model_used: bool) -> None:
    """The NLU part when it trains its own models (cross-validation or comparison)."""
    if args.model is not None and not model_used:
        print(f"note: --model {args.model} is not used: the {mode} trains its own models.")
    if mode == CROSS_VALIDATION:
        _cross_validate(args)
    else:
        _compare(args)


def run_test_nlu(args: argparse.Namespace) -> int:
    _check_out(args)
    mode = _nlu_mode(args)
    if mode != MODEL:
        _train_and_test_nlu(args, mode, model_used=False)
        _plots_note(args)
        print(f"Reports are in {args.out}/")
        return 0
    from parley.evaluation.run import run_nlu_test

    _unused_config(args, mode)
    run = run_nlu_test(_model(args), args.nlu, args.out, errors=not args.no_errors,
                       successes=args.successes, plot=not args.no_plot)
    _plots_note(args)
    _report_nlu(run, args)
    print(f"Reports are in {args.out}/")
    return 0


def run_test_both(args: argparse.Namespace) -> int:
    from parley.evaluation.run import run_core_part, run_tests

    _check_out(args)
    mode = _nlu_mode(args)
    if mode != MODEL:
        # The core part still tests the model; the NLU part trains its own.
        run = run_core_part(_model(args), args.stories, args.out,
                            model_named=args.model is not None, **_core_options(args))
    else:
        _unused_config(args, mode)
        run = run_tests(_model(args), args.stories, args.nlu, args.out,
                        **_core_options(args))
    code = 0
    _plots_note(args)
    for reason in run.skipped:
        print(f"note: not tested, {reason}")
    if run.core is not None:
        code = _report_core(run, args)
    if run.nlu is not None:
        _report_nlu(run, args)
    if mode != MODEL:
        _train_and_test_nlu(args, mode, model_used=True)
    print(f"Reports are in {args.out}/")
    return code
