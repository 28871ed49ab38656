"""Whole-process training, Parley beside Rasa 3.6 itself, in the same minutes.

    python benchmarks/side_by_side.py --rasa VENV [--projects NAME ...] [--rounds N]

``../shared/anchors.md`` holds Rasa's figures from one day's machine; this shared machine's
speed moves by 2–3× from hour to hour, so a speed-up against those figures says as much about
the hour as about the code. This script trains each project with both tools alternately —
Parley, then Rasa, N rounds — each a fresh process in a fresh copy of the project with no cache,
and reports wall time, CPU time and peak RSS of the whole process (start, imports, reading the
data, training, writing the archive) as the anchors were taken.

A project is a bot under ../shared/data/bots (``parley train`` / ``rasa train`` with its
portable config) or an NLU set under ../shared/data (``train nlu`` with its own config). A
config without a pipeline or policies means Rasa's default to Rasa; Parley's side then gets
benchmarks/configs/rasa-default.yml, the same components written out. ``VENV`` is a virtualenv
with Rasa 3.6.21 made by ../shared/tools/rasa_install.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tree_memory import TreePeak  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RASA_DEFAULT = REPO / "benchmarks" / "configs" / "rasa-default.yml"
DEFAULT_PROJECTS = ["rasa-init-moodbot", "rasa-example-formbot", "helpdesk-assistant",
                    "snips-small"]


def project_path(name: str) -> Path:
    for path in (DATA / "bots" / name, DATA / name):
        if (path / "domain.yml").is_file():
            return path
    raise SystemExit(f"no project {name!r} under {DATA} or {DATA / 'bots'}")


def is_bot(project: Path) -> bool:
    return project.parent.name == "bots"


def own_config(project: Path) -> Path:
    portable = project / "config-portable.yml"
    return portable if portable.is_file() else project / "config.yml"


def names_rasa_defaults(config: Path) -> bool:
    """Rasa fills in its default pipeline and policies where the config leaves them out."""
    data = yaml.safe_load(config.read_text()) or {}
    return not data.get("pipeline") or not data.get("policies")


def copy_project(project: Path, config: Path, into: Path) -> Path:
    into.mkdir(parents=True)
    shutil.copy(project / "domain.yml", into / "domain.yml")
    shutil.copytree(project / "data", into / "data")
    shutil.copy(config, into / "config.yml")
    return into


def measure(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, float]:
    """Wall s, CPU s (user + system, the process and what it waited for) and peak memory
    MB: its peak RSS, or more where a process it forked held memory of its own
    (benchmarks/_tree_memory.py)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    stderr_path = cwd / "stderr.log"
    with TreePeak(process.pid) as tree, stderr_path.open("wb") as log:
        assert process.stderr is not None
        shutil.copyfileobj(process.stderr, log)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = stderr_path.read_text(errors="replace").strip().splitlines()[-5:]
        raise SystemExit(f"{' '.join(command[:3])} failed in {cwd}:\n" + "\n".join(tail))
    # (the sampled sum counts a forked lane process's own memory, ru_maxrss does not)
    return wall, usage.ru_utime + usage.ru_stime, max(usage.ru_maxrss / 1024, tree.mb)


def parley_run(project: Path, folder: Path) -> tuple[float, float, float]:
    config = own_config(project)
    if names_rasa_defaults(config):
        config = RASA_DEFAULT
    work = copy_project(project, config, folder / "parley")
    env = {key: value for key, value in os.environ.items() if key != "PARLEY_CACHE_DIR"}
    env["PYTHONPATH"] = str(REPO)
    part = [] if is_bot(project) else ["nlu"]
    return measure([sys.executable, "-m", "parley", "train", "--quiet", "--out", "models",
                    *part], work, env)


def rasa_run(venv: Path, project: Path, folder: Path) -> tuple[float, float, float]:
    work = copy_project(project, own_config(project), folder / "rasa")
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2"}
    part = [] if is_bot(project) else ["nlu"]
    return measure([str(venv / "bin" / "rasa"), "train", *part, "--out", "models"], work, env)


def machine_loop_s() -> float:
    """A pure-Python yardstick of the machine's speed right now: compare it across rows and
    runs (on 2026-12-03 it read 0.34-0.41 s while Rasa's moodbot trained in 87 s, 1.7x its
    anchors.md figure)."""
    start = time.perf_counter()
    total = 0
    for i in range(10**7):
        total += i
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rasa", type=Path, required=True, metavar="VENV")
    parser.add_argument("--projects", nargs="+", default=DEFAULT_PROJECTS, metavar="NAME")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    if not (args.rasa / "bin" / "rasa").is_file():
        raise SystemExit(f"{args.rasa}/bin/rasa not found: make the venv with "
                         "../shared/tools/rasa_install")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d %H:%M')}; Rasa from {args.rasa}\n")
    print("| project | Parley wall s | Rasa wall s | speed-up × | Parley CPU s | Rasa CPU s | "
          "Parley peak MB | Rasa peak MB | memory ÷ | machine loop s |")
    print("|---|---|---|---:|---|---|---:|---:|---:|---|", flush=True)
    for name in args.projects:
        project = project_path(name)
        runs: dict[str, list[tuple[float, float, float]]] = {"parley": [], "rasa": []}
        loops = [machine_loop_s()]
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory(prefix="side-by-side-") as tmp:
                runs["parley"].append(parley_run(project, Path(tmp)))
                runs["rasa"].append(rasa_run(args.rasa, project, Path(tmp)))
            loops.append(machine_loop_s())
        print(table_row(name, runs, loops), flush=True)  # a row as soon as it is measured
    print("\nspeed-up: median Rasa wall ÷ median Parley wall; each round trains Parley, then "
          "Rasa. machine loop: a pure-Python 10^7-addition loop before and after each round.")
    return 0


def table_row(name: str, runs: dict[str, list[tuple[float, float, float]]],
              loops: list[float]) -> str:
    walls = {tool: [run[0] for run in done] for tool, done in runs.items()}
    cpus = {tool: [run[1] for run in done] for tool, done in runs.items()}
    peaks = {tool: max(run[2] for run in done) for tool, done in runs.items()}
    speedup = statistics.median(walls["rasa"]) / statistics.median(walls["parley"])
    cells = [name, _list(walls["parley"]), _list(walls["rasa"]), f"{speedup:.1f}",
             _list(cpus["parley"]), _list(cpus["rasa"]), f"{peaks['parley']:.0f}",
             f"{peaks['rasa']:.0f}", f"{peaks['rasa'] / peaks['parley']:.1f}", _list(loops, 2)]
    return "| " + " | ".join(cells) + " |"


def _list(values: list[float], digits: int = 1) -> str:
    return " / ".join(f"{value:.{digits}f}" for value in values)


if __name__ == "__main__":
    raise SystemExit(main())
