"""Whole-bot training and test stories, beside Rasa 3.6's figures.

    python benchmarks/core.py [--bots NAME ...]
                              [--configs own|no-ted|with-unexpected|NAME|PATH ...]
                              [--timeout S] [--json PATH]

For each bot under ../shared/data/bots that has test stories (tests/, test/ or
test_stories/) and each config: ``parley train`` in a fresh process and a fresh folder (a
cold training cache) — wall time of the whole process, its CPU time and that of the
processes it forks to train in, peak memory (VmHWM, or more where the sampled sum of the
process and those children's own memory was larger), and the time
of each policy from the training log — then ``parley test core``'s function on the test
stories in a second process: stories passed (``user:`` texts parsed by the model) and
action accuracy (``NLU s`` is the pipeline's share of the training, all its nodes). Beside
them Rasa 3.6's figures from ../shared/anchors.md, the speed-up (Rasa's wall time /
Parley's) and Rasa's peak memory over Parley's.

Configs: ``own`` is the bot's portable config (config-portable.yml where there is one,
else config.yml), as Rasa was run; ``no-ted`` is that config without TEDPolicy and
UnexpecTEDIntentPolicy (MemoizationPolicy and RulePolicy added where missing), the
pipeline unchanged; ``with-unexpected`` is that config with UnexpecTEDIntentPolicy added
before TEDPolicy as Rasa 3.6's default config sets it (``max_history: 5``, ``epochs: 100``);
a name is ``benchmarks/configs/<name>.yml``; anything else is a path.
A config that fails (e.g. a policy Rasa 3 removed) is reported as failed and
the others go on.

Prints one Markdown row per run as it finishes, then the whole table; ``--json`` keeps
every figure.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BOTS = REPO.parent / "shared" / "data" / "bots"
CONFIGS = Path(__file__).resolve().parent / "configs"
TEST_FOLDERS = ("tests", "test", "test_stories")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _tree_memory import TreePeak  # noqa: E402

CACHE_DIR_ENV = "PARLEY_CACHE_DIR"  # parley.engine.cache's; this parent imports no parley
WITHOUT_TED = ("TEDPolicy", "UnexpecTEDIntentPolicy")
DERIVED = ("no-ted", "with-unexpected")  # configs made from the bot's own
UNEXPECTED = {"name": "UnexpecTEDIntentPolicy", "max_history": 5, "epochs": 100}
# A line of the training log: "  core_1_RulePolicy: trained in 0.10s (…)".
NODE_LINE = re.compile(r"^\s+(nlu|core)_\d+_(\w+): (?:trained|\w+) in ([\d.]+)s")

# Rasa 3.6.21, `rasa train` with the portable config, then `rasa test core`
# (../shared/anchors.md): train wall s, train peak MB, stories passed, stories, action acc.
RASA: dict[str, tuple[float, float, int, int, float | None]] = {
    "rasa-init-moodbot": (50.8, 1130, 7, 7, None),
    "rasa-example-formbot": (139.1, 1603, 3, 3, None),
    "financial-demo": (474.6, 2033, 48, 48, None),
    "helpdesk-assistant": (203.7, 1681, 12, 12, None),
    "rasa-example-e2ebot": (408.0, 1860, 2, 4, 0.917),
}

COLUMNS = ["bot", "config", "train wall s", "train CPU s", "train peak MB", "NLU s", "policies (s)",
           "stories passed",
           "action acc", "Rasa train s", "Rasa peak MB", "Rasa passed", "speed-up ×",
           "memory ÷"]
DASH = "—"


# --- the two child processes -----------------------------------------------------------
def _peak_mb() -> float:
    """This process's own peak resident memory (the processes it forks to train in are
    sampled with it by the parent: see _spawn)."""
    status = Path("/proc/self/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+)", status)
    return int(match.group(1)) / 1024 if match else float("nan")


def _child_train(argv: list[str]) -> int:
    """``parley train`` itself, in this process; then its peak memory."""
    from parley.cli.main import main

    code = main(["train", *argv])
    sys.stdout.flush()
    # (with the processes it forked to train in, all reaped by now)
    cpu_s = sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))
    print("RESULT " + json.dumps({"code": code, "peak_mb": _peak_mb(), "cpu_s": cpu_s}))
    gc.freeze()  # the process ends here, as `parley train` does (parley.cli.main)
    return 0


def _child_test(payload: dict[str, Any]) -> int:
    import warnings

    from parley.errors import ParleyError
    from parley.evaluation.run import run_core_test

    warnings.simplefilter("ignore")
    try:
        run = run_core_test(payload["model"], [payload["stories"]], payload["out"], plot=False)
    except ParleyError as exc:
        print(f"ERROR {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    report = run.core
    assert report is not None
    print("RESULT " + json.dumps({
        "passed": len(report.passed), "stories": report.n_stories,
        "action_accuracy": report.action_accuracy, "parsed": report.parsed,
        "failed": [r.name for r in report.failed], "peak_mb": _peak_mb()}))
    return 0


class RunFailed(Exception):
    pass


def _spawn(args: list[str], cwd: Path, timeout: float | None) -> tuple[float, str, dict[str, Any]]:
    """Run this script as a child; its whole-process wall time, its output and its RESULT."""
    # A cold cache in the run's own folder: PARLEY_CACHE_DIR would hand one run another's.
    env = {key: value for key, value in os.environ.items() if key != CACHE_DIR_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env.setdefault("PARLEY_QUIET", "1")  # no progress bars in captured output
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", *args],
                               cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    # (the sum of the process's memory and its forked children's own — a policy trained in
    # a process of its own, a training's second lane — sampled: see _tree_memory.py)
    with TreePeak(process.pid) as tree:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise RunFailed(f"{args[0]} took longer than {timeout:g} s") from None
    done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    wall = time.perf_counter() - start
    result = next((json.loads(line.removeprefix("RESULT ")) for line in done.stdout.splitlines()
                   if line.startswith("RESULT ")), None)
    if result is not None and "peak_mb" in result:
        result["peak_mb"] = max(result["peak_mb"], tree.mb)
    if result is None or result.get("code", 0) != 0:
        lines = [line.removeprefix("ERROR ") for line in done.stderr.strip().splitlines()]
        errors = [line for line in lines if line.startswith("error:")] or lines[-1:] or \
            [f"exit code {done.returncode}"]
        raise RunFailed(f"{args[0]}: {errors[-1].removeprefix('error: ')}")
    return wall, done.stdout, result


# --- one run ---------------------------------------------------------------------------
def own_config(bot: Path) -> Path:
    portable = bot / "config-portable.yml"
    return portable if portable.is_file() else bot / "config.yml"


def test_folder(bot: Path) -> Path | None:
    return next((bot / name for name in TEST_FOLDERS if (bot / name).is_dir()), None)


def resolve_config(value: str) -> str:
    """A label the run understands: own, no-ted, with-unexpected, or a config file's path."""
    if value in ("own", *DERIVED):
        return value
    named = CONFIGS / f"{value}.yml"
    if named.is_file() and not Path(value).is_file():
        return str(named)
    if Path(value).is_file():
        return str(Path(value).resolve())
    available = ", ".join(["own", *DERIVED, *sorted(p.stem for p in CONFIGS.glob("*.yml"))])
    raise SystemExit(f"unknown config '{value}': not a file and not in {CONFIGS} "
                     f"(available: {available}).")


def config_for(bot: Path, choice: str, workdir: Path) -> Path:
    """The config file to train ``bot`` with."""
    import yaml

    if choice == "own":
        return own_config(bot)
    if choice not in DERIVED:
        return Path(choice)
    config = yaml.safe_load(own_config(bot).read_text(encoding="utf-8")) or {}
    policies = list(config.get("policies") or [])
    if choice == "with-unexpected":
        names = [p.get("name") for p in policies]
        if "UnexpecTEDIntentPolicy" not in names:
            at = names.index("TEDPolicy") if "TEDPolicy" in names else len(policies)
            policies.insert(at, dict(UNEXPECTED))
    else:
        policies = [p for p in policies if p.get("name") not in WITHOUT_TED]
        names = [p.get("name") for p in policies]
        if not set(names) & {"MemoizationPolicy", "AugmentedMemoizationPolicy"}:
            policies.insert(0, {"name": "MemoizationPolicy"})
        if "RulePolicy" not in names:
            policies.append({"name": "RulePolicy"})
    config["policies"] = policies
    target = workdir / f"config-{choice}.yml"
    target.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return target


def policy_times(log: str) -> dict[str, float]:
    """Seconds per policy (and ``NLU`` for the whole pipeline) from the training log."""
    times: dict[str, float] = {}
    for line in log.splitlines():
        match = NODE_LINE.match(line)
        if match:
            part, name, seconds = match.groups()
            key = "NLU" if part == "nlu" else name
            times[key] = times.get(key, 0.0) + float(seconds)
    return times


def run_one(bot: Path, choice: str, timeout: float | None) -> dict[str, Any]:
    label = choice if choice in ("own", *DERIVED) else Path(choice).stem
    row: dict[str, Any] = {"bot": bot.name, "config": label}
    rasa = RASA.get(bot.name)
    if rasa:
        row["rasa"] = dict(zip(("train_wall_s", "train_peak_mb", "passed", "stories",
                                "action_accuracy"), rasa, strict=True))
    tests = test_folder(bot)
    if tests is None:
        row["error"] = f"{bot} has no test stories"
        return row
    with tempfile.TemporaryDirectory(prefix="parley-core-bench-") as tmp:
        work = Path(tmp)
        try:
            config = config_for(bot, choice, work)
            row["config_path"] = str(config if choice not in DERIVED else own_config(bot))
            wall, log, trained = _spawn(
                ["train", "--", "-d", str(bot / "domain.yml"), "-c", str(config), "--data",
                 str(bot / "data"), "--out", str(work / "models"), "--fixed-model-name",
                 "model"], work, timeout)
            row.update(train_wall_s=wall, train_peak_mb=trained["peak_mb"],
                       train_cpu_s=trained["cpu_s"],
                       policy_s=policy_times(log))
            _, _, tested = _spawn(["test", json.dumps(
                {"model": str(work / "models" / "model.tar.gz"), "stories": str(tests),
                 "out": str(work / "results")})], work, timeout)
        except RunFailed as exc:
            row["error"] = str(exc).replace(str(work / f"config-{choice}.yml"),
                                            f"{own_config(bot)} ({choice})")
            return row
    tested.pop("peak_mb")
    row.update(tested)
    if rasa:
        row["speedup"] = rasa[0] / row["train_wall_s"]
        row["memory_ratio"] = rasa[1] / row["train_peak_mb"]
    return row


# --- the table -------------------------------------------------------------------------
def _fmt(value: Any, digits: int) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def _times(value: float | None) -> str:
    if value is None:
        return DASH
    return f"{value:.0f}×" if value >= 10 else f"{value:.1f}×"


def table_row(row: dict[str, Any]) -> str:
    rasa = row.get("rasa") or {}
    rasa_cells = [_fmt(rasa.get("train_wall_s"), 0), _fmt(rasa.get("train_peak_mb"), 0),
                  f"{rasa['passed']}/{rasa['stories']}" if rasa else DASH]
    if "error" in row:
        message = str(row["error"]).replace("|", "\\|").replace("\n", " ")
        if len(message) > 200:
            message = message[:197] + "..."
        cells = [row["bot"], row["config"], f"**failed**: {message}", *[""] * 6, *rasa_cells,
                 DASH, DASH]
    else:
        policies = ", ".join(f"{name} {seconds:.2f}" for name, seconds
                             in row["policy_s"].items() if name != "NLU") or DASH
        cells = [row["bot"], row["config"], _fmt(row["train_wall_s"], 1),
                 _fmt(row.get("train_cpu_s"), 1),
                 _fmt(row["train_peak_mb"], 0), _fmt(row["policy_s"].get("NLU"), 1), policies,
                 f"{row['passed']}/{row['stories']}", _fmt(row["action_accuracy"], 3),
                 *rasa_cells, _times(row.get("speedup")), _times(row.get("memory_ratio"))]
    return "| " + " | ".join(cells) + " |"


def table_header() -> list[str]:
    align = ["---" if i < 2 else "---:" for i in range(len(COLUMNS))]
    return ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(align) + "|"]


def bots_with_tests() -> list[str]:
    if not BOTS.is_dir():
        return []
    return sorted(p.name for p in BOTS.iterdir() if p.is_dir() and test_folder(p) is not None)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--child"]:
        if args[1] == "train":
            return _child_train(args[3:])  # after "--"
        return _child_test(json.loads(args[2]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bots", nargs="+", default=None, metavar="NAME",
                        help="bots under ../shared/data/bots (default: every bot with test "
                             "stories)")
    parser.add_argument("--configs", nargs="+", default=["own"], metavar="CONFIG",
                        help="own (the bot's portable config), no-ted (the same without TED), "
                             "with-unexpected (with UnexpecTEDIntentPolicy), "
                             "a name in benchmarks/configs/, or a path (default: own)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="give up on a training or test after this many seconds")
    parser.add_argument("--json", type=Path, default=None, help="write every figure here")
    options = parser.parse_args(args)
    if not BOTS.is_dir():
        print(f"no bots: {BOTS} is not there (../shared beside the clone)", file=sys.stderr)
        return 1
    names = options.bots or bots_with_tests()
    unknown = [name for name in names if not (BOTS / name).is_dir()]
    if unknown:
        parser.error(f"unknown bot(s): {', '.join(unknown)}; available: "
                     f"{', '.join(bots_with_tests())}")
    choices = [resolve_config(value) for value in options.configs]
    print(f"python {platform.python_version()}, {os.cpu_count()} cores; Rasa 3.6.21's "
          "figures from ../shared/anchors.md\n")
    print("\n".join(table_header()), flush=True)
    rows = []
    for name in names:
        for choice in choices:
            row = run_one(BOTS / name, choice, options.timeout)
            rows.append(row)
            print(table_row(row), flush=True)
    if len(rows) > 1:
        print("\n" + "\n".join([*table_header(), *map(table_row, rows)]))
    if options.json:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        options.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
