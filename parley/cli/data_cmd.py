"""``parley data validate``: read the project, print what it holds and every issue."""

from __future__ import annotations

import argparse
import warnings
from typing import Any

from parley.data.importer import TrainingDataImporter
from parley.data.validation import validate_project
from parley.errors import ParleyWarning
from parley.recipe import config_issues


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
    add_project_arguments(validate)
    validate.add_argument("--fail-on-warnings", action="store_true",
                          help="Exit 1 when there are warnings, too.")
    validate.set_defaults(handler=run_validate)
    data.set_defaults(handler=lambda args: data.print_help() or 2)


def run_validate(args: argparse.Namespace) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ParleyWarning)
        importer = TrainingDataImporter(args.domain, args.config, args.data)
        config = importer.config
        summary = importer.summary()
        report = validate_project(importer)
        # config.yml's components, keys and values, as training would check them
        found_in_config = config_issues(config)
    read_warnings = [w.message.issue for w in caught if isinstance(w.message, ParleyWarning)]
    print(f"Project: domain {args.domain}, config {args.config}, data {' '.join(args.data)}")
    print(f"  language {config.language}, assistant_id {config.assistant_id}, "
          f"{len(config.pipeline)} pipeline components, {len(config.policies)} policies")
    for notice in config.notices():
        print(f"  note: {notice}")
    for name, count in summary.items():
        print(f"  {count:>6}  {name}")
    issues = read_warnings + report.issues + found_in_config
    for issue in issues:
        print(issue)
    errors = sum(issue.level == "error" for issue in issues)
    warns = len(issues) - errors
    if errors or (args.fail_on_warnings and warns):
        print(f"Validation failed: {errors} error(s), {warns} warning(s).")
        return 1
    print(f"Validation passed: {errors} errors, {warns} warning(s).")
    return 0
