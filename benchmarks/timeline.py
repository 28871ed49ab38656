"""One ``parley train`` of a bot with its timeline: when each task of the training graph
started and ended, which trainings were light or waited for a turn, and the process's CPU
seconds at each of those moments.

    python benchmarks/timeline.py BOT [--config PATH] [--keep DIR]

BOT is a folder under ../shared/data/bots (or a path); the config defaults to the bot's
config-portable.yml (else config.yml). The training runs in this process, in a fresh
folder with a cold cache. Each line: wall seconds since the start, the process's CPU
seconds (user + system) by then, the message. ``--keep`` copies the model archive there
(to compare two trainings' components).
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BOTS = REPO.parent / "shared" / "data" / "bots"
# The runner's task start/end lines and the trainers' turn lines (debug level).
LOGGERS = ("parley.engine.runner", "parley.ml.training")


class _Stamped(logging.Handler):
    def __init__(self, began: float) -> None:
        super().__init__(logging.DEBUG)
        self.began = began

    def emit(self, record: logging.LogRecord) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        print(f"{time.perf_counter() - self.began:7.2f} s  CPU {usage.ru_utime + usage.ru_stime:7.2f} s"
              f"  {record.getMessage()}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bot")
    parser.add_argument("--config")
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    bot = Path(args.bot) if Path(args.bot).is_dir() else BOTS / args.bot
    config = Path(args.config).resolve() if args.config else next(
        p for p in (bot / "config-portable.yml", bot / "config.yml") if p.exists())
    os.environ.setdefault("PARLEY_QUIET", "1")
    with tempfile.TemporaryDirectory(prefix="parley-timeline-") as tmp:
        os.environ["PARLEY_CACHE_DIR"] = str(Path(tmp) / "cache")
        began = time.perf_counter()
        for name in LOGGERS:
            logger = logging.getLogger(name)
            logger.setLevel(logging.DEBUG)
            logger.addHandler(_Stamped(began))
        from parley.cli.main import main as parley

        code = parley(["train", "-d", str(bot / "domain.yml"), "-c", str(config),
                       "--data", str(bot / "data"), "--out", str(Path(tmp) / "models")])
        usage = resource.getrusage(resource.RUSAGE_SELF)
        print(f"{time.perf_counter() - began:7.2f} s  CPU {usage.ru_utime + usage.ru_stime:7.2f} s"
              f"  done (exit code {code}), load average {os.getloadavg()[0]:.1f}")
        if args.keep and code == 0:
            args.keep.mkdir(parents=True, exist_ok=True)
            for archive in (Path(tmp) / "models").glob("*.tar.gz"):
                shutil.copy(archive, args.keep / archive.name)
    return code


if __name__ == "__main__":
    sys.exit(main())
