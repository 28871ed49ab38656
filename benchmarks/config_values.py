"""How Parley meets bad config.yml values: caught when the graph is built, later, or not at all.

    python benchmarks/config_values.py --code ../old --code .      # before / after, same values
    python benchmarks/config_values.py --code . --limit 50          # a quick look at one checkout

Two base projects, both made once by `parley init` of the last --code and used for every
checkout, so each one meets the same mutations on the same config ("like for like"): the
starter bot's own config, and DIET + ResponseSelector + CRFEntityExtractor behind the starter's
featurizers (few epochs, so real trainings stay short; only those three are mutated there, the
rest are covered by the starter). For every parameter a component has (names and defaults from
this checkout's registry) `_config_mutations.py` writes bad values with a verdict by Rasa 3.6's
meaning; a seeded sample of --limit of them runs. Each runs `parley train --dry-run`, then a
real `parley train` when the dry run accepted it, then `parley predict hello` when that
trained, each a subprocess (PYTHONPATH=<code>, /work/main/.venv's python or
$PARLEY_BENCH_PYTHON) with a timeout.
Writes benchmarks/results/config_values.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import yaml  # noqa: E402

from _config_mutations import VALID, Mutation, generate  # noqa: E402

# The shared venv when there is one (the checkouts under test install nothing), else this one.
_VENV = Path("/work/main/.venv/bin/python")
PYTHON = os.environ.get("PARLEY_BENCH_PYTHON", str(_VENV if _VENV.exists() else sys.executable))
RESULTS = REPO / "benchmarks" / "results" / "config_values.json"
CLASSES = ["caught at build", "caught at build (no line)", "caught later", "traceback", "hang",
           "accepted: NaN confidences", "accepted: valid", "accepted: doubtful",
           "accepted: invalid"]
BAD = {"traceback", "hang", "accepted: NaN confidences", "accepted: invalid"}
DIET_BASE = {"DIETClassifier": {"epochs": 3}, "CRFEntityExtractor": {"max_iterations": 10},
             "ResponseSelector": {"epochs": 3}}
_LINE = re.compile(r"config\.yml:\d+")
_NAN = re.compile(r"\bnan\b", re.IGNORECASE)


@dataclass
class Step:
    code: int | None  # None: timed out
    out: str


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> Step:
    """One CLI process in its own session, so a hang is killed with all it started."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return Step(proc.returncode, out)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return Step(None, out)


def _crashed(step: Step) -> bool:
    return ("Traceback (most recent call last)" in step.out or step.code == 70
            or "this is a bug in Parley" in step.out)


def _crash_line(out: str) -> str:
    lines = [line for line in out.splitlines() if line.strip()]
    for line in lines:
        if "this is a bug in Parley" in line:
            return line.strip()
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_.]+(Error|Exception|Interrupt|Exit)\b", line):
            return line.strip()
    return lines[-1].strip() if lines else ""


def _error_line(out: str) -> str:
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    for line in lines:
        if _LINE.search(line) or line.startswith("error"):
            return line
    return lines[-1] if lines else ""


def classify(steps: dict[str, Step], verdict: str) -> tuple[str, str, str]:
    """(outcome class, stage, what was said) for one mutation's dry run / train / predict."""
    for stage, step in steps.items():
        if step.code is None:
            return "hang", stage, step.out[-300:].strip()
        if _crashed(step):
            return "traceback", stage, _crash_line(step.out)[:300]
        if stage == "dry run" and "Dry run: code" not in step.out:
            where = "caught at build" if _LINE.search(step.out) else "caught at build (no line)"
            return where, stage, _error_line(step.out)[:300]
        if stage != "dry run" and step.code != 0:
            return "caught later", stage, _error_line(step.out)[:300]
    if "predict" in steps and _NAN.search(steps["predict"].out):
        return "accepted: NaN confidences", "predict", ""
    return f"accepted: {verdict}", "predict", ""


def render(head: dict[str, Any], components: list[tuple[str, dict[str, Any]]],
           n_pipeline: int, mutation: Mutation | None) -> str:
    """config.yml text; the mutated value is written as its YAML snippet, untouched."""
    lines = [f"{key}: {json.dumps(value)}" for key, value in head.items()]
    for index, (name, params) in enumerate(components):
        if index == 0:
            lines.append("pipeline:")
        if index == n_pipeline:
            lines.append("policies:")
        lines.append(f"  - name: {name}")
        for key, value in params.items():
            if not (mutation and mutation.index == index and mutation.key == key):
                lines.append(f"    {key}: {json.dumps(value)}")
        if mutation and mutation.index == index:
            lines.append(f"    {mutation.key}: {mutation.snippet}")
    return "\n".join(lines) + "\n"


def make_bases(code: Path, work: Path) -> dict[str, Any]:
    """The starter project (made by ``code``) and its config parsed, plus the DIET config."""
    project = work / "base"
    env = {**os.environ, "PYTHONPATH": str(code)}
    done = subprocess.run([PYTHON, "-m", "parley.cli.main", "init", "--no-prompt", str(project)],
                          env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"parley init failed:\n{done.stdout}{done.stderr}")
    config = yaml.safe_load((project / "config.yml").read_text())
    head = {k: v for k, v in config.items() if k not in ("pipeline", "policies")}

    def parts(items: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        return [(item["name"], {k: v for k, v in item.items() if k != "name"}) for item in items]

    pipeline, policies = parts(config["pipeline"]), parts(config["policies"])
    featurizers = [c for c in pipeline if "Featurizer" in c[0] or "Tokenizer" in c[0]]
    diet = [*featurizers, ("DIETClassifier", DIET_BASE["DIETClassifier"]),
            ("CRFEntityExtractor", DIET_BASE["CRFEntityExtractor"]),
            ("EntitySynonymMapper", {}), ("ResponseSelector", DIET_BASE["ResponseSelector"]),
            ("FallbackClassifier", {"threshold": 0.3})]
    return {"project": project, "head": head,
            "starter": (pipeline + policies, len(pipeline)),
            "diet": (diet + policies, len(diet))}


def defaults_of(names: set[str]) -> dict[str, dict[str, Any]]:
    from parley import registry

    return {name: registry.get_class(name).default_params() for name in names}


def one(label: str, code: Path, mutation: Mutation, bases: dict[str, Any], work: Path,
        timeout: float) -> dict[str, Any]:
    components, n_pipeline = bases[mutation.base]
    project = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=work))
    try:
        for part in ("domain.yml", "data"):
            source = bases["project"] / part
            (shutil.copytree if source.is_dir() else shutil.copy)(source, project / part)
        (project / "config.yml").write_text(render(bases["head"], components, n_pipeline,
                                                   mutation))
        env = {**os.environ, "PYTHONPATH": str(code), "PARLEY_QUIET": "1", "PARLEY_DEBUG": "1",
               "PARLEY_CACHE_DIR": str(work / f"cache-{label}"), "OMP_NUM_THREADS": "1",
               "PARLEY_TORCH_THREADS": "1", "MKL_NUM_THREADS": "1",
               "OPENBLAS_NUM_THREADS": "1"}
        cli = [PYTHON, "-m", "parley.cli.main"]
        steps: dict[str, Step] = {}
        start = time.perf_counter()
        for stage, args in (("dry run", ["train", "--dry-run"]), ("train", ["train"]),
                            ("predict", ["predict", "hello"])):
            steps[stage] = run(cli + args, project, env, timeout)
            outcome, where, said = classify(steps, mutation.verdict)
            if not outcome.startswith("accepted"):
                break
        return {"outcome": outcome, "stage": where, "said": said,
                "seconds": round(time.perf_counter() - start, 2)}
    finally:
        shutil.rmtree(project, ignore_errors=True)


def table(labels: list[str], results: dict[str, list[dict[str, Any]]]) -> str:
    rows = [f"| outcome | {' | '.join(labels)} |", "|---|" + "---:|" * len(labels)]
    for name in CLASSES:
        cells = []
        for label in labels:
            done = results[label]
            count = sum(r["outcome"] == name for r in done)
            cells.append(f"{count} ({100 * count / max(len(done), 1):.1f}%)")
        rows.append(f"| {name} | {' | '.join(cells)} |")
    rows.append(f"| total | {' | '.join(str(len(results[label])) for label in labels)} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", action="append", type=Path, required=True,
                        help="checkout to test (PYTHONPATH); twice: before, then after")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--limit", type=int, default=200,
                        help="mutations tried, a seeded sample (200: 10-20 min for two "
                             "checkouts on 2 busy cores)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per process")
    parser.add_argument("--jobs", type=int, default=2, help="runs at the same time")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    codes = [c.resolve() for c in args.code]
    labels = ["before", "after"] if len(codes) == 2 else [c.name for c in codes]

    work = Path(tempfile.mkdtemp(prefix="parley-config-values-"))
    try:
        bases = make_bases(codes[-1], work)
        names = {name for base in ("starter", "diet") for name, _ in bases[base][0]}
        mutable = {"starter": names, "diet": set(DIET_BASE)}
        components = {base: bases[base][0] for base in ("starter", "diet")}
        mutations = generate(components, defaults_of(names), mutable, args.seed, args.limit)
        results: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
        tasks = [(i, label, code) for i in range(len(mutations))
                 for label, code in zip(labels, codes, strict=True)]  # interleaved: both advance together
        lock, started = threading.Lock(), time.perf_counter()
        slots: dict[str, list[Any]] = {label: [None] * len(mutations) for label in labels}

        def work_one(task: tuple[int, str, Path]) -> None:
            i, label, code = task
            slots[label][i] = one(label, code, mutations[i], bases, work, args.timeout)
            with lock:
                done = sum(x is not None for s in slots.values() for x in s)
                if done % 20 == 0 or done == len(tasks):
                    print(f"  {done}/{len(tasks)} runs, {time.perf_counter() - started:.0f}s",
                          file=sys.stderr, flush=True)

        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(work_one, tasks))
        for label in labels:
            results[label] = [{**m.to_json(), **r} for m, r in zip(mutations, slots[label], strict=True)]
        report(labels, codes, results, args, time.perf_counter() - started)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(labels: list[str], codes: list[Path], results: dict[str, list[dict[str, Any]]],
           args: argparse.Namespace, seconds: float) -> None:
    text = table(labels, results)
    print(text)
    last = labels[-1]
    refused = [r for r in results[last] if r["verdict"] == VALID
               and not r["outcome"].startswith("accepted")]
    print(f"\n{last}: {len(refused)} values Rasa gives a meaning to were refused")
    for r in refused:
        print(f"  {r['base']}:{r['component']}.{r['key']}: {r['snippet']} -> {r['outcome']}: "
              f"{r['said'][:160]}")
    bad = [r for r in results[last] if r["outcome"] in BAD]
    print(f"\n{last}: {len(bad)} tracebacks, hangs, NaN outputs and invalid values accepted")
    for r in bad:
        print(f"  {r['outcome']} at {r['stage']}: {r['base']}:{r['component']}.{r['key']}: "
              f"{r['snippet']} ({r['what']}) {r['said'][:200]}")
    commits = {}
    for label, code in zip(labels, codes, strict=True):
        got = subprocess.run(["git", "-C", str(code), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=False)
        commits[label] = {"code": str(code), "commit": got.stdout.strip()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "seed": args.seed, "limit": args.limit, "timeout": args.timeout, "jobs": args.jobs,
        "seconds": round(seconds), "codes": commits, "table": text,
        "counts": {label: {name: sum(r["outcome"] == name for r in results[label])
                           for name in CLASSES} for label in labels},
        "results": results}, indent=1) + "\n")
    print(f"\nwrote {args.out} ({seconds:.0f}s)")


if __name__ == "__main__":
    main()
