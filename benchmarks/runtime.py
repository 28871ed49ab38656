"""How long the runtime takes to answer a message, in process (no HTTP, no network).

    python benchmarks/runtime.py [--conversations N] [BOT ...]   (default: moodbot formbot)

Trains each bot under ../shared/data/bots with Parley's default pipeline and Memoization +
Rule policies (into a temporary folder), then holds N scripted conversations through
``MessageProcessor.handle_message`` with in-memory stores: the latency of each message
(p50, p99), messages per second, and how much of a message is NLU parsing. The formbot's
``validate_restaurant_form`` is answered in process, accepting every value, so that its
form runs as it would with an action server (without the network time). Prints a
Markdown table. This is the in-process share of Rasa 3.6's handle-message time
(../shared/anchors.md); the HTTP server adds its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("PARLEY_TORCH_THREADS", "1")
os.environ.setdefault("PARLEY_QUIET", "1")

from parley.data.domain import Domain  # noqa: E402 - after the environment is set
from parley.data.events import SlotSet  # noqa: E402
from parley.data.tracker import DialogueStateTracker  # noqa: E402
from parley.model_training import train  # noqa: E402
from parley.runtime.executor import CustomActionResult  # noqa: E402
from parley.runtime.processor import MessageProcessor, UserMessage  # noqa: E402
from parley.serving.agent import load  # noqa: E402

BOTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "bots"
CONFIG = "language: en\npolicies:\n  - name: MemoizationPolicy\n  - name: RulePolicy\n"
SCRIPTS = {
    "rasa-example-moodbot": ["hello", "I am sad", "yes", "bye"],
    "rasa-example-formbot": ["hi", "im looking for a restaurant", '/inform{"cuisine": "greek"}',
                             '/inform{"number": 4}', "yes", "no", "great service"],
}
ALIASES = {"moodbot": "rasa-example-moodbot", "formbot": "rasa-example-formbot"}


class AcceptEverything:
    """An in-process validate_<form>: every slot candidate is valid."""

    async def run_custom_action(self, name: str, tracker: DialogueStateTracker,
                                domain: Domain) -> CustomActionResult:
        candidates: list[SlotSet] = []
        for event in reversed(tracker.events):
            if not isinstance(event, SlotSet):
                break
            candidates.append(SlotSet(key=event.key, value=event.value))
        return CustomActionResult(events=candidates[::-1])


def trained(bot: str, folder: Path) -> Any:
    (folder / "config.yml").write_text(CONFIG)
    cwd = Path.cwd()
    os.chdir(folder)  # the training cache stays in the temporary folder
    try:
        result = train(str(BOTS / bot / "domain.yml"), str(folder / "config.yml"),
                       [str(BOTS / bot / "data")], str(folder / "models"))
    finally:
        os.chdir(cwd)
    return load(result.model)


def measure(bot: str, conversations: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        agent = trained(bot, Path(folder))
        processor = MessageProcessor(agent, executor=AcceptEverything(), seed=0)
        script = SCRIPTS[bot]

        async def run() -> list[float]:
            times: list[float] = []
            for number in range(conversations):
                for text in script:
                    start = time.perf_counter()
                    await processor.handle_message(UserMessage(text, f"c{number}"))
                    times.append(time.perf_counter() - start)
            return times

        asyncio.run(run())  # warm-up: first calls fill caches
        processor = MessageProcessor(agent, executor=AcceptEverything(), seed=0)
        times = sorted(asyncio.run(run()))
        parse = []
        for text in script * 10:
            start = time.perf_counter()
            agent.parse(text)
            parse.append(time.perf_counter() - start)
    return {"bot": bot, "messages": len(times),
            "p50_ms": 1000 * times[len(times) // 2],
            "p99_ms": 1000 * times[min(len(times) - 1, int(len(times) * 0.99))],
            "per_s": len(times) / sum(times),
            "parse_p50_ms": 1000 * statistics.median(parse)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bots", nargs="*", default=["moodbot", "formbot"])
    parser.add_argument("--conversations", type=int, default=200)
    args = parser.parse_args(argv)
    print("| bot | messages | p50 ms | p99 ms | messages/s | parse p50 ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.bots:
        row = measure(ALIASES.get(name, name), args.conversations)
        print(f"| {row['bot']} | {row['messages']} | {row['p50_ms']:.2f} | "
              f"{row['p99_ms']:.2f} | {row['per_s']:.0f} | {row['parse_p50_ms']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
