"""``parley init``: write the starter assistant."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from parley.starter import create_starter_project


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "init", help="Create a starter assistant project.",
        description="Write a small Rasa 3.x project (config, domain, NLU, stories, rules, tests).",
    )
    parser.add_argument("path", nargs="?", default=None,
                        help="Folder for the project (default: ask, or '.' with --no-prompt).")
    parser.add_argument("--no-prompt", action="store_true",
                        help="Do not ask anything; use the defaults.")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    path = args.path
    if path is None:
        path = "."
        if not args.no_prompt and sys.stdin.isatty():
            answer = input("Folder for the new project [.]: ").strip()
            path = answer or "."
    written = create_starter_project(path)
    print(f"Created a starter assistant in {path}:")
    for file in written:
        print(f"  {file}")
    print(f"Next: cd {path} && parley data validate")
    return 0
