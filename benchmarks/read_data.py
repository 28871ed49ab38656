"""How fast Parley reads and validates real projects.

    python benchmarks/read_data.py [NAME ...]     (default: every benchmark set and bot)

For each project under ../shared/data: time to read all of it (domain, config, NLU, stories),
time to validate, examples read, peak memory of the reading (tracemalloc), and the wall time
and peak RSS of a whole `parley data validate` process (imports included). Prints a
Markdown table; a project that fails to load stops the run with its error.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

from parley.data.importer import TrainingDataImporter
from parley.data.validation import validate_project

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = ["hwu64", "banking77", "snips", "hwu64-small", "banking77-small", "snips-small"]


def project_paths(name: str) -> tuple[Path, Path, list[Path]]:
    root = SHARED / name if (SHARED / name).is_dir() else SHARED / "bots" / name
    return root / "domain.yml", root / "config.yml", [root / "data"]


# Runs `parley ...` in a fresh process and prints its peak RSS (kB) last on stderr. VmHWM,
# not ru_maxrss: Linux carries ru_maxrss over from the parent through fork and exec.
_CLI_WITH_RSS = (
    "import re, sys\n"
    "from parley.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "status = open('/proc/self/status').read()\n"
    "print(re.search(r'VmHWM:\\s+(\\d+)', status).group(1), file=sys.stderr)\n"
)


def read_all(domain: Path, config: Path, data: list[Path]) -> TrainingDataImporter:
    importer = TrainingDataImporter(domain, config, data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        importer.load_all()
    return importer


def measure(name: str) -> dict[str, object]:
    domain, config, data = project_paths(name)
    start = time.perf_counter()
    importer = read_all(domain, config, data)
    read_s = time.perf_counter() - start
    tracemalloc.start()  # a second read, for memory only: tracing slows it down
    read_all(domain, config, data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    start = time.perf_counter()
    report = validate_project(importer)
    validate_s = time.perf_counter() - start
    argv = ["data", "validate", "-d", str(domain), "-c", str(config), "--data", *map(str, data)]
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _CLI_WITH_RSS, *argv],
        capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    cli_s = time.perf_counter() - start
    rss_kb = int(done.stderr.strip().splitlines()[-1])
    return {
        "project": name, "examples": len(importer.nlu_data.examples),
        "read s": read_s, "validate s": validate_s, "read peak MB": peak / 2**20,
        "CLI wall s": cli_s, "CLI peak RSS MB": rss_kb / 1024,
        "errors": len(report.errors), "warnings": len(report.warnings),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="projects (default: all)")
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"no shared data at {SHARED}", file=sys.stderr)
        return 1
    bots = sorted(p.name for p in (SHARED / "bots").iterdir() if p.is_dir() and p.name != "carbon-bot")
    rows = [measure(name) for name in (args.names or SETS + bots)]
    headers = list(rows[0])
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" for _ in headers) + "|")
    for row in rows:
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
