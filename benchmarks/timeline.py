"""One ``parley train`` of a bot with its timeline: when each task of the training graph
started and ended, which trainings were light or waited for room to run beside the others,
and the process's CPU seconds at each of those moments.

    python benchmarks/timeline.py BOT [--config PATH] [--keep DIR]

BOT is a folder under ../shared/data/bots (or a path); the config defaults to the bot's
config-portable.yml (else config.yml). The training runs in this process, in a fresh
folder with a cold cache. Each line: wall seconds since the start, the process's CPU
seconds (user + system) and its peak resident memory by then, the message. ``--keep``
copies the model archive there (to compare two trainings' components).

The last line tells how many of the process's threads wanted a core (running, or ready to
run and waiting for one: state R in /proc) over the training, sampled every few
milliseconds: time with one such thread is time a second core had nothing to do for this
process, however loaded the machine is (a thread waiting for the interpreter lock sleeps,
so it is not counted), with the process's CPU seconds in those moments. Linux only.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import shutil
import sys
import tempfile
import threading
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
              f"  peak {usage.ru_maxrss >> 10:4d} MB  {record.getMessage()}", flush=True)


class _Demand(threading.Thread):
    """Samples how many of this process's threads are in state R, every ``every`` seconds."""

    def __init__(self, every: float = 0.005) -> None:
        super().__init__(daemon=True)
        self.every = every
        self.seconds: dict[int, float] = {}
        self.cpu: dict[int, float] = {}  # the process's CPU seconds in those moments
        self.stop = threading.Event()

    def run(self) -> None:
        mine = threading.get_native_id()
        last, cpu = time.perf_counter(), _cpu()
        while not self.stop.wait(self.every):
            running = 0
            for task in os.listdir("/proc/self/task"):
                if int(task) == mine:
                    continue
                try:
                    with open(f"/proc/self/task/{task}/stat", "rb") as stat:
                        running += stat.read().rpartition(b")")[2].split()[0] == b"R"
                except OSError:
                    pass  # the thread ended meanwhile
            now, used = time.perf_counter(), _cpu()
            key = min(running, 2)
            self.seconds[key] = self.seconds.get(key, 0.0) + now - last
            self.cpu[key] = self.cpu.get(key, 0.0) + used - cpu
            last, cpu = now, used

    def summary(self) -> str:
        return ", ".join(f"{k}{'+' if k == 2 else ''}: {v:.1f} s (CPU {self.cpu.get(k, 0):.1f} s)"
                         for k, v in sorted(self.seconds.items()))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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

        demand = _Demand()
        if Path("/proc/self/task").is_dir():
            demand.start()
        code = parley(["train", "-d", str(bot / "domain.yml"), "-c", str(config),
                       "--data", str(bot / "data"), "--out", str(Path(tmp) / "models")])
        usage = resource.getrusage(resource.RUSAGE_SELF)
        print(f"{time.perf_counter() - began:7.2f} s  CPU {usage.ru_utime + usage.ru_stime:7.2f} s"
              f"  done (exit code {code}), load average {os.getloadavg()[0]:.1f}")
        demand.stop.set()
        if demand.seconds:
            print(f"threads wanting a core (seconds with 0, 1, 2 or more): {demand.summary()}")
        if args.keep and code == 0:
            args.keep.mkdir(parents=True, exist_ok=True)
            for archive in (Path(tmp) / "models").glob("*.tar.gz"):
                shutil.copy(archive, args.keep / archive.name)
    return code


if __name__ == "__main__":
    sys.exit(main())
