"""Rasa 3.6's handle-message latency in process, for benchmarks/serve.py ``--rasa``.

Runs in Rasa's own virtualenv (it imports Rasa, not Parley):

    VENV/bin/python benchmarks/rasa_handle.py MODEL.tar.gz MESSAGES '["hello", ...]'

Loads the archive with ``Agent.load``, holds one warm-up conversation of the script, then
sends MESSAGES messages one at a time with ``Agent.handle_text`` (in-memory stores), a new
conversation after each pass of the script — as serve.py's Parley in-process run does.
Prints one JSON line: the latencies (s), the CPU seconds they took (all threads), and the
load time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time


def main() -> None:
    model, messages, script = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    logging.disable(logging.WARNING)
    from rasa.core.agent import Agent

    began = time.perf_counter()
    agent = Agent.load(model)
    load_s = time.perf_counter() - began

    async def go() -> tuple[list[float], float]:
        for text in script:
            await agent.handle_text(text, sender_id="warm-up")
        latencies: list[float] = []
        cpu = time.process_time()
        for i in range(messages):
            began = time.perf_counter()
            await agent.handle_text(script[i % len(script)],
                                    sender_id=f"c{i // len(script)}")
            latencies.append(time.perf_counter() - began)
        return latencies, time.process_time() - cpu

    latencies, cpu_s = asyncio.run(go())
    print(json.dumps({"latencies": latencies, "cpu_s": cpu_s, "load_s": load_s}))


if __name__ == "__main__":
    main()
