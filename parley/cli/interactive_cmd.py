"""``parley interactive``: correct the assistant as you talk, keep the talk as training data."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import Any

from parley.cli.data_cmd import add_project_arguments


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "interactive", help="Talk to the assistant, correct it, export the talk as stories.",
        description="Load a model (default: the newest in models/; with none there, train "
                    "one from the project first, as Rasa does) and hold conversations in "
                    "which you confirm or correct each parse and each action the bot wants to "
                    "run. '/stop' opens the menu: undo, restart, export and quit. Export adds "
                    "the conversations as training stories and the messages as NLU examples "
                    "to --export.")
    add_project_arguments(parser)
    parser.add_argument("-m", "--model", default="models",
                        help="Model archive, or a folder to take the newest from.")
    parser.add_argument("--export", default=None, metavar="PATH",
                        help="The YAML file the conversations are added to (default: "
                             "data/interactive.yml).")
    parser.add_argument("--seed", type=int, default=None,
                        help="Fix which variation of a response is chosen.")
    parser.add_argument("--endpoints", default=None,
                        help="endpoints.yml with the action server, NLG server, tracker "
                             "store, lock store and event broker, used as 'parley run' "
                             "uses them (default: endpoints.yml when there is one).")
    parser.add_argument("--skip-visualization", action="store_true",
                        help="Accepted as Rasa's; Parley's interactive mode draws no graph.")
    parser.set_defaults(handler=run)


def _model(args: argparse.Namespace) -> Path:
    from parley.model_archive import newest_model, resolve_model

    given = Path(args.model)
    empty = given.is_dir() and newest_model(given) is None
    if empty or (not given.exists() and args.model == "models"):
        from parley.model_training import train

        print(f"No model in {args.model}/: training one from the project first.")
        result = train(args.domain, args.config, args.data, str(given))
        if not result.model:
            from parley.errors import ModelArchiveError

            raise ModelArchiveError("training made no model; see the messages above.")
        return Path(result.model)
    return resolve_model(args.model)


def run(args: argparse.Namespace) -> int:
    from parley.runtime.action_server import ActionServerClient
    from parley.runtime.endpoints import read_endpoints
    from parley.runtime.nlg_server import nlg_server
    from parley.runtime.stores.factory import create_lock_store, create_tracker_store
    from parley.serving.agent import load
    from parley.serving.interactive import DEFAULT_EXPORT, run_interactive

    agent = load(_model(args))
    path = args.endpoints or ("endpoints.yml" if Path("endpoints.yml").is_file() else None)
    endpoints = read_endpoints(path)
    executor = (ActionServerClient.from_endpoint(endpoints.action_endpoint)
                if endpoints.action_endpoint is not None else None)
    export_path = args.export or str(Path(args.data[0]) / Path(DEFAULT_EXPORT).name
                                     if Path(args.data[0]).is_dir() else DEFAULT_EXPORT)
    if isinstance(sys.stdin, io.TextIOWrapper):
        # A strict stdin (an en_US.UTF-8 locale) would end the session at a pasted byte that
        # is not UTF-8; read as surrogates, the terminal replaces it (C.UTF-8's default).
        sys.stdin.reconfigure(errors="surrogateescape")
    # As `rasa interactive --endpoints`: the conversations are kept and published where
    # a served conversation is.
    run_interactive(agent, sys.stdin, sys.stdout, export_path, executor=executor,
                    seed=args.seed, nlg_server=nlg_server(endpoints.nlg),
                    tracker_store=create_tracker_store(endpoints.tracker_store),
                    lock_store=create_lock_store(endpoints.lock_store),
                    event_broker=endpoints.event_broker)
    return 0
