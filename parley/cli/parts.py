"""Commands with parts (``parley train nlu``, ``parley test core``, ``parley data validate
stories``, ``parley run actions``): an option may come before the part or after it.

argparse parses a part's options into a namespace of their own and copies all of it over the
command's, defaults included: ``parley train -c other.yml nlu`` trained with config.yml, the
``-c`` silently dropped. So while such a command is parsed its options have no default
(``argparse.SUPPRESS``) and the namespace holds only what the user gave, on either side of
the part; given on both sides, the later one wins, as when an option is repeated. Then
:func:`finish` refuses what was given before the part but the part does not take (``parley
train --dry-run nlu`` would otherwise train), and fills in the defaults of the command run.
Every command is built this way (:func:`parley.cli.main.build_parser`), so one that gains
parts later needs nothing more.
"""

from __future__ import annotations

import argparse
import weakref
from typing import Any

# An option's own default, while argparse sees SUPPRESS in its place.
_DEFAULTS: weakref.WeakKeyDictionary[argparse.Action, Any] = weakref.WeakKeyDictionary()


def options_on_either_side(command: argparse.ArgumentParser) -> None:
    """Let the options of ``command`` and of its parts (and theirs) come before or after
    a part; call once all their arguments are added."""
    for action in command._actions:  # noqa: SLF001 - argparse has no public list of them
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for part in action.choices.values():
                options_on_either_side(part)
        elif (action.option_strings and action.dest not in (argparse.SUPPRESS, "help")
              and action not in _DEFAULTS):
            _DEFAULTS[action] = action.default
            action.default = argparse.SUPPRESS


def finish(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """After ``parser.parse_args``: a usage error (exit 2) for an option given before a
    part that does not take it; the defaults of the options not given."""
    chain = _commands_run(parser, args)
    run = chain[-1]
    takes = {action.dest for action in run._actions}  # noqa: SLF001
    for command in chain[:-1]:
        for action in command._actions:  # noqa: SLF001
            if action in _DEFAULTS and action.dest in vars(args) and action.dest not in takes:
                run.error(f"{'/'.join(action.option_strings)} is an option of "
                          f"`{command.prog}`, not of `{run.prog}`: leave it out, or see "
                          f"`{run.prog} --help` for the options it takes")
    for action in run._actions:  # noqa: SLF001
        if action in _DEFAULTS and action.dest not in vars(args):
            value = _DEFAULTS[action]
            if isinstance(value, str) and callable(action.type):  # as argparse converts one
                value = action.type(value)
            setattr(args, action.dest, value)


def _commands_run(parser: argparse.ArgumentParser,
                  args: argparse.Namespace) -> list[argparse.ArgumentParser]:
    """``parley``, ``parley train``, ``parley train nlu``: the parsers the command went
    through, by the names the subparsers stored in ``args``."""
    chain = [parser]
    while True:
        step = next((action for action in chain[-1]._actions  # noqa: SLF001
                     if isinstance(action, argparse._SubParsersAction)), None)  # noqa: SLF001
        if step is None or getattr(args, step.dest, None) is None:
            return chain
        chain.append(step.choices[getattr(args, step.dest)])
