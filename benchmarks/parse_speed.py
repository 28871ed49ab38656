"""Parse latency one message at a time, and model load time, beside Rasa 3.6's figures.

    python benchmarks/parse_speed.py [--datasets NAME ...] [--configs own|NAME|PATH ...]
                                     [--busy] [--models DIR] [--retrain] [--json PATH]

For each dataset (../shared/data/<name>) and config (``own`` = the dataset's config.yml,
Rasa's default DIET pipeline; ``lr`` = Parley's default pipeline; see benchmarks/nlu.py):
train once in a fresh process (the archive is kept in --models and reused by later runs;
--retrain trains again), then in another fresh process import Parley and load the model
(timed: what a server waits for before its first answer), parse WARMUP test messages
untimed, and time each parse of test/test_nlu.yml one message at a time.

``--busy`` runs every measurement twice: once quiet, once with a CPU-burning process per
core beside it (``python -c 'while True: pass'``, stopped afterwards) — what a parse costs
on a machine busy with other work. Prints a Markdown table; ``--json`` writes the rows.
Rasa's parse p50 and load figures: ../shared/anchors.md.

``p50 CPU ms`` is the median of the parsing thread's CPU time (``time.thread_time``; a
single message runs on one thread): what a parse costs whatever else the machine runs,
where wall time on a shared machine also counts the time slices other processes get.
``load s`` includes importing SciPy, which Parley does on demand (DIET and ResponseSelector
predict in numpy: loading them imports no PyTorch).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nlu import DATA_ROOT, REPO, TEST_FILE, config_for, resolve_config  # noqa: E402

DATASETS = ["snips-small", "hwu64-small", "banking77-small"]
WARMUP = 20
DEFAULT_MODELS = Path(tempfile.gettempdir()) / "parley-parse-speed-models"
# ../shared/anchors.md: Rasa 3.6.21's parse p50 ms with each set's own config, and
# Agent.load of the starter bot's model (the only load figure it gives).
RASA_PARSE_P50 = {"snips-small": 7.8, "banking77-small": 5.6, "hwu64-small": 7.8}
RASA_LOAD_S = 21.8
CACHE_DIR_ENV = "PARLEY_CACHE_DIR"


# --- the child processes ---------------------------------------------------------------
def _child_train(payload: dict[str, Any]) -> dict[str, Any]:
    from parley.model_training import train_nlu

    model = train_nlu(payload["config"], payload["nlu"], payload["out"],
                      fixed_model_name="model", domain=payload["domain"])
    return {"model": model}


def _child_parse(payload: dict[str, Any], started: float) -> dict[str, Any]:
    """Import, load, warm up, then time each parse. ``started``: when the interpreter
    began running this script (before any Parley import)."""
    from parley.serving.agent import load

    imported = time.perf_counter()
    agent = load(payload["model"])
    loaded = time.perf_counter()
    from parley.data.importer import TrainingDataImporter

    texts = [m.text for m in TrainingDataImporter(None, None, [payload["test"]]).nlu_data.examples
             if m.text]
    for text in texts[:WARMUP]:
        agent.parse(text)
    times, cpu = [], []
    for text in texts:
        start, start_cpu = time.perf_counter(), time.thread_time()
        agent.parse(text)
        cpu.append((time.thread_time() - start_cpu) * 1000.0)
        times.append((time.perf_counter() - start) * 1000.0)
    times.sort()
    return {"import_s": imported - started, "load_s": loaded - imported,
            "messages": len(times), "p50_ms": statistics.median(times),
            "p99_ms": times[min(len(times) - 1, round(0.99 * (len(times) - 1)))],
            "mean_ms": statistics.fmean(times), "cpu_p50_ms": statistics.median(cpu)}


def _spawn(kind: str, payload: dict[str, Any], cwd: Path) -> dict[str, Any]:
    env = {key: value for key, value in os.environ.items() if key != CACHE_DIR_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", kind,
                           json.dumps(payload)], cwd=cwd, env=env, capture_output=True,
                          text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line.removeprefix("RESULT "))  # type: ignore[no-any-return]
    tail = done.stderr.strip().splitlines()[-3:] or [f"exit code {done.returncode}"]
    raise RuntimeError(f"{kind} failed: {' / '.join(tail)}")


# --- a CPU load beside the measurement -------------------------------------------------
class Burners:
    """One busy-looping process per core while inside the ``with``."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Burners:
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                      for _ in range(self.count)]
        time.sleep(0.5)  # let them reach the loop
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            proc.kill()
        for proc in self.procs:
            proc.wait()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# --- one dataset × config --------------------------------------------------------------
def archive_for(dataset: Path, label: str, config: Path | None, models: Path,
                retrain: bool) -> Path:
    """The trained archive of ``dataset`` with ``config``: kept from an earlier run, or
    trained now in a fresh process."""
    target = models / f"{dataset.name}--{label}.tar.gz"
    if target.is_file() and not retrain:
        return target
    models.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="parley-parse-speed-") as tmp:
        work = Path(tmp)
        used = config_for(dataset, config, work)
        start = time.perf_counter()
        trained = _spawn("train", {"config": str(used), "nlu": str(dataset / "data"),
                                   "domain": str(dataset / "domain.yml"),
                                   "out": str(work / "models")}, work)
        print(f"trained {dataset.name} / {label} in {time.perf_counter() - start:.1f} s",
              file=sys.stderr)
        Path(trained["model"]).replace(target)
    return target


def measure(dataset: Path, archive: Path, busy: bool) -> dict[str, Any]:
    payload = {"model": str(archive), "test": str(dataset / TEST_FILE)}
    with tempfile.TemporaryDirectory(prefix="parley-parse-speed-") as tmp:
        if not busy:
            return _spawn("parse", payload, Path(tmp))
        with Burners(_cores()):
            return _spawn("parse", payload, Path(tmp))


# --- the table -------------------------------------------------------------------------
COLUMNS = ["dataset", "config", "machine", "import s", "load s", "parse p50 ms", "parse p99 ms",
           "p50 CPU ms", "Rasa parse p50 ms"]


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |",
             "|" + "|".join("---" if i < 3 else "---:" for i in range(len(COLUMNS))) + "|"]
    for row in rows:
        rasa = RASA_PARSE_P50.get(row["dataset"]) if row["config"] == "own" else None
        lines.append("| " + " | ".join([
            row["dataset"], row["config"], row["mode"], f"{row['import_s']:.2f}",
            f"{row['load_s']:.3f}", f"{row['p50_ms']:.2f}", f"{row['p99_ms']:.2f}",
            f"{row['cpu_p50_ms']:.2f}" if "cpu_p50_ms" in row else "—",
            "—" if rasa is None else f"{rasa:.1f}"]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=DATASETS, metavar="NAME")
    parser.add_argument("--configs", nargs="+", default=["own", "lr"], metavar="CONFIG")
    parser.add_argument("--busy", action="store_true",
                        help="also measure with a CPU-burning process per core beside it")
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS,
                        help=f"where trained archives are kept and reused (default {DEFAULT_MODELS})")
    parser.add_argument("--retrain", action="store_true", help="train even when an archive is kept")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    rows = []
    for name in args.datasets:
        dataset = DATA_ROOT / name
        for value in args.configs:
            label, config = resolve_config(value)
            archive = archive_for(dataset, label, config, args.models, args.retrain)
            for busy in ([False, True] if args.busy else [False]):
                row = {"dataset": name, "config": label, "mode": "busy" if busy else "quiet",
                       **measure(dataset, archive, busy)}
                rows.append(row)
                print(table([row]).splitlines()[-1], file=sys.stderr)
    print(f"Rasa 3.6 loads a model in {RASA_LOAD_S} s (the starter bot, ../shared/anchors.md); "
          "load s here is load alone, import s Parley's imports.\n")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        STARTED = time.perf_counter()
        import warnings

        warnings.simplefilter("ignore")
        kind, payload = sys.argv[2], json.loads(sys.argv[3])
        result = _child_train(payload) if kind == "train" else _child_parse(payload, STARTED)
        print("RESULT " + json.dumps(result))
        raise SystemExit(0)
    raise SystemExit(main())
