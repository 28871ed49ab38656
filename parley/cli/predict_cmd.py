"""``parley predict TEXT``: parse a message with a trained model and show what the bot does next."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "predict", help="Parse a message and predict the next actions.",
        description="Load a model (default: the newest in models/), parse TEXT as the first "
                    "user message of a conversation, and print the parse result and the "
                    "actions the assistant would run next.",
    )
    parser.add_argument("text", help="The user's message.")
    parser.add_argument("-m", "--model", default="models",
                        help="Model archive, or a folder to take the newest from.")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from parley.serving.agent import load

    agent = load(args.model)
    parse = agent.parse(args.text)
    print(json.dumps(parse, indent=2, ensure_ascii=False))
    if agent.policies:
        user = {"event": "user", "text": args.text,
                "parse_data": {"intent": parse["intent"], "entities": parse["entities"]}}
        events = [{"event": "action", "name": "action_listen"}, user]
        print("Next actions:")
        for step in agent.predict_next_actions(events):
            print(f"  {step['action']}  ({step['confidence']:.2f}, {step['policy']}: "
                  f"{step['reason']})")
    return 0
