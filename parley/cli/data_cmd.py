"""``parley data validate``: read the project, print what it holds and every issue.

``parley data split`` lives in :mod:`parley.cli.data_split_cmd`."""

from __future__ import annotations

import argparse
import warnings
from typing import Any

from parley.cli import data_split_cmd
from parley.errors import ParleyWarning


def add_project_arguments(parser: argparse.ArgumentParser) -> None:
    """Rasa's flags for where the project's files are."""
    parser.add_argument("-d", "--domain", default="domain.yml",
                        help="Domain file or folder of domain files (default: domain.yml).")
    parser.add_argument("-c", "--config", default="config.yml",
                        help="Config file (default: config.yml).")
    parser.add_argument("--data", nargs="+", default=["data"],
                        help="Training data files or folders (default: data).")


def register(commands: Any) -> None:
    data = commands.add_parser("data", help="Work with a project's training data.")
    sub = data.add_subparsers(dest="data_command", metavar="COMMAND")
    validate = sub.add_parser(
        "validate", help="Check the project's files for mistakes.",
        description="Read domain, config and training data; report errors and warnings "
                    "with file and line. Exits 1 on errors (or on warnings with --fail-on-warnings).",
    )
    add_validate_arguments(validate)
    validate.set_defaults(handler=run_validate, stories_only=False)
    parts = validate.add_subparsers(dest="validate_part", metavar="stories")
    stories = parts.add_parser(
        "stories", help="Check only the story structure (conflicting stories).",
        description="Report stories that lead to different actions from the same history "
                    "(the last --max-history states). Conflicts are warnings: exits 1 "
                    "only with --fail-on-warnings, as Rasa does.")
    add_validate_arguments(stories)
    stories.set_defaults(handler=run_validate, stories_only=True)
    data_split_cmd.register(sub)
    data.set_defaults(handler=lambda args: data.print_help() or 2)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"the value of `--max-history {text}` is not a "
                                         "positive integer")
    return value


def add_validate_arguments(parser: argparse.ArgumentParser) -> None:
    add_project_arguments(parser)
    parser.add_argument("--fail-on-warnings", action="store_true",
                        help="Exit 1 when there are warnings (story conflicts too).")
    parser.add_argument("--max-history", type=positive_int, default=None, metavar="N",
                        help="Compare the last N states before each action of the stories "
                             "(default: the smallest max_history of the configured "
                             "policies; the whole conversation when none has one).")


def run_validate(args: argparse.Namespace) -> int:
    # Here, not at the top: every command imports this module, `parley train` among them.
    from parley.data.importer import TrainingDataImporter
    from parley.data.validation import ValidationReport, validate_project
    from parley.dialogue.conflicts import check_story_structure
    from parley.recipe import config_issues

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ParleyWarning)
        importer = TrainingDataImporter(args.domain, args.config, args.data)
        config = importer.config
        summary = importer.summary()
        if args.stories_only:
            report, found_in_config = ValidationReport([]), []
        else:
            report = validate_project(importer)
            # config.yml's components, keys and values, as training would check them
            found_in_config = config_issues(config)
        structure = check_story_structure(importer, args.max_history)
    read_warnings = [w.message.issue for w in caught if isinstance(w.message, ParleyWarning)]
    print(f"Project: domain {args.domain}, config {args.config}, data {' '.join(args.data)}")
    print(f"  language {config.language}, assistant_id {config.assistant_id}, "
          f"{len(config.pipeline)} pipeline components, {len(config.policies)} policies")
    for notice in config.notices():
        print(f"  note: {notice}")
    for name, count in summary.items():
        print(f"  {count:>6}  {name}")
    print(f"  {structure.summary()}")
    issues = read_warnings + report.issues + found_in_config + structure.issues
    for issue in issues:
        print(issue)
    errors = sum(issue.level == "error" for issue in issues)
    warns = len(issues) - errors
    if errors or (args.fail_on_warnings and warns):
        print(f"Validation failed: {errors} error(s), {warns} warning(s).")
        return 1
    print(f"Validation passed: {errors} errors, {warns} warning(s).")
    return 0
