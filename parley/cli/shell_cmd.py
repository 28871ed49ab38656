"""``parley shell``: talk to a trained assistant in the terminal; ``parley shell nlu`` parses."""

from __future__ import annotations

import argparse
import io
import sys
from typing import Any

DEFAULT_ENDPOINTS = "endpoints.yml"  # as Rasa: read when present


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "shell", help="Talk to the assistant in the terminal.",
        description="Load a model (default: the newest in models/) and hold a conversation: "
                    "type a message, read the answers. Buttons are numbered; type the "
                    "number to press one. '/stop' or Ctrl-D ends. `parley shell nlu` only "
                    "prints what NLU makes of each message.",
    )
    parser.add_argument("mode", nargs="?", choices=["nlu"],
                        help="'nlu': print the parse result of each message instead.")
    parser.add_argument("-m", "--model", default="models",
                        help="Model archive, or a folder to take the newest from.")
    parser.add_argument("--conversation-id", default=None,
                        help="The conversation's sender id (default: a new random one).")
    parser.add_argument("--seed", type=int, default=None,
                        help="Fix which variation of a response is chosen.")
    parser.add_argument("--endpoints", default=None,
                        help="endpoints.yml with the action server, NLG server, tracker "
                             "store and lock store (default: endpoints.yml when there is "
                             "one).")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from parley.errors import ModelArchiveError
    from parley.serving.agent import load
    from parley.serving.shell import run_nlu_shell, run_shell

    agent = load(args.model)
    if isinstance(sys.stdin, io.TextIOWrapper):
        # A strict stdin (an en_US.UTF-8 locale) would end the conversation at a pasted byte
        # that is not UTF-8; read as surrogates, the shell replaces it (C.UTF-8's default).
        sys.stdin.reconfigure(errors="surrogateescape")
    if args.mode == "nlu":
        if not agent.has_nlu:
            raise ModelArchiveError("this model has no NLU part; train it with NLU data.")
        run_nlu_shell(agent, sys.stdin, sys.stdout)
    else:
        from pathlib import Path

        from parley.runtime.action_server import ActionServerClient
        from parley.runtime.endpoints import read_endpoints
        from parley.runtime.nlg_server import nlg_server
        from parley.runtime.stores.factory import create_lock_store, create_tracker_store

        path = args.endpoints or (DEFAULT_ENDPOINTS if Path(DEFAULT_ENDPOINTS).is_file() else None)
        endpoints = read_endpoints(path)
        executor = (ActionServerClient.from_endpoint(endpoints.action_endpoint)
                    if endpoints.action_endpoint is not None else None)
        run_shell(agent, sys.stdin, sys.stdout, args.conversation_id, seed=args.seed,
                  executor=executor, tracker_store=create_tracker_store(endpoints.tracker_store),
                  lock_store=create_lock_store(endpoints.lock_store),
                  nlg_server=nlg_server(endpoints.nlg), event_broker=endpoints.event_broker)
    return 0
