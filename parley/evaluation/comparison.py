"""``parley test nlu -c a.yml b.yml``: Rasa's comparison of NLU configs on growing data.

As ``rasa test nlu`` with several configs (or a folder of them): each of ``runs`` runs
splits the NLU data into train (80 %) and test (20 %), stratified by the intent as written;
then, for each percentage in ``percentages``, leaves that share of each intent's training
examples out, trains every config on the rest and scores it on the run's test set. The
figure kept is the intents' F1 weighted by support (Rasa's ``f1_score``).

Written into ``out``, by Rasa's names: ``results.json`` (``{config name: [[F1 per
percentage] per run]}``), ``nlu_model_comparison_graph.pdf`` (mean F1 against the number of
training examples, the band one standard deviation), and per run ``run_<n>/test.yml``,
``run_<n>/<p>%_exclusion/train/train.yml`` and ``run_<n>/<p>%_exclusion/<config>_report/``
(the reports of ``parley test nlu``). Unlike Rasa, the models are not kept (they are trained
in a temporary folder, removed afterwards) and the splits are seeded.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.errors import DataError, ParleyError, warn

__all__ = ["Comparison", "compare_configs", "config_files", "run_comparison",
           "stratified_split"]

DEFAULT_RUNS = 3
DEFAULT_PERCENTAGES = (0, 25, 50, 75)
TEST_FRACTION = 0.2  # Rasa's train_test_split keeps 80 % for training
RESULTS_FILE = "results.json"
GRAPH_FILE = "nlu_model_comparison_graph.pdf"

OnStep = Callable[[str], None]


def config_files(given: Sequence[str | Path]) -> list[Path]:
    """The configs named, a folder standing for the YAML files in it (as Rasa lists it)."""
    files: list[Path] = []
    for entry in map(Path, given):
        if entry.is_dir():
            files.extend(sorted(p for p in entry.iterdir() if p.suffix in (".yml", ".yaml")))
        elif entry.is_file():
            files.append(entry)
        else:
            raise DataError(f"the config '{entry}' does not exist.",
                            hint="Pass config files, or a folder of them, with -c/--config.")
    names = [p.stem for p in files]
    if len(files) < 2:
        raise DataError(f"comparing configs needs at least two, {' '.join(map(str, given))} "
                        f"holds {len(files)}.",
                        hint="Pass two or more configs, or one with --cross-validation.")
    if len(set(names)) < len(names):
        raise DataError(f"two configs share a name ({', '.join(names)}); the results are "
                        "kept by file name.", hint="Rename one of them.")
    return files


def stratified_split(labels: Sequence[str], keep: float, rng: np.random.Generator
                     ) -> tuple[list[int], list[int]]:
    """(kept, left out) indices: of each label's examples, shuffled, the first
    ``int(count * keep)`` are kept, as Rasa's ``train_test_split`` counts them."""
    kept: list[int] = []
    left: list[int] = []
    for label in sorted(set(labels)):
        members = rng.permutation([i for i, x in enumerate(labels) if x == label])
        n_kept = int(len(members) * keep)
        kept.extend(int(i) for i in members[:n_kept])
        left.extend(int(i) for i in members[n_kept:])
    return sorted(kept), sorted(left)


@dataclass
class Comparison:
    """Each config's F1 per run and percentage, and the training sizes of the first run."""

    f1: dict[str, list[list[float]]]
    percentages: list[int]
    training_examples: list[int]

    def mean(self, name: str) -> list[float]:
        return [float(x) for x in np.mean(self.f1[name], axis=0)]

    def std(self, name: str) -> list[float]:
        return [float(x) for x in np.std(self.f1[name], axis=0)]

    def summary(self) -> str:
        lines = ["Intent F1 (weighted) on the test sets, mean (std) over the runs:",
                 f"{'left out':<24}" + "".join(f"{f'{p}%':>16}" for p in self.percentages),
                 f"{'training examples':<24}" + "".join(
                     f"{n:>16}" for n in self.training_examples)]
        for name in self.f1:
            lines.append(f"{name:<24}" + "".join(
                f"{f'{m:.3f} ({s:.3f})':>16}" for m, s in zip(self.mean(name), self.std(name),
                                                               strict=True)))
        return "\n".join(lines)


def _subset(data: TrainingData, examples: list[Message], indices: list[int]) -> TrainingData:
    return replace(data, examples=[examples[i] for i in indices])


def compare_configs(configs: Sequence[Path], data: TrainingData, out: str | Path, *,
                    runs: int = DEFAULT_RUNS,
                    percentages: Sequence[int] = DEFAULT_PERCENTAGES, seed: int = 0,
                    domain: str | Path | None = None, plot: bool = True,
                    on_step: OnStep | None = None) -> Comparison:
    """Train and score each config on each run's training data minus each percentage."""
    from parley.data.formats.nlu_yaml import write_nlu_file
    from parley.evaluation.cross_validation import train_agent
    from parley.evaluation.nlu_files import write_nlu_reports
    from parley.nlu.evaluation import entity_extractors, evaluate_nlu

    if runs < 1:
        raise DataError(f"--runs {runs}: at least one run is needed.")
    if not percentages or any(not 0 <= p < 100 for p in percentages):
        raise DataError(f"--percentages {' '.join(map(str, percentages))}: each must be from "
                        "0 to 99 (the share of training data left out).")
    examples = data.intent_examples
    if not examples:
        raise DataError("no NLU examples with an intent to compare the configs on.",
                        hint="Pass NLU training data (an 'nlu:' section) with --nlu.")
    labels = [m.intent or "" for m in examples]
    folder = Path(out)
    names = [c.stem for c in configs]
    f1: dict[str, list[list[float]]] = {name: [[] for _ in range(runs)] for name in names}
    sizes: list[int] = []
    rng = np.random.default_rng(seed)
    say = on_step or (lambda _: None)
    with tempfile.TemporaryDirectory(prefix="parley-compare-") as work:
        for run in range(runs):
            say(f"Beginning comparison run {run + 1}/{runs}")
            run_dir = folder / f"run_{run + 1}"
            train_idx, test_idx = stratified_split(labels, 1 - TEST_FRACTION, rng)
            test = [examples[i] for i in test_idx]
            run_dir.mkdir(parents=True, exist_ok=True)
            write_nlu_file(_subset(data, examples, test_idx), run_dir / "test.yml")
            train_labels = [labels[i] for i in train_idx]
            for percentage in percentages:
                kept, _ = stratified_split(train_labels, 1 - percentage / 100, rng)
                included = _subset(data, examples, [train_idx[i] for i in kept])
                if run == 0:
                    sizes.append(len(included.examples))
                step_dir = run_dir / f"{percentage}%_exclusion"
                (step_dir / "train").mkdir(parents=True, exist_ok=True)
                write_nlu_file(included, step_dir / "train" / "train.yml")
                for config, name in zip(configs, names, strict=True):
                    say(f"Evaluating configuration '{name}' with {percentage}%_exclusion "
                        "training data.")
                    try:
                        agent = train_agent(config, included,
                                            Path(work) / f"{run}-{percentage}-{name}", domain)
                    except ParleyError as error:
                        # As Rasa: one config failing does not stop the others.
                        warn(f"training '{name}' with {percentage}% left out failed, its F1 "
                             f"counts as 0: {error}", config)
                        f1[name][run].append(0.0)
                        continue
                    try:
                        report = evaluate_nlu(
                            agent, test, extractors=entity_extractors(agent.nlu_components))
                    finally:
                        agent.close()
                    write_nlu_reports(report, step_dir / f"{name}_report", plot=plot)
                    f1[name][run].append(report.intents.weighted_f1 if report.intents else 0.0)
    comparison = Comparison(f1, list(percentages), sizes)
    (folder / RESULTS_FILE).write_text(json.dumps(f1, indent=2) + "\n", encoding="utf-8")
    if plot:
        _graph(comparison, folder / GRAPH_FILE)
    return comparison


def _graph(comparison: Comparison, path: Path) -> None:
    from parley.nlu import plots

    if plots.plots_available():
        plots.comparison_graph_pdf(
            comparison.training_examples,
            {name: (comparison.mean(name), comparison.std(name)) for name in comparison.f1},
            path)


def run_comparison(configs: Sequence[str], nlu: Sequence[str] | None, out: str | Path, *,
                   runs: int = DEFAULT_RUNS, percentages: Sequence[int] = DEFAULT_PERCENTAGES,
                   seed: int = 0, domain: str | Path | None = None, plot: bool = True,
                   on_step: OnStep | None = None) -> tuple[list[str], Comparison]:
    """The comparison as the CLI runs it: NLU data from ``nlu`` (default data/), the
    domain's retrieval responses (default domain.yml when there is one)."""
    from parley.evaluation.cross_validation import DEFAULT_DATA, DEFAULT_DOMAIN
    from parley.evaluation.run import load_nlu_data

    files = config_files(configs)
    if domain is None and Path(DEFAULT_DOMAIN).is_file():
        domain = DEFAULT_DOMAIN
    paths = list(nlu) if nlu else [DEFAULT_DATA]
    data = load_nlu_data(paths, "--nlu")
    return paths, compare_configs(files, data, out, runs=runs, percentages=percentages,
                                  seed=seed, domain=domain, plot=plot, on_step=on_step)

