"""Entry point of the ``parley`` command; maps the error tree to exit codes."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from parley.cli import data_cmd, init_cmd, predict_cmd, test_cmd, train_cmd
from parley.errors import DataError, ParleyError, ParleyWarning

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parley",
        description="Train and run Rasa 3.x assistants with Parley.",
    )
    from parley import __version__

    parser.add_argument("--version", action="version", version=f"parley {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    init_cmd.register(commands)
    data_cmd.register(commands)
    train_cmd.register(commands)
    predict_cmd.register(commands)
    test_cmd.register(commands)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
    stream = file or sys.stderr
    if isinstance(message, ParleyWarning):
        print(message.issue, file=stream)
    else:
        print(f"{category.__name__}: {message}", file=stream)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    warnings.showwarning = _show_warning
    try:
        return int(args.handler(args) or EXIT_OK)
    except DataError as exc:
        print(exc.report(), file=sys.stderr)
        return EXIT_ERROR
    except ParleyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
