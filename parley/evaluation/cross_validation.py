"""``parley test nlu --cross-validation``: Rasa's k-fold estimate of how well a config learns.

The NLU examples with an intent are split into ``k`` folds, stratified by the intent as
written (``faq/ask_name`` apart from ``faq/ask_weather``, as Rasa stratifies). For each fold
a model is trained from the config, through :func:`parley.model_training.train_nlu`, on the
other folds and tested on it (and on its own training data). As Rasa:

- per fold, the "Accuracy", "F1-score" and "Precision" (both weighted over the gold labels)
  of intents, of each entity extractor and of response selection, on train and test; the
  summary prints their mean and (standard deviation) over the folds;
- the report files (``intent_report.json``, ``<extractor>_report.json``, ...) score the test
  folds' predictions together, each example tested once, by the model that did not see it.

What differs: the split is seeded (``seed``), so a run can be repeated exactly (Rasa's is
not); ``cross_validation_report.json`` keeps the per-fold figures Rasa only logs. An entity
extractor's figures are Rasa's per-token ones (:mod:`parley.evaluation.entity_tokens`),
"Accuracy" the share of tokens labelled right.
The fold models are trained in a temporary folder that is removed afterwards; their nodes
go to the training cache as any training's do, so a repeated run retrains little.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.errors import DataError, warn
from parley.evaluation.entity_tokens import pipeline_tokenizer
from parley.nlu.evaluation import NLUReport, entity_extractors, evaluate_nlu, evaluate_parses

__all__ = ["CrossValidation", "FoldScores", "cross_validate", "run_cross_validation",
           "stratified_folds", "train_agent"]

DEFAULT_CONFIG = "config.yml"
DEFAULT_DOMAIN = "domain.yml"
DEFAULT_DATA = "data"
DEFAULT_FOLDS = 5
DEFAULT_SEED = 0
METRICS = ("Accuracy", "F1-score", "Precision")  # Rasa's names, in its order
REPORT_FILE = "cross_validation_report.json"

Scores = dict[str, float]
OnFold = Callable[[int, int, int, int], None]  # fold number, folds, train size, test size


def stratified_folds(labels: Sequence[str], n_folds: int, seed: int = DEFAULT_SEED
                     ) -> list[list[int]]:
    """The test indices of each fold: every label's examples, shuffled with ``seed``, dealt
    round the folds in turn (the turn carries on from label to label, so the folds differ in
    size by at most one). Each index is in exactly one fold."""
    if n_folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, not {n_folds}.")
    if n_folds > len(labels):
        raise ValueError(f"{n_folds} folds but only {len(labels)} examples.")
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(n_folds)]
    turn = 0
    for label in sorted(set(labels)):
        members = [i for i, x in enumerate(labels) if x == label]
        for index in rng.permutation(members):
            folds[turn % n_folds].append(int(index))
            turn += 1
    return [sorted(fold) for fold in folds]


@dataclass
class FoldScores:
    """One model's figures on one data set (a fold's train or test part)."""

    intents: Scores | None
    entities: dict[str, Scores]  # per extractor
    responses: Scores | None

    @classmethod
    def of(cls, report: NLUReport) -> FoldScores:
        intents = responses = None
        if report.intents is not None:
            i = report.intents
            intents = {"Accuracy": i.accuracy, "F1-score": i.weighted_f1,
                       "Precision": i.weighted_precision}
        if report.responses is not None:
            r = report.responses
            responses = {"Accuracy": r.accuracy, "F1-score": r.weighted_f1,
                         "Precision": r.weighted_precision}
        entities = {name: {"Accuracy": e.accuracy, "F1-score": e.weighted_f1,
                           "Precision": e.weighted_precision}
                    for name, e in report.extractors.items()}
        return cls(intents, entities, responses)


def _spread(values: Sequence[float]) -> dict[str, Any]:
    return {"folds": list(values), "mean": float(np.mean(values)), "std": float(np.std(values))}


@dataclass
class CrossValidation:
    """Every fold's figures, and the report of all test folds' predictions together."""

    n_folds: int
    seed: int
    train: list[FoldScores]
    test: list[FoldScores]
    report: NLUReport
    extractors: list[str] = field(default_factory=list)

    def _series(self, pick: Callable[[FoldScores], Scores | None]
                ) -> dict[str, dict[str, list[float]]] | None:
        """{"train"/"test": {metric: per-fold values}}; None when no fold has the part."""
        out = {}
        for part, folds in (("train", self.train), ("test", self.test)):
            picked = [pick(f) for f in folds]
            if any(p is None for p in picked):
                return None
            out[part] = {m: [p[m] for p in picked if p is not None] for m in METRICS}
        return out

    def figures(self) -> dict[str, Any]:
        """Per part (``intent``, ``entity`` per extractor, ``response_selection``), per
        train/test, per metric: the folds' values, their mean and standard deviation."""
        def spread(series: dict[str, dict[str, list[float]]] | None) -> dict[str, Any] | None:
            if series is None:
                return None
            return {part: {m: _spread(v) for m, v in metrics.items()}
                    for part, metrics in series.items()}

        entity = {name: spread(self._series(lambda f, n=name: f.entities.get(n)))
                  for name in self.extractors}
        return {"intent": spread(self._series(lambda f: f.intents)),
                "entity": {k: v for k, v in entity.items() if v is not None},
                "response_selection": spread(self._series(lambda f: f.responses))}

    def as_dict(self) -> dict[str, Any]:
        return {"folds": self.n_folds, "seed": self.seed, **self.figures()}

    def summary(self) -> str:
        """Rasa's lines: ``test F1-score: 0.950 (0.005)`` = mean (standard deviation)."""
        figures = self.figures()
        lines = [f"CV evaluation (n={self.n_folds})"]

        def add(part: dict[str, Any]) -> None:
            for name in ("train", "test"):
                for metric, values in part[name].items():
                    lines.append(f"{name} {metric}: {values['mean']:.3f} ({values['std']:.3f})")

        if figures["intent"] is not None:
            lines.append("Intent evaluation results")
            add(figures["intent"])
        if figures["entity"]:
            lines.append("Entity evaluation results")
            for extractor, part in figures["entity"].items():
                lines.append(f"Entity extractor: {extractor}")
                add(part)
        if figures["response_selection"] is not None:
            lines.append("Response Selection evaluation results")
            add(figures["response_selection"])
        return "\n".join(lines)


def _fold_data(data: TrainingData, examples: list[Message]) -> TrainingData:
    """The fold's examples with all the data's synonyms, regexes, lookups and responses,
    as Rasa's folds keep them."""
    return replace(data, examples=examples)


def train_agent(config: str | Path, data: TrainingData, folder: Path,
                domain: str | Path | None = None) -> Any:
    """Train an NLU model of ``config`` on ``data`` with the training API, in ``folder``
    (written as nlu.yml, the model under models/; the caller removes the folder), and load
    it."""
    from parley.data.formats.nlu_yaml import write_nlu_file
    from parley.model_training import train_nlu
    from parley.serving.agent import load

    folder.mkdir(parents=True)
    write_nlu_file(data, folder / "nlu.yml")
    model = train_nlu(str(config), str(folder / "nlu.yml"), str(folder / "models"),
                      fixed_model_name="model", domain=str(domain) if domain is not None else None)
    if model is None:
        raise DataError(f"{config}: training produced no NLU model.",
                        hint="Check that the config has an NLU pipeline.")
    return load(model)


def cross_validate(config: str | Path, data: TrainingData, n_folds: int = DEFAULT_FOLDS, *,
                   seed: int = DEFAULT_SEED, domain: str | Path | None = None,
                   on_fold: OnFold | None = None) -> CrossValidation:
    """Train ``config`` on each fold's complement of ``data`` and test on the fold."""
    examples = data.intent_examples
    if not examples:
        raise DataError("no NLU examples with an intent to cross-validate on.",
                        hint="Pass NLU training data (an 'nlu:' section) with --nlu.")
    labels = [m.intent or "" for m in examples]
    if n_folds < 2:
        raise DataError(f"--folds {n_folds}: cross-validation needs at least 2 folds (one "
                        "to test on, the others to train on).", hint="Pass --folds 2 or more.")
    if n_folds > len(examples):
        raise DataError(f"{n_folds} folds but only {len(examples)} NLU examples.",
                        hint="Pass fewer folds with --folds.")
    _warn_small_intents(labels, n_folds)
    train_scores, test_scores, tested, parses_of, tokens_of = [], [], [], [], []
    extractors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="parley-cv-") as work:
        for number, fold in enumerate(stratified_folds(labels, n_folds, seed), start=1):
            held_out = set(fold)
            train = [m for i, m in enumerate(examples) if i not in held_out]
            test = [examples[i] for i in fold]
            if on_fold is not None:
                on_fold(number, n_folds, len(train), len(test))
            agent = train_agent(config, _fold_data(data, train), Path(work) / f"fold_{number}",
                                domain)
            extractors = extractors or entity_extractors(agent.nlu_components)
            recorded: list[dict[str, Any]] = []
            tokenize = pipeline_tokenizer(agent.nlu_components)
            try:
                train_scores.append(FoldScores.of(evaluate_nlu(agent, train,
                                                               extractors=extractors)))
                report = evaluate_nlu(_recording(agent, recorded), test, extractors=extractors,
                                      tokenize=tokenize)
                tokens_of.extend(tokenize(m.text) for m in test)
            finally:
                agent.close()
            test_scores.append(FoldScores.of(report))
            tested.extend(test)
            parses_of.extend(recorded)
    together = evaluate_parses(tested, parses_of, extractors=extractors, tokens=tokens_of)
    return CrossValidation(n_folds, seed, train_scores, test_scores, together, extractors)


def _recording(agent: Any, into: list[dict[str, Any]]) -> Callable[[str], dict[str, Any]]:
    """The agent's parse, keeping each result: the test folds' predictions are scored
    together once the folds are done."""
    def parse(text: str) -> dict[str, Any]:
        result: dict[str, Any] = agent.parse(text)
        into.append(result)
        return result

    return parse


def _warn_small_intents(labels: Sequence[str], n_folds: int) -> None:
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    small = sorted(label for label, n in counts.items() if n < n_folds)
    if small:
        warn(f"{len(small)} intent(s) have fewer examples than the {n_folds} folds "
             f"({', '.join(small[:5])}{', ...' if len(small) > 5 else ''}): some folds test "
             "none of them, and a fold that holds all of one trains without it.")


def run_cross_validation(config: str | Path | None = None, nlu: Sequence[str] | None = None,
                         out: str | Path | None = "results", *, folds: int = DEFAULT_FOLDS,
                         seed: int = DEFAULT_SEED, domain: str | Path | None = None,
                         errors: bool = True, successes: bool = False, plot: bool = True,
                         on_fold: OnFold | None = None) -> tuple[list[str], CrossValidation]:
    """``rasa test nlu --cross-validation``: the NLU data of ``nlu`` (default data/, as
    Rasa's), the config (default config.yml), the domain for the retrieval responses
    (default domain.yml when there is one). Writes the reports of the test folds together
    and :data:`REPORT_FILE` into ``out`` (None: nothing). Returns the data paths and the
    result."""
    import json

    from parley.evaluation.nlu_files import write_nlu_reports
    from parley.evaluation.run import load_nlu_data

    config_path = Path(config if config is not None else DEFAULT_CONFIG)
    if not config_path.is_file():
        raise DataError(f"the config '{config_path}' does not exist.",
                        hint="Pass the config to cross-validate with -c/--config.")
    if domain is None and Path(DEFAULT_DOMAIN).is_file():
        domain = DEFAULT_DOMAIN
    paths = list(nlu) if nlu else [DEFAULT_DATA]
    data = load_nlu_data(paths, "--nlu")
    result = cross_validate(config_path, data, folds, seed=seed, domain=domain,
                            on_fold=on_fold)
    if out is not None:
        folder = write_nlu_reports(result.report, out, errors=errors, successes=successes,
                                   plot=plot)
        (folder / REPORT_FILE).write_text(json.dumps(result.as_dict(), indent=2) + "\n",
                                          encoding="utf-8")
    return paths, result
