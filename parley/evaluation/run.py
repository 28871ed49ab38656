"""Load a model, find the test data, evaluate, write the reports: what ``parley test`` runs.

``run_core_test`` is ``parley test core``, ``run_nlu_test`` is ``parley test nlu``, and
``run_tests`` runs both on one loaded model (``parley test``), as ``rasa test`` does.
Where test data lives by convention: test stories and NLU test data in ``tests/`` (what
``rasa init`` writes; Rasa's default) or ``test/``; NLU falls back to ``data/`` as Rasa does.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parley.data.stories import Story
from parley.errors import DataError, warn
from parley.evaluation.core import CoreReport, evaluate_core, rules_note, split_rules

__all__ = ["TestRun", "find_nlu_test_data", "find_test_stories", "load_nlu_data",
           "run_core_part", "run_core_test", "run_nlu_test", "run_tests"]

DEFAULT_RESULTS = "results"
TEST_FOLDERS = ("tests", "test")
DEFAULT_DATA = "data"


def _importer(paths: Sequence[str]) -> Any:
    from parley.data.importer import TrainingDataImporter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # files that hold only NLU data, or only stories
        return TrainingDataImporter(None, None, list(paths))


def _check_given(given: Sequence[str], flag: str) -> None:
    """A path given on the command line that is not there: said with the flag it came
    from (the importer's own message suggests ``--data``)."""
    for path in given:
        if not Path(path).exists():
            raise DataError(f"the {flag} path '{path}' does not exist.",
                            hint=f"Pass existing test story files or folders with {flag}.")


def find_test_stories(given: Sequence[str] | None) -> tuple[list[str], list[Story]]:
    """The paths and the stories to test. Given paths: every story in them (test story
    files, and other story files named outright, as ``rasa test core --stories`` takes
    them); without, the test story files (``test_*.yml``) in tests/ or test/. Rules are
    not tested, as in Rasa; a warning says how many were left out."""
    if given:
        _check_given(given, "--stories")
        importer = _importer(given)
        stories = _without_rules([*importer.test_stories, *importer.stories])
        if not stories:
            raise DataError(f"{' '.join(given)} holds no stories to test.",
                            hint="Pass story files (a 'stories:' section) with --stories; "
                                 "rules are not tested, as in Rasa.")
        return list(given), stories
    for folder in TEST_FOLDERS:
        if Path(folder).is_dir():
            stories = _without_rules(_importer([folder]).test_stories)
            if stories:
                return [folder], stories
    raise DataError("no test stories: there is no test_*.yml with stories in tests/ or test/.",
                    hint="Pass them with --stories, e.g. --stories tests/test_stories.yml.")


def _without_rules(tests: Sequence[Story]) -> list[Story]:
    stories, rules = split_rules(tests)
    if rules:
        warn(rules_note(rules), rules[0].file, rules[0].line)
    return stories


def load_nlu_data(paths: Sequence[str], flag: str) -> Any:
    """The NLU data of paths named on the command line with ``flag``."""
    for path in paths:
        if not Path(path).exists():
            raise DataError(f"the {flag} path '{path}' does not exist.",
                            hint=f"Pass existing NLU files or folders with {flag}.")
    return _importer(paths).nlu_data


def find_nlu_test_data(given: Sequence[str] | None) -> tuple[list[str], Any]:
    """The paths to test NLU on and their NLU data; without ``given``, Rasa-like defaults."""
    if given:
        return list(given), load_nlu_data(given, "--nlu")
    for folder in TEST_FOLDERS:
        if Path(folder).is_dir():
            data = _importer([folder]).nlu_data
            if data.examples:
                return [folder], data
    if Path(DEFAULT_DATA).is_dir():
        return [DEFAULT_DATA], _importer([DEFAULT_DATA]).nlu_data
    raise DataError("no NLU test data: no NLU examples in test/ or tests/, and no data/ "
                    "folder here.",
                    hint="Pass the test files with --nlu, e.g. --nlu test/test_nlu.yml.")


@dataclass
class TestRun:
    """What one run tested and found; ``nlu``/``core`` are None for a part not run."""

    __test__ = False  # a result, not a pytest test class

    model: Path
    core: CoreReport | None = None
    core_paths: list[str] | None = None
    nlu: Any = None
    nlu_paths: list[str] | None = None
    skipped: list[str] = field(default_factory=list)  # why a part was not tested


def _load(model: str | Path) -> tuple[Path, Any]:
    from parley.model_archive import resolve_model
    from parley.serving.agent import load

    archive = resolve_model(model)
    return archive, load(archive)


def run_core_test(model: str | Path = "models", stories: Sequence[str] | None = None,
                  out: str | Path | None = DEFAULT_RESULTS, *, e2e: bool = False,
                  errors: bool = True, successes: bool = False, warnings: bool = True,
                  plot: bool = True, agent: Any = None) -> TestRun:
    """``rasa test core``: replay the test stories with the model and write the reports
    into ``out`` (None: write nothing). The ``user:`` texts are parsed by the model and
    their intents checked; ``e2e`` checks their entities too and scores intents and
    entities in story_report.json."""
    paths, found = find_test_stories(stories)
    archive, agent = (Path(model), agent) if agent is not None else _load(model)
    if not agent.policies or agent.domain is None:
        raise DataError(f"{archive} has no Core part to test stories with.",
                        hint="Train it with stories or rules (parley train), or run "
                             "parley test nlu.")
    _warn_unknown_names(found, agent.domain)
    report = evaluate_core(agent, found, e2e=e2e)
    if out is not None:
        report.write(out, errors=errors, successes=successes, warnings=warnings,
                     plot=plot)
    return TestRun(archive, core=report, core_paths=paths)


def _warn_unknown_names(stories: Sequence[Story], domain: Any) -> None:
    """A test story naming an intent, entity, action, slot or form the model's domain lacks
    (a typo, or a model trained before the name was added) is replayed all the same, as
    Rasa does; like Rasa, say so at the story's line."""
    from parley.data.validation import check_stories_against_domain

    for issue in check_stories_against_domain(list(stories), domain):
        what = issue.message.split(" Add ", 1)[0].replace("the domain", "the model's domain")
        warn(f"{what} The story is replayed as written: fix the name, or retrain the model "
             "with it.", issue.file, issue.line)


def run_nlu_test(model: str | Path = "models", nlu: Sequence[str] | None = None,
                 out: str | Path | None = DEFAULT_RESULTS, *, errors: bool = True,
                 successes: bool = False, plot: bool = True, agent: Any = None) -> TestRun:
    """``rasa test nlu``: parse the NLU test data and write the reports (and, with
    matplotlib, the plots) into ``out``: intents, each entity extractor's, responses."""
    from parley.evaluation.nlu_files import write_nlu_reports
    from parley.nlu.evaluation import entity_extractors, evaluate_nlu

    paths, data = find_nlu_test_data(nlu)
    if not data.examples:
        raise DataError(f"{' '.join(paths)} holds no NLU examples to test on.",
                        hint="Pass files with an 'nlu:' section with --nlu.")
    archive, agent = (Path(model), agent) if agent is not None else _load(model)
    report = evaluate_nlu(agent, data, warmup=min(3, len(data.examples)),
                          extractors=entity_extractors(agent.nlu_components))
    if out is not None:
        write_nlu_reports(report, out, errors=errors, successes=successes, plot=plot)
    return TestRun(archive, nlu=report, nlu_paths=paths)


def _missing(find: Any, given: Sequence[str] | None) -> str | None:
    """Why a part cannot be tested when its data was not named and is not found (named
    data must be there: then the part runs and says what is wrong). A fault in a file that
    was found (bad YAML, an unknown key) is raised with its file and line, not skipped."""
    if given:
        return None
    try:
        with warnings.catch_warnings():  # the run that follows warns once
            warnings.simplefilter("ignore")
            find(None)
    except DataError as error:
        if error.file is not None:
            raise
        return error.message
    return None


def run_core_part(model: str | Path = "models", stories: Sequence[str] | None = None,
                  out: str | Path | None = DEFAULT_RESULTS, *, model_named: bool = True,
                  **options: Any) -> TestRun:
    """``rasa test``'s core part alone, for when its NLU part trains its own models
    (``--cross-validation``, several configs): skipped, with the reason, when there is no model (unless
    ``model_named``: a model asked for must be there), no Core part or no test stories."""
    from parley.errors import ModelArchiveError

    try:
        archive, agent = _load(model)
    except ModelArchiveError as error:
        if model_named:
            raise
        return TestRun(Path(model), skipped=[f"core: {error}"])
    if not agent.policies or agent.domain is None:
        return TestRun(archive, skipped=["core: the model has no Core part"])
    if (why := _missing(find_test_stories, stories)) is not None:
        return TestRun(archive, skipped=[f"core: {why}"])
    return run_core_test(archive, stories, out, agent=agent, **options)


def run_tests(model: str | Path = "models", stories: Sequence[str] | None = None,
              nlu: Sequence[str] | None = None, out: str | Path | None = DEFAULT_RESULTS,
              **options: Any) -> TestRun:
    """``rasa test``: the core part and the NLU part on one loaded model; a part the model
    lacks, or whose test data is neither named nor found, is skipped (``skipped`` says
    why). ``options`` are :func:`run_core_test`'s (``errors`` and ``plot`` go to both
    parts)."""
    archive, agent = _load(model)
    run = TestRun(archive)
    if not agent.policies or agent.domain is None:
        run.skipped.append("core: the model has no Core part")
    elif (why := _missing(find_test_stories, stories)) is not None:
        run.skipped.append(f"core: {why}")
    else:
        core = run_core_test(archive, stories, out, agent=agent, **options)
        run.core, run.core_paths = core.core, core.core_paths
    if not agent.nlu_components:
        run.skipped.append("nlu: the model has no NLU part")
    elif (why := _missing(find_nlu_test_data, nlu)) is not None:
        run.skipped.append(f"nlu: {why}")
    else:
        part = run_nlu_test(archive, nlu, out, errors=options.get("errors", True),
                            successes=options.get("successes", False),
                            plot=options.get("plot", True), agent=agent)
        run.nlu, run.nlu_paths = part.nlu, part.nlu_paths
    if run.core is None and run.nlu is None:
        raise DataError(f"nothing to test {archive} on: " + "; ".join(run.skipped) + ".",
                        hint="Pass test stories with --stories or NLU test data with --nlu.")
    return run
