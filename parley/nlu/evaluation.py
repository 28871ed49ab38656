"""Score an NLU model on test messages, as ``rasa test nlu`` does.

:func:`evaluate_parses` is pure: gold messages and the parse results for their texts in,
an :class:`NLUReport` out. :func:`evaluate_nlu` parses the texts itself (with an agent or
any ``text -> parse dict`` function) and also times each parse.

What is compared, following Rasa:

- Intents: the gold intent is the base intent (``faq`` for ``faq/ask_name``); test
  messages without an intent are left out; a missing prediction counts as the label ``""``.
  The intent scored is the one the parse returns, as Rasa scores it: a ``nlu_fallback``
  answer is wrong. Beside it, :attr:`NLUReport.ranking` scores the classifier's own top
  intent (the fallback undone: the next intent of the ranking), a different measure that
  reads higher, and :attr:`NLUReport.calibration` compares that intent's confidence with
  how often it is right (:mod:`parley.nlu.reliability`).
- Macro-F1 is scikit-learn's: per-label F1 averaged over the union of gold and predicted
  labels (a label never predicted has F1 0).
- Entities, two measures. Each entity extractor's own predictions (:func:`entity_extractors`
  names the pipeline's) are scored per token, as Rasa scores them
  (:mod:`parley.evaluation.entity_tokens`): that is :attr:`NLUReport.extractors` and the
  ``<extractor>_*`` report files. All the predictions together are also scored by exact
  span (:attr:`NLUReport.entities`, the NLU benchmark's entity F1): a predicted entity is
  right only when start, end, type and role all match a gold one, each gold entity matched
  at most once; with no gold entities its F1 is ``None``. Entities of pretrained
  extractors (Duckling, spaCy) are left out of both, as Rasa leaves them out.
- Responses (when parse results carry ``response_selector``): for test messages with a
  retrieval intent, the gold ``faq/ask_name`` against
  ``response_selector[<retrieval intent> or "default"]["response"]["intent_response_key"]``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.evaluation.entities import (
    NO_ENTITY, PRETRAINED_EXTRACTORS, EntityError, EntityReport, entity_extractors,
    entity_report,
)
from parley.evaluation.entity_tokens import (
    Tokenize, TokenEntityReport, pipeline_tokenizer, refuse_overlapping_gold,
    token_entity_report,
)
from parley.evaluation.scores import CONFUSIONS_SHOWN, Scores
from parley.nlu.reliability import Reliability, reliability
from parley.nlu.tokens import Token

__all__ = [
    "NO_ENTITY", "PRETRAINED_EXTRACTORS",
    "EntityError", "EntityReport", "LabelReport", "NLUReport", "PredictionError", "Scores",
    "TokenEntityReport",
    "accuracy", "entity_extractors", "entity_report", "evaluate_nlu", "evaluate_parses",
    "label_report", "label_scores", "macro_f1",
]

FALLBACK_INTENT = "nlu_fallback"
DEFAULT_SELECTOR = "default"  # the response selector trained on every retrieval intent

ParseFn = Callable[[str], dict[str, Any]]


# --- single-label metrics ---------------------------------------------------------------
def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (scikit-learn's zero_division)."""
    out = np.zeros(len(numerator), dtype=float)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def label_scores(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, Scores]:
    """Per-label scores over the sorted union of gold and predicted labels."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions.")
    labels = sorted(set(gold) | set(predicted))
    index = {label: i for i, label in enumerate(labels)}
    g = np.array([index[x] for x in gold], dtype=int)
    p = np.array([index[x] for x in predicted], dtype=int)
    n = len(labels)
    n_gold = np.bincount(g, minlength=n)
    n_pred = np.bincount(p, minlength=n)
    tp = np.bincount(g[g == p], minlength=n)
    precision, recall = _ratio(tp, n_pred), _ratio(tp, n_gold)
    f1 = _ratio(2 * tp, n_gold + n_pred)  # = 2PR/(P+R), and 0 where that is undefined
    return {label: Scores(float(precision[i]), float(recall[i]), float(f1[i]), int(n_gold[i]))
            for i, label in enumerate(labels)}


def accuracy(gold: Sequence[str], predicted: Sequence[str]) -> float:
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions.")
    if not gold:
        return 0.0
    return float(np.mean([g == p for g, p in zip(gold, predicted, strict=True)]))


def macro_f1(gold: Sequence[str], predicted: Sequence[str]) -> float:
    """scikit-learn's ``f1_score(average="macro")``: over gold ∪ predicted labels."""
    scores = label_scores(gold, predicted)
    return float(np.mean([s.f1 for s in scores.values()])) if scores else 0.0


@dataclass(frozen=True)
class PredictionError:
    """A test message whose label (intent or response key) was predicted wrong."""

    text: str
    gold: str
    predicted: str
    confidence: float | None


@dataclass
class LabelReport:
    """One single-label task (intents, or response keys): overall and per-label scores."""

    accuracy: float
    macro_f1: float
    labels: dict[str, Scores]
    confusions: dict[str, dict[str, int]]
    errors: list[PredictionError]
    n_examples: int
    # Every scored example, in order: what the plots of ``parley test nlu`` draw from.
    gold: list[str] = field(default_factory=list, repr=False)
    predicted: list[str] = field(default_factory=list, repr=False)
    confidences: list[float | None] = field(default_factory=list, repr=False)
    texts: list[str] = field(default_factory=list, repr=False)

    @property
    def weighted_f1(self) -> float:
        total = sum(s.support for s in self.labels.values())
        return sum(s.f1 * s.support for s in self.labels.values()) / total if total else 0.0

    def _average(self, weighted: bool) -> dict[str, Any]:
        scores = list(self.labels.values())
        total = sum(s.support for s in scores)
        weights = np.array([s.support for s in scores], dtype=float) if weighted else None
        if not scores or (weighted and not total):
            return {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": total}
        return {key: float(np.average([getattr(s, attr) for s in scores], weights=weights))
                for key, attr in (("precision", "precision"), ("recall", "recall"),
                                  ("f1-score", "f1"))} | {"support": total}

    def as_dict(self) -> dict[str, Any]:
        """Rasa's ``intent_report.json`` shape: a scikit-learn report plus ``confused_with``."""
        out: dict[str, Any] = {
            label: {**scores.as_dict(), "confused_with": self.confusions.get(label, {})}
            for label, scores in self.labels.items()
        }
        out["accuracy"] = self.accuracy
        out["macro avg"] = self._average(weighted=False)
        out["weighted avg"] = self._average(weighted=True)
        return out

    def errors_as_dicts(self, key: str) -> list[dict[str, Any]]:
        """Rasa's ``intent_errors.json`` (key "intent") / response errors shape."""
        target = "intent" if key == "intent" else f"{key}_target"
        return [{"text": e.text, target: e.gold,
                 f"{key}_prediction": {"name": e.predicted, "confidence": e.confidence}}
                for e in self.errors]

    @property
    def weighted_precision(self) -> float:
        """scikit-learn's ``precision_score(average="weighted")`` over the gold labels, the
        "Precision" Rasa's cross-validation prints."""
        return float(self._average(weighted=True)["precision"])

    def successes_as_dicts(self, key: str) -> list[dict[str, Any]]:
        """Rasa's ``intent_successes.json`` / ``response_selection_successes.json``: the
        right predictions, in the errors' shape."""
        target = "intent" if key == "intent" else f"{key}_target"
        return [{"text": t, target: g, f"{key}_prediction": {"name": p, "confidence": c}}
                for t, g, p, c in zip(self.texts, self.gold, self.predicted, self.confidences,
                                      strict=True) if g == p]


def label_report(texts: Sequence[str], gold: Sequence[str], predicted: Sequence[str],
                 confidences: Sequence[float | None]) -> LabelReport:
    """Scores, confusions (the most frequent wrong predictions per gold label) and errors."""
    wrong: dict[str, Counter[str]] = {}
    errors = []
    for text, g, p, c in zip(texts, gold, predicted, confidences, strict=True):
        if g != p:
            wrong.setdefault(g, Counter())[p] += 1
            errors.append(PredictionError(text, g, p, c))
    confusions = {g: dict(counts.most_common(CONFUSIONS_SHOWN)) for g, counts in wrong.items()}
    return LabelReport(accuracy(gold, predicted), macro_f1(gold, predicted),
                       label_scores(gold, predicted), confusions, errors, len(gold),
                       list(gold), list(predicted), list(confidences), list(texts))


# --- the whole report -------------------------------------------------------------------
def _ms(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


@dataclass
class NLUReport:
    """Everything ``rasa test nlu`` reports, plus parse latency."""

    n_messages: int
    intents: LabelReport | None
    entities: EntityReport
    responses: LabelReport | None = None
    parse_ms: list[float] = field(default_factory=list, repr=False)
    # The classifier's top intent, nlu_fallback undone, and its calibration.
    ranking: LabelReport | None = None
    calibration: Reliability | None = None
    # One report per entity extractor of the pipeline (its own predictions against all the
    # gold entities, per token), as Rasa writes ``<extractor>_report.json``; ``entities``
    # scores them all together by exact span.
    extractors: dict[str, TokenEntityReport] = field(default_factory=dict)

    @property
    def ranking_accuracy(self) -> float | None:
        return self.ranking.accuracy if self.ranking else None

    @property
    def fallback_rate(self) -> float | None:
        """The share of test messages (with an intent) answered ``nlu_fallback``."""
        if not self.intents or not self.intents.n_examples:
            return None
        answered = sum(1 for e in self.intents.errors if e.predicted == FALLBACK_INTENT)
        return answered / self.intents.n_examples

    @property
    def expected_calibration_error(self) -> float | None:
        return self.calibration.expected_calibration_error if self.calibration else None

    @property
    def intent_accuracy(self) -> float | None:
        return self.intents.accuracy if self.intents else None

    @property
    def intent_macro_f1(self) -> float | None:
        return self.intents.macro_f1 if self.intents else None

    @property
    def entity_f1(self) -> float | None:
        return self.entities.f1

    @property
    def response_accuracy(self) -> float | None:
        return self.responses.accuracy if self.responses else None

    @property
    def parse_p50_ms(self) -> float | None:
        return _ms(self.parse_ms, 50)

    @property
    def parse_p99_ms(self) -> float | None:
        return _ms(self.parse_ms, 99)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "messages": self.n_messages,
            "intent_accuracy": self.intent_accuracy,
            "intent_macro_f1": self.intent_macro_f1,
            "entity_precision": self.entities.precision,
            "entity_recall": self.entities.recall,
            "entity_f1": self.entity_f1,
            "response_selection_accuracy": self.response_accuracy,
            "intent_ranking_accuracy": self.ranking_accuracy,
            "fallback_rate": self.fallback_rate,
            "expected_calibration_error": self.expected_calibration_error,
            "intent_calibration": self.calibration.as_dict() if self.calibration else None,
            "parse_ms": {"p50": self.parse_p50_ms, "p99": self.parse_p99_ms},
            "intent_report": self.intents.as_dict() if self.intents else None,
            "entity_report": self.entities.as_dict(),
            "intent_errors": self.intents.errors_as_dicts("intent") if self.intents else [],
            "entity_errors": self.entities.errors_as_dicts(),
            "entity_extractors": {name: report.as_dict()
                                  for name, report in self.extractors.items()},
        }
        if self.responses is not None:
            out["response_selection_report"] = self.responses.as_dict()
            out["response_selection_errors"] = self.responses.errors_as_dicts("intent_response_key")
        return out

    def report_files(self, errors: bool = True, successes: bool = False) -> dict[str, Any]:
        """File name → JSON content of the reports ``rasa test nlu`` writes, by Rasa's
        names: ``intent_*``, ``<extractor>_*`` for each entity extractor,
        ``response_selection_*``; ``intent_calibration.json`` is Parley's."""
        files: dict[str, Any] = {}
        if self.intents is not None:
            files["intent_report.json"] = self.intents.as_dict()
            if errors:
                files["intent_errors.json"] = self.intents.errors_as_dicts("intent")
            if successes:
                files["intent_successes.json"] = self.intents.successes_as_dicts("intent")
        if self.calibration is not None:
            files["intent_calibration.json"] = self.calibration.as_dict()
        for name, report in self.extractors.items():
            files[f"{name}_report.json"] = report.as_dict()
            if errors:
                files[f"{name}_errors.json"] = report.errors_as_dicts()
            if successes:
                files[f"{name}_successes.json"] = report.successes_as_dicts()
        if self.responses is not None:
            key = "intent_response_key"
            files["response_selection_report.json"] = self.responses.as_dict()
            if errors:
                files["response_selection_errors.json"] = self.responses.errors_as_dicts(key)
            if successes:
                files["response_selection_successes.json"] = (
                    self.responses.successes_as_dicts(key))
        return files

    def summary(self) -> str:
        lines = [f"NLU evaluation of {self.n_messages} test messages"]
        if self.intents is None:
            lines.append("  intents:   no test message has an intent")
        else:
            lines.append(f"  intents:   accuracy {self.intents.accuracy:.3f}, macro-F1 "
                         f"{self.intents.macro_f1:.3f}, weighted F1 {self.intents.weighted_f1:.3f} "
                         f"({len(self.intents.errors)} of {self.intents.n_examples} wrong)")
        if self.ranking is not None and self.fallback_rate:
            lines.append(f"             {self.fallback_rate:.1%} answered nlu_fallback; with it "
                         f"undone, accuracy {self.ranking.accuracy:.3f}")
        if self.calibration is not None:
            lines.append(f"  confidence: expected calibration error "
                         f"{self.calibration.expected_calibration_error:.3f} (0 = a confidence of "
                         "0.7 is right 70% of the time)")
        e = self.entities
        if e.f1 is None:
            lines.append(f"  entities:  none in the test data ({e.n_predicted} predicted)")
        else:
            lines.append(f"  entities (exact spans): F1 {e.f1:.3f}, precision "
                         f"{e.precision:.3f}, recall {e.recall:.3f} ({e.n_correct} of "
                         f"{e.n_gold} found, {e.n_predicted} predicted)")
            for name, report in self.extractors.items():
                lines.append(f"    {name} per token (Rasa's report): weighted F1 "
                             f"{report.weighted_f1:.3f}, precision "
                             f"{report.weighted_precision:.3f}, token accuracy "
                             f"{report.accuracy:.3f}")
        if self.responses is not None:
            lines.append(f"  responses: accuracy {self.responses.accuracy:.3f}, macro-F1 "
                         f"{self.responses.macro_f1:.3f} ({self.responses.n_examples} messages)")
        if self.parse_ms:
            lines.append(f"  parse:     {self.parse_p50_ms:.2f} ms median, "
                         f"{self.parse_p99_ms:.2f} ms p99")
        return "\n".join(lines)


def _undo_fallback(parse: dict[str, Any]) -> dict[str, Any]:
    """The intent the classifier predicted before FallbackClassifier replaced it."""
    intent = parse.get("intent") or {}
    ranking = parse.get("intent_ranking") or []
    if intent.get("name") == FALLBACK_INTENT and len(ranking) >= 2:
        return ranking[1]
    return intent


def _selected_response(parse: dict[str, Any], retrieval_intent: str) -> dict[str, Any]:
    selectors = parse.get("response_selector") or {}
    selector = selectors.get(retrieval_intent, selectors.get(DEFAULT_SELECTOR)) or {}
    return selector.get("response") or {}


def _messages(test_data: TrainingData | Iterable[Message]) -> list[Message]:
    return list(test_data.examples if isinstance(test_data, TrainingData) else test_data)


def _trained_entities(parse: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in parse.get("entities") or []
            if e.get("extractor") not in PRETRAINED_EXTRACTORS]


def _extractor_reports(messages: Sequence[Message], parses: Sequence[dict[str, Any]],
                       extractors: Sequence[str] | None,
                       tokens: Sequence[Sequence[Token]]) -> dict[str, TokenEntityReport]:
    """Each extractor's predictions against all the gold entities, per token, as Rasa
    scores each extractor. Without names given, the extractors named in the predictions."""
    if extractors is None:
        extractors = sorted({str(e["extractor"]) for p in parses for e in _trained_entities(p)
                             if e.get("extractor")})
    extractors = [name for name in extractors if name not in PRETRAINED_EXTRACTORS]
    if extractors:
        refuse_overlapping_gold(messages)
    texts = [m.text for m in messages]
    gold = [m.entities for m in messages]
    return {name: token_entity_report(texts, tokens, gold, [
        [e for e in _trained_entities(p) if e.get("extractor") == name] for p in parses])
        for name in extractors}


def evaluate_parses(test_data: TrainingData | Iterable[Message],
                    parses: Sequence[dict[str, Any]], parse_ms: Sequence[float] = (), *,
                    extractors: Sequence[str] | None = None,
                    tokens: Sequence[Sequence[Token]] | None = None) -> NLUReport:
    """Compare each gold message with the parse result of its text (same order).

    ``extractors``: the entity extractors of the pipeline, one report each (an extractor
    that found nothing still has one); without, those the parse results name. ``tokens``:
    each text's tokens, which the extractors' reports score entities over (the pipeline's
    tokenizer's, see :func:`evaluate_nlu`); without, the default WhitespaceTokenizer's."""
    messages = _messages(test_data)
    if len(messages) != len(parses):
        raise ValueError(f"{len(messages)} test messages but {len(parses)} parse results.")
    if tokens is None:
        tokenize = pipeline_tokenizer(())
        tokens = [tokenize(m.text) for m in messages]
    if len(tokens) != len(messages):
        raise ValueError(f"{len(messages)} test messages but tokens of {len(tokens)}.")
    texts, gold = [], []
    returned: list[dict[str, Any]] = []
    ranked: list[dict[str, Any]] = []
    for message, parse in zip(messages, parses, strict=True):
        if not message.base_intent:
            continue
        texts.append(message.text)
        gold.append(message.base_intent)
        returned.append(parse.get("intent") or {})
        ranked.append(_undo_fallback(parse))
    intents = ranking = calibration = None
    if gold:
        intents = _intent_report(texts, gold, returned)
        ranking = _intent_report(texts, gold, ranked)
        calibration = reliability([r.get("confidence") for r in ranked],
                                  [g == (r.get("name") or "") for g, r in zip(gold, ranked,
                                                                               strict=True)])
    entities = entity_report([m.text for m in messages], [m.entities for m in messages],
                             [_trained_entities(p) for p in parses])
    responses = None
    if any("response_selector" in p for p in parses):
        pairs = [(m, _selected_response(p, m.base_intent or ""))
                 for m, p in zip(messages, parses, strict=True) if m.response_key]
        if pairs:
            responses = label_report(
                [m.text for m, _ in pairs], [m.intent or "" for m, _ in pairs],
                [r.get("intent_response_key") or "" for _, r in pairs],
                [r.get("confidence") for _, r in pairs])
    return NLUReport(len(messages), intents, entities, responses, list(parse_ms), ranking,
                     calibration, _extractor_reports(messages, parses, extractors, tokens))


def _intent_report(texts: list[str], gold: list[str],
                   intents: list[dict[str, Any]]) -> LabelReport:
    return label_report(texts, gold, [i.get("name") or "" for i in intents],
                        [i.get("confidence") for i in intents])


def evaluate_nlu(agent_or_parse_fn: Any, test_data: TrainingData | Iterable[Message], *,
                 warmup: int = 0, extractors: Sequence[str] | None = None,
                 tokenize: Tokenize | None = None) -> NLUReport:
    """Parse every test text (timing each parse) and score the results.

    ``agent_or_parse_fn`` is anything with a ``parse(text)`` method (an
    :class:`~parley.serving.agent.Agent`) or a function ``text -> parse dict``. ``warmup``
    untimed parses of the first texts come first, so lazy loading does not count.
    ``extractors`` as :func:`evaluate_parses`'s. ``tokenize`` gives the tokens the entity
    extractors are scored over: by default the agent's pipeline tokenizer (Rasa aligns
    entities to the pipeline's tokens), or the default WhitespaceTokenizer's.
    """
    parse: ParseFn = getattr(agent_or_parse_fn, "parse", agent_or_parse_fn)
    if not callable(parse):
        raise TypeError("evaluate_nlu needs an agent or a function text -> parse result.")
    messages = _messages(test_data)
    if extractors and set(extractors) - PRETRAINED_EXTRACTORS:
        refuse_overlapping_gold(messages)  # before parsing them all, not after
    for message in messages[:warmup]:
        parse(message.text)
    parses, parse_ms = [], []
    for message in messages:
        start = time.perf_counter()
        result = parse(message.text)
        parse_ms.append((time.perf_counter() - start) * 1000.0)
        parses.append(result)
    if tokenize is None:
        tokenize = pipeline_tokenizer(getattr(agent_or_parse_fn, "nlu_components", ()))
    return evaluate_parses(messages, parses, parse_ms, extractors=extractors,
                           tokens=[tokenize(m.text) for m in messages])
