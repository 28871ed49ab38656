"""Entry point of the ``parley`` command; maps the error tree to exit codes.

Anything a user can cause is a :class:`ParleyError` and prints as one line naming what to
fix. Any other exception is a bug in Parley: it says so and where to report it, and shows
the traceback only with ``--debug`` (or ``PARLEY_DEBUG=1``).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import errno
import gc
import os
import sys
import threading
import traceback
import warnings
from collections.abc import Sequence

from parley.cli import (
    data_cmd, init_cmd, interactive_cmd, parts, predict_cmd, run_cmd, shell_cmd, test_cmd,
    train_cmd, visualize_cmd,
)
from parley.errors import (
    ComponentError, ConfigError, DataError, ParleyError, ParleyWarning, location,
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_BUG = 70  # sysexits' EX_SOFTWARE: an internal error, not the user's
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what the shell reports for `yes | head -1`
BUG_REPORTS = "Parley's issue tracker"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="parley",
        description="Train and run Rasa 3.x assistants with Parley.",
    )
    from parley import __version__

    parser.add_argument("--version", action="version", version=f"parley {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="Show the traceback of an internal error (also: PARLEY_DEBUG=1).")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    init_cmd.register(commands)
    data_cmd.register(commands)
    train_cmd.register(commands)
    predict_cmd.register(commands)
    shell_cmd.register(commands)
    interactive_cmd.register(commands)
    run_cmd.register(commands)
    test_cmd.register(commands)
    visualize_cmd.register(commands)
    for command in commands.choices.values():
        parts.options_on_either_side(command)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
    stream = file or sys.stderr
    if isinstance(message, ParleyWarning):
        print(message.issue, file=stream)
    else:
        print(f"{category.__name__}: {message}", file=stream)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code. ``argv`` None: the command line of this process,
    which ends when the command does (see :func:`_ending`)."""
    code = _main(argv)
    if argv is None:
        _ending(code)
    return code


def _ending(code: int) -> None:
    """End the process now that the command is done, sparing it the work of tearing down
    what the OS takes back anyway.

    After a training, Python's shutdown would walk every object PyTorch and the model left
    behind, looking for cycles to free: ~0.45 s of CPU in a process that imported torch
    (measured: ``import torch`` alone, 1.48 s user+sys with the walk, 1.03 s without).
    ``gc.freeze`` moves the objects out of its reach. What remains of an ordinary exit is
    mostly PyTorch's C++ teardown (unregistering each of its thousands of operator kernels)
    and freeing the heap block by block: ~0.09 s of CPU after a training of snips-small. So
    when no other Python thread runs, the output is flushed, the exit handlers run
    (``atexit``: logging, temporary folders, coverage …) and the process ends with
    ``os._exit``. With another thread alive the ordinary exit waits for it, as always.
    """
    gc.freeze()
    if threading.active_count() > 1:
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe or stream: the ordinary exit handles it
        return
    atexit._run_exitfuncs()  # noqa: SLF001 - what an ordinary exit runs first
    with contextlib.suppress(OSError, ValueError):  # what the handlers printed
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    parts.finish(parser, args)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    warnings.showwarning = _show_warning
    try:
        code = int(args.handler(args) or EXIT_OK)
        sys.stdout.flush()  # a closed pipe shows here, while it can still be handled
        return code
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except DataError as exc:
        print(exc.report(), file=sys.stderr)
        return EXIT_ERROR
    except ParleyError as exc:
        if isinstance(exc, ComponentError) and _debugging(args):
            traceback.print_exception(exc, file=sys.stderr)  # where in the user's code
        print(f"{_report(exc)}{_os_hint(exc.__cause__)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # the disk or a path refused: the user's to fix, not a bug
        print(f"error: {_short(str(exc))}{_os_hint(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - nothing a user can cause ends here: a bug
        return _report_bug(exc, _debugging(args))


def _report(exc: ParleyError) -> str:
    """``file:line: error: …`` when the error has a place (as DataError's report), else
    ``error: …``; an unreadably long message cut in the middle."""
    if isinstance(exc, ConfigError) and exc.file is not None:
        return f"{location(exc.file, exc.line)}: error: {_short(exc.detail)}"
    return f"error: {_short(str(exc))}"


def _debugging(args: argparse.Namespace) -> bool:
    return bool(args.debug) or os.environ.get("PARLEY_DEBUG", "") not in ("", "0")


def _quiet_broken_pipe() -> int:
    """The reader of our output went away (``parley predict hi | head -1``): stop quietly,
    as Unix tools do, and keep Python from complaining when it flushes stdout at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (e.g. captured in tests)
        pass
    return EXIT_BROKEN_PIPE


# What to do when the operating system refuses, by errno; the OS's words say what happened.
_OS_HINTS = {
    errno.ENOSPC: "The disk is full: free some space, or pass --out with a folder on "
                  "another disk. Nothing half-written was left behind.",
    errno.ENAMETOOLONG: "A file name is too long: choose a shorter name "
                        "(e.g. --fixed-model-name).",
    errno.EACCES: "Parley may not write or read there: check the permissions, or pass "
                  "another folder.",
    errno.EROFS: "The disk is read-only: pass --out with a folder Parley can write to.",
    errno.EEXIST: "A file stands where a folder is needed: move it, or pass another folder.",
    errno.ENOTDIR: "A file stands where a folder is needed: move it, or pass another folder.",
    errno.ELOOP: "A symbolic link points back to itself: remove it or point it at a file.",
}


def _os_hint(exc: BaseException | None) -> str:
    hint = _OS_HINTS.get(getattr(exc, "errno", None)) if isinstance(exc, OSError) else None
    return f" {hint}" if hint else ""


def _short(text: str, limit: int = 600) -> str:
    """A message cut in the middle when a path or value makes it unreadably long."""
    if len(text) <= limit:
        return text
    keep = limit // 2
    return f"{text[:keep]} … {text[-keep:]}"


def _report_bug(exc: Exception, debug: bool) -> int:
    """Say that an unexpected exception is Parley's bug and where to report it."""
    from parley import __version__

    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    what = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    print(f"error: this is a bug in Parley {__version__}, not a mistake in your project "
          f"({what}).", file=sys.stderr)
    print(f"Please report it on {BUG_REPORTS} with the command you ran and this message"
          + ("." if debug else ", and the traceback that --debug (or PARLEY_DEBUG=1) shows."),
          file=sys.stderr)
    return EXIT_BUG


if __name__ == "__main__":
    raise SystemExit(main())
