"""NLU accuracy and speed on the benchmark sets, beside Rasa 3.6's figures.

    python benchmarks/nlu.py [--datasets NAME ...] [--configs own|NAME|PATH ...]
                             [--seed N | --seeds N ...] [--repeat N] [--json PATH] [--merge]

For each dataset (a Rasa project under ../shared/data: config.yml, domain.yml, data/,
test/test_nlu.yml) and each config: train with ``parley.model_training.train_nlu`` in a
fresh process (wall time of the whole process, peak RSS from VmHWM, cold training cache),
then load the archive in a second process and score it on test/test_nlu.yml with
``parley.nlu.evaluation.evaluate_nlu`` (parse latency measured there, after a warm-up).
``--repeat N`` trains N times, each cold, and reports the median time (every time is in the
JSON): on a shared 2-core machine one training's wall time varies by ±10–15%. Training is
deterministic, so the N models are the same; the last is scored. ``--seeds A B …`` trains
once per seed and reports the mean of each score and the median time (one row, config
``<config> (mean of N seeds)``; each seed's figures are printed under the table and kept in
the JSON): Rasa's DIET is not seeded, its figures move by ±2 points from run to run, and one
seed of Parley's is one draw of the same kind.

Configs: ``own`` is the dataset's config.yml (Rasa's default pipeline); a name is
``benchmarks/configs/<name>.yml``; anything else is a path. A config without
``assistant_id`` / ``language`` gets the dataset's. A run that fails (e.g. a component
Parley does not have yet) is reported as failed and the others go on.

Prints one Markdown row per run as it finishes; writes all runs to --json and the table
to the .md file beside it (with --merge, the runs already there stay unless run again).
Rasa's figures: ../shared/anchors.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = REPO.parent / "shared" / "data"
CONFIGS = Path(__file__).resolve().parent / "configs"
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "nlu.json"
DATASETS = ["snips-small", "banking77-small", "hwu64-small", "snips", "banking77", "hwu64"]
TEST_FILE = Path("test") / "test_nlu.yml"
WARMUP_PARSES = 5
HELD_OUT_SEED = 0  # which intents --held-out-intents leaves out
CACHE_DIR_ENV = "PARLEY_CACHE_DIR"  # parley.engine.cache's; this parent imports no parley

# Rasa 3.6.21, `rasa train nlu` with each project's own config (../shared/anchors.md):
# train wall s, intent accuracy, entity F1 (None: the set has no entities).
RASA: dict[str, tuple[float, float, float | None]] = {
    "snips-small": (116.0, 0.939, 0.40),
    "banking77-small": (817.0, 0.733, None),
    "hwu64-small": (952.0, 0.663, 0.516),
}

# "intent acc" is the intent the parse returns (nlu_fallback is wrong), as Rasa's figures
# beside it were scored; "ranking acc" undoes nlu_fallback (the classifier's own top intent),
# a different measure that reads higher. ECE: expected calibration error of that intent's
# confidence. With --held-out-intents, "intent acc" is over the in-scope test messages and
# "OOS recall" the share of the held-out intents' messages answered nlu_fallback.
COLUMNS = ["dataset", "config", "train wall s", "train peak MB", "model MB", "intent acc",
           "macro-F1", "entity F1", "parse p50 ms", "parse p99 ms", "Rasa train s", "Rasa acc",
           "Rasa entity F1", "speed-up ×", "ranking acc (fallback undone)", "fallback %", "ECE",
           "OOS recall"]
N_RASA_COLUMNS = 4  # the Rasa figures and the speed-up, before the calibration columns
DASH = "—"


# --- the two child processes -----------------------------------------------------------
def _peak_mb() -> float:
    """This process's peak resident memory, plus the private memory of the process a
    training's second lane ran in, if one did (parley/ml/lane_process.py): its pages shared
    with this process are in this one's figure already."""
    status = Path("/proc/self/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+)", status)
    lanes = sys.modules.get("parley.ml.lane_process")
    extra_kb = lanes.peak_private_kb if lanes is not None else 0
    return (int(match.group(1)) + extra_kb) / 1024 if match else float("nan")


def _child(kind: str, payload: dict[str, Any]) -> int:
    """Runs in the subprocess: train or evaluate, then print one RESULT line of JSON."""
    import warnings

    from parley.errors import DataError, ParleyError

    warnings.simplefilter("ignore")
    try:
        result = _child_train(payload) if kind == "train" else _child_evaluate(payload)
    except DataError as exc:
        print(f"ERROR {exc.report()}", file=sys.stderr)
        return 1
    except ParleyError as exc:
        print(f"ERROR {exc}", file=sys.stderr)
        return 1
    result["peak_mb"] = _peak_mb()
    print("RESULT " + json.dumps(result))
    if kind == "train":  # the process ends here, as `parley train` does (parley.cli.main)
        gc.freeze()
    return 0


def _child_train(payload: dict[str, Any]) -> dict[str, Any]:
    from parley.model_training import train_nlu

    if payload.get("held_out"):
        payload = {**payload, **_without_intents(payload, set(payload["held_out"]))}

    model = train_nlu(payload["config"], payload["nlu"], payload["out"], fixed_model_name="model",
                      additional_arguments=payload.get("extra") or None, domain=payload["domain"])
    return {"model": model}


def _without_intents(payload: dict[str, Any], held_out: set[str]) -> dict[str, str]:
    """A copy of the project's NLU data and domain without the held-out intents."""
    import yaml

    from parley.data.importer import TrainingDataImporter
    from parley.data.training_data import TrainingData
    from parley.data.formats.nlu_yaml import write_nlu_file

    data = TrainingDataImporter(None, None, [payload["nlu"]]).nlu_data
    kept = TrainingData([m for m in data.examples if m.base_intent not in held_out])
    target = Path(payload["out"]).parent / "held-out-project"
    target.mkdir(parents=True, exist_ok=True)
    write_nlu_file(kept, target / "nlu.yml")
    domain = yaml.safe_load(Path(payload["domain"]).read_text(encoding="utf-8"))
    domain["intents"] = [i for i in domain.get("intents", [])
                         if (next(iter(i)) if isinstance(i, dict) else i) not in held_out]
    (target / "domain.yml").write_text(yaml.safe_dump(domain, sort_keys=False), encoding="utf-8")
    return {"nlu": str(target / "nlu.yml"), "domain": str(target / "domain.yml")}


def _child_evaluate(payload: dict[str, Any]) -> dict[str, Any]:
    from parley.data.importer import TrainingDataImporter
    from parley.data.training_data import TrainingData
    from parley.nlu.evaluation import FALLBACK_INTENT, evaluate_nlu
    from parley.serving.agent import load

    start = time.perf_counter()
    agent = load(payload["model"])
    load_s = time.perf_counter() - start
    data = TrainingDataImporter(None, None, [payload["test"]]).nlu_data
    held_out = set(payload.get("held_out") or [])
    unseen = [m for m in data.examples if m.base_intent in held_out]
    data = TrainingData([m for m in data.examples if m.base_intent not in held_out])
    report = evaluate_nlu(agent, data, warmup=WARMUP_PARSES)
    result = {
        "load_s": load_s, "test_messages": report.n_messages,
        "intent_accuracy": report.intent_accuracy, "intent_macro_f1": report.intent_macro_f1,
        "entity_precision": report.entities.precision, "entity_recall": report.entities.recall,
        "entity_f1": report.entity_f1, "response_accuracy": report.response_accuracy,
        "parse_p50_ms": report.parse_p50_ms, "parse_p99_ms": report.parse_p99_ms,
        "intent_ranking_accuracy": report.ranking_accuracy,
        "fallback_rate": report.fallback_rate,
        "ece": report.expected_calibration_error,
        "reliability": report.calibration.as_dict() if report.calibration else None,
    }
    if unseen:
        answered = [agent.parse(m.text)["intent"]["name"] for m in unseen]
        result["oos_messages"] = len(unseen)
        result["oos_recall"] = sum(a == FALLBACK_INTENT for a in answered) / len(unseen)
    if payload.get("plot") and report.calibration is not None:
        from parley.nlu.plots import reliability_png

        reliability_png(report.calibration, Path(payload["plot"]), payload.get("title", ""))
    return result


class RunFailed(Exception):
    pass


def _spawn(kind: str, payload: dict[str, Any], cwd: Path,
           timeout: float | None) -> tuple[float, dict[str, Any]]:
    """Run a child; its whole-process wall time and its RESULT."""
    # Each run trains cold, in its own folder: a shared cache (PARLEY_CACHE_DIR) would
    # hand later runs what earlier ones trained.
    env = {key: value for key, value in os.environ.items() if key != CACHE_DIR_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", kind,
                               json.dumps(payload)], cwd=cwd, env=env, capture_output=True,
                              text=True, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RunFailed(f"{kind} took longer than {timeout:g} s") from None
    wall = time.perf_counter() - start
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return wall, json.loads(line.removeprefix("RESULT "))
    errors = [line.removeprefix("ERROR ") for line in done.stderr.splitlines()
              if line.startswith("ERROR ")]
    tail = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
    raise RunFailed(f"{kind}: {(errors or tail)[-1]}")


# --- one run ---------------------------------------------------------------------------
def resolve_config(value: str) -> tuple[str, Path | None]:
    """(label, path); path None means the dataset's own config.yml."""
    if value == "own":
        return "own", None
    named = CONFIGS / f"{value}.yml"
    if named.is_file() and not Path(value).is_file():
        return value, named
    path = Path(value)
    if path.is_file():
        return path.stem, path.resolve()
    available = ", ".join(["own", *sorted(p.stem for p in CONFIGS.glob("*.yml"))])
    raise SystemExit(f"unknown config '{value}': not a file and not in {CONFIGS} "
                     f"(available: {available}).")


def config_for(dataset: Path, config: Path | None, workdir: Path) -> Path:
    """The config to train with: the dataset's own, or ``config`` with the dataset's
    assistant_id / language where it sets none."""
    import yaml

    own = dataset / "config.yml"
    if config is None:
        return own
    text = config.read_text(encoding="utf-8")
    ours = yaml.safe_load(text) or {}
    theirs = yaml.safe_load(own.read_text(encoding="utf-8")) if own.is_file() else {}
    extra = {key: theirs[key] for key in ("assistant_id", "language")
             if key not in ours and (theirs or {}).get(key) is not None}
    if not extra:
        return config
    # Appended, so that line numbers in error messages are those of the original file.
    target = workdir / "config.yml"
    target.write_text(text + ("" if text.endswith("\n") else "\n")
                      + yaml.safe_dump(extra, sort_keys=False), encoding="utf-8")
    return target


def held_out_intents(dataset: Path, fraction: float, seed: int = HELD_OUT_SEED) -> list[str]:
    """``fraction`` of the dataset's intents (its domain's, sorted), drawn with a fixed
    seed: the same split for every config and every run."""
    import random

    import yaml

    domain = yaml.safe_load((dataset / "domain.yml").read_text(encoding="utf-8")) or {}
    intents = sorted(next(iter(i)) if isinstance(i, dict) else str(i)
                     for i in domain.get("intents", []))
    count = round(fraction * len(intents))
    return sorted(random.Random(seed).sample(intents, count))


def run_one(dataset: Path, label: str, config: Path | None, seed: int | None,
            timeout: float | None, repeat: int = 1, held_out_fraction: float = 0.0,
            settings: dict[str, Any] | None = None,
            plots: Path | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"dataset": dataset.name, "config": label,
                           "config_path": str(config or dataset / "config.yml")}
    rasa = None if held_out_fraction else RASA.get(dataset.name)  # Rasa trained on all intents
    if rasa:
        row["rasa"] = {"train_wall_s": rasa[0], "intent_accuracy": rasa[1], "entity_f1": rasa[2]}
    missing = [p for p in ("domain.yml", "data", str(TEST_FILE)) if not (dataset / p).exists()]
    if missing or (config is None and not (dataset / "config.yml").is_file()):
        row["error"] = f"{dataset} lacks {', '.join(missing or ['config.yml'])}"
        return row
    with tempfile.TemporaryDirectory(prefix="parley-nlu-bench-") as tmp:
        work = Path(tmp)
        extra = {"random_seed": seed, "random_state": seed} if seed is not None else {}
        extra.update(settings or {})
        used = config_for(dataset, config, work)
        held_out = held_out_intents(dataset, held_out_fraction) if held_out_fraction else []
        if held_out:
            row["held_out_intents"] = held_out
        payload = {"config": str(used), "nlu": str(dataset / "data"),
                   "domain": str(dataset / "domain.yml"), "out": str(work / "models"),
                   "extra": extra or None, "held_out": held_out}
        try:
            walls, peaks = [], []
            for attempt in range(repeat):  # each in its own folder: a cold training cache
                here = work / f"run{attempt}"
                here.mkdir()
                wall, trained = _spawn("train", {**payload, "out": str(here / "models")}, here,
                                       timeout)
                walls.append(wall)
                peaks.append(trained["peak_mb"])
            model = Path(trained["model"])
            row.update(train_wall_s=statistics.median(walls), train_peak_mb=max(peaks),
                       model_mb=model.stat().st_size / 2**20)
            if repeat > 1:
                row["train_wall_runs"] = walls
            plot = None
            if plots is not None:
                plots.mkdir(parents=True, exist_ok=True)
                plot = str(plots / f"reliability-{dataset.name}-{_slug(label)}.png")
                row["reliability_png"] = plot
            _, scored = _spawn("evaluate", {"model": str(model), "test": str(dataset / TEST_FILE),
                                            "held_out": held_out, "plot": plot,
                                            "title": f"{dataset.name} / {label}"},
                               work, timeout)
        except RunFailed as exc:  # name the user's config file, not our copy of it
            row["error"] = str(exc).replace(str(used), row["config_path"])
            return row
    scored["eval_peak_mb"] = scored.pop("peak_mb")
    row.update(scored)
    if rasa:
        row["speedup"] = rasa[0] / row["train_wall_s"]
    return row


def combine_seeds(rows: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """One row for the runs of one dataset and config under several seeds: each score's
    mean, the median time and latencies, the largest peak; each seed's figures kept."""
    failed = [row for row in rows if "error" in row]
    label = f"{rows[0]['config']} (mean of {len(seeds)} seeds)"
    if failed:
        return {**failed[0], "config": label, "seeds": seeds}
    combined = {**rows[-1], "config": label, "seeds": seeds}
    combined.pop("train_wall_runs", None)
    for key in ("intent_accuracy", "intent_macro_f1", "entity_precision", "entity_recall",
                "entity_f1", "response_accuracy", "model_mb", "intent_ranking_accuracy",
                "fallback_rate", "ece", "oos_recall"):
        values = [row.get(key) for row in rows]
        combined[key] = None if None in values else statistics.fmean(values)
    for key in ("train_wall_s", "load_s", "parse_p50_ms", "parse_p99_ms"):
        combined[key] = statistics.median(row[key] for row in rows)
    for key in ("train_peak_mb", "eval_peak_mb"):
        combined[key] = max(row[key] for row in rows)
    if combined.get("rasa"):
        combined["speedup"] = combined["rasa"]["train_wall_s"] / combined["train_wall_s"]
    combined["per_seed"] = [{"seed": seed, **{key: row.get(key) for key in (
        "intent_accuracy", "intent_macro_f1", "entity_f1", "train_wall_s",
        "intent_ranking_accuracy", "ece", "oos_recall")}}
        for seed, row in zip(seeds, rows, strict=True)]
    return combined


def seed_lines(row: dict[str, Any]) -> list[str]:
    """Each seed's scores of a combined row, a line each."""
    return [f"  {row['dataset']} / {row['config']}, seed {one['seed']}: intent acc "
            f"{_fmt(one['intent_accuracy'], 3)}, macro-F1 {_fmt(one['intent_macro_f1'], 3)}, "
            f"entity F1 {_fmt(one['entity_f1'], 3)}, train {_fmt(one['train_wall_s'], 2)} s, "
            f"ranking acc {_fmt(one.get('intent_ranking_accuracy'), 3)}, "
            f"ECE {_fmt(one.get('ece'), 3)}, OOS recall {_fmt(one.get('oos_recall'), 3)}"
            for one in row.get("per_seed", [])]


# --- the table -------------------------------------------------------------------------
def _fmt(value: Any, digits: int) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def _percent(value: float | None) -> str:
    return DASH if value is None else f"{100 * value:.1f}"


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=_-]+", "-", label).strip("-")


def _setting(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` of --set, the value read as YAML (``0`` an int, ``null`` None)."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got '{text}'")
    return key, yaml.safe_load(value)


def _speedup(value: float | None) -> str:
    if value is None:
        return DASH
    return f"{value:.0f}×" if value >= 10 else f"{value:.2f}×"


def table_row(row: dict[str, Any]) -> str:
    rasa = row.get("rasa") or {}
    rasa_cells = [_fmt(rasa.get("train_wall_s"), 0), _fmt(rasa.get("intent_accuracy"), 3),
                  _fmt(rasa.get("entity_f1"), 3)]
    if "error" in row:
        message = str(row["error"]).replace("|", "\\|").replace("\n", " ")
        if len(message) > 160:
            message = message[:157] + "..."
        cells = [row["dataset"], row["config"], f"**failed**: {message}", *[""] * 7,
                 *rasa_cells, DASH, *[""] * (len(COLUMNS) - 10 - N_RASA_COLUMNS)]
    else:
        speedup = row.get("speedup")
        cells = [row["dataset"], row["config"], _fmt(row["train_wall_s"], 2),
                 _fmt(row["train_peak_mb"], 0), _fmt(row["model_mb"], 2),
                 _fmt(row["intent_accuracy"], 3), _fmt(row["intent_macro_f1"], 3),
                 _fmt(row["entity_f1"], 3), _fmt(row["parse_p50_ms"], 2),
                 _fmt(row["parse_p99_ms"], 2), *rasa_cells,
                 _speedup(speedup), _fmt(row.get("intent_ranking_accuracy"), 3),
                 _percent(row.get("fallback_rate")), _fmt(row.get("ece"), 3),
                 _fmt(row.get("oos_recall"), 3)]
    return "| " + " | ".join(cells) + " |"


def table_header() -> list[str]:
    align = ["---" if i < 2 else "---:" for i in range(len(COLUMNS))]
    return ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(align) + "|"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=DATASETS, metavar="NAME")
    parser.add_argument("--configs", nargs="+", default=["own"], metavar="CONFIG",
                        help="own (each dataset's config.yml), a name in benchmarks/configs/, "
                             "or a path (default: own)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON,
                        help="where to write the runs (the table goes beside it as .md)")
    parser.add_argument("--seed", type=int, default=None,
                        help="random_seed / random_state for every component that takes one")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, metavar="N",
                        help="train once per seed; report each score's mean and the median "
                             "time (each seed's figures under the table and in the JSON)")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="train N times and report the median time (default: 1)")
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT,
                        help="folder holding the datasets (default: ../shared/data)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="give up on a training or evaluation after this many seconds")
    parser.add_argument("--merge", action="store_true",
                        help="keep the runs already in --json; a new run replaces the one of "
                             "the same dataset and config")
    parser.add_argument("--held-out-intents", type=float, default=0.0, metavar="FRACTION",
                        help="out-of-scope mode: leave this share of the intents (drawn with a "
                             "fixed seed) out of training, score the rest as returned and count "
                             "their test messages answered nlu_fallback (OOS recall)")
    parser.add_argument("--set", type=_setting, action="append", default=[], metavar="KEY=VALUE",
                        help="a parameter for every component that takes it (e.g. "
                             "calibration_folds=0); the config label shows it")
    parser.add_argument("--plots", type=Path, default=None, metavar="DIR",
                        help="write a reliability diagram (PNG) per run into DIR")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "PAYLOAD"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child[0], json.loads(args.child[1]))
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.seeds is not None and args.seed is not None:
        parser.error("give --seed or --seeds, not both")
    if not args.data_root.is_dir():
        print(f"no benchmark data at {args.data_root}: the datasets live in ../shared/data "
              "beside this clone (or pass --data-root).", file=sys.stderr)
        return 1
    if not 0.0 <= args.held_out_intents < 1.0:
        parser.error("--held-out-intents must be at least 0 and below 1")
    settings = dict(args.set)
    suffix = "".join(f", {key}={value}" for key, value in settings.items())
    if args.held_out_intents:
        suffix += f", {args.held_out_intents:g} of intents held out"
    configs = [(label + (f" ({suffix.lstrip(', ')})" if suffix else ""), path)
               for label, path in (resolve_config(value) for value in args.configs)]
    lines = table_header()
    print("\n".join(lines), flush=True)
    runs = []
    for name in args.datasets:
        for label, config in configs:
            dataset = args.data_root.resolve() / name
            if args.seeds:
                row = combine_seeds([run_one(dataset, label, config, seed, args.timeout,
                                             args.repeat, args.held_out_intents, settings,
                                             args.plots if seed == args.seeds[-1] else None)
                                     for seed in args.seeds], args.seeds)
            else:
                row = run_one(dataset, label, config, args.seed, args.timeout, args.repeat,
                              args.held_out_intents, settings, args.plots)
            runs.append(row)
            lines.append(table_row(row))
            print(lines[-1], flush=True)
            if "error" in row:
                print(f"  {name} / {label} failed: {row['error']}", file=sys.stderr)
    per_seed = [line for row in runs for line in seed_lines(row)]
    if per_seed:
        print("\n".join(["", "Each seed:", *per_seed]), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    meta = {"python": platform.python_version(), "machine": platform.machine(),
            "cores": os.cpu_count(), "seed": args.seed, "seeds": args.seeds,
            "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    kept = runs
    if args.merge and args.json.is_file():
        kept = merge_runs(json.loads(args.json.read_text(encoding="utf-8"))["runs"], runs)
        lines = table_header() + [table_row(row) for row in kept]
    args.json.write_text(json.dumps({"meta": meta, "runs": kept}, indent=2) + "\n",
                         encoding="utf-8")
    kept_seeds = [line for row in kept for line in seed_lines(row)]
    if kept_seeds:
        lines += ["", "Each seed:", *kept_seeds]
    args.json.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 1 if runs and all("error" in r for r in runs) else 0


def merge_runs(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The old runs in their order, each replaced by a new run of the same dataset and config
    if there is one; then the new runs that replaced none."""
    fresh = {(r["dataset"], r["config"]): r for r in new}
    merged = [fresh.pop((r["dataset"], r["config"]), r) for r in old]
    return merged + [r for r in new if (r["dataset"], r["config"]) in fresh]


if __name__ == "__main__":
    raise SystemExit(main())
