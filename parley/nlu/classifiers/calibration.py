"""Calibrated intent confidences: one temperature, learned from the training data.

A classifier's raw probabilities say little about how often it is right: the regularised
logistic regression of Parley's default pipeline gives 0.2–0.3 to messages it gets right
two times out of three, so a FallbackClassifier at Rasa's ``threshold: 0.3`` answered
``nlu_fallback`` to a quarter of good messages. Dividing the logits by a temperature ``T``
(``softmax(z / T)``; Guo et al., 2017, "On Calibration of Modern Neural Networks") fixes the
scale without changing which intent wins: ``T < 1`` sharpens, ``T > 1`` softens.

``T`` is the one that makes the classifier's *out-of-fold* predictions on its own training
data most likely (least negative log-likelihood): the classifier is trained again on
``k - 1`` folds and scores the held-out fold, for each fold. The folds are grouped by
paraphrase: training data is full of near-copies ("what's the weather" / "what is the
weather"), and a held-out example whose near-copy stayed in training is scored far more
confidently than a new message would be. Examples of one intent whose feature vectors have
cosine similarity above :data:`PARAPHRASE_SIMILARITY` (joined transitively) are held out
together. On the -small benchmark sets, plain stratified folds left the expected
calibration error on the test sets at 0.055 / 0.023 / 0.013 (hwu64 / banking77 / snips);
grouped folds give 0.045 / 0.016 / 0.014 (docs/lab-notes/calibration.md).

A temperature fits the probability of the *right* intent over all messages; the fallback
and the calibration error read the confidence of the *top* one. The two differ: on the
-small sets the temperature left messages at 0.2–0.4 right more often than they said, and a
fallback at Rasa's ``threshold: 0.3`` took good messages. So a second, two-parameter map
(Platt scaling of the top intent's log-odds, ``σ(a · logit(p_top) + b)``) is fitted on the
same out-of-fold predictions to whether the top intent was right: the top intent's
confidence is that probability, the other intents share the rest in the temperature's
proportions (:func:`calibrated_softmax`). Neither map changes which intent wins or the order
of the ranking. On hwu64-small this took the share of messages answered ``nlu_fallback`` at
Rasa's thresholds from 7.9% to 4.1% and the accuracy as returned from 0.758 to 0.767, at a
calibration error of 0.025 (docs/lab-notes/calibration.md).

Everything is deterministic: fold assignment draws from a seeded generator, the searches
are bounded minimisations from fixed starts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from parley.errors import ModelArchiveError
from parley.nlu.classifiers.tfidf import inverse_document_frequency, tfidf_weights

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

__all__ = [
    "IDENTITY_TOP_MAP", "MAX_CALIBRATION_FOLDS", "PARAPHRASE_SIMILARITY", "TopMap",
    "calibrated_softmax", "calibration_of", "cross_validated_calibration",
    "cross_validated_temperature", "fit_temperature", "fit_top_map", "grouped_folds",
    "held_out_log_loss", "out_of_fold_logits", "paraphrase_groups",
    "saved_temperature", "saved_top_map", "scaled_softmax", "top_log_odds",
]

PARAPHRASE_SIMILARITY = 0.5
MAX_BLOCK_DENSITY = 0.1  # see paraphrase_groups
# Each fold trains the classifier once more; beyond 20 the temperature no longer moves.
MAX_CALIBRATION_FOLDS = 20
# Temperatures outside this range mean the data gave no usable signal; the search stays
# inside it.
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 20.0
# A weak prior toward T = 1 (a penalty of (ln T)² worth this many held-out examples): a small
# bot whose folds are all predicted right would otherwise get the sharpest temperature
# allowed, and then even gibberish would come out at confidence 1.0 and never reach the
# fallback. On a benchmark set (over a thousand examples) it moves T by under 1%.
PRIOR_EXAMPLES = 5.0

# The top intent's map: (slope a, intercept b) of σ(a · logit(p_top) + b); (1, 0) changes
# nothing. The slope stays in this range (positive: a higher score stays a higher confidence).
TopMap = tuple[float, float]
IDENTITY_TOP_MAP: TopMap = (1.0, 0.0)
MIN_TOP_SLOPE, MAX_TOP_SLOPE = 0.05, 20.0
MAX_TOP_INTERCEPT = 10.0

FoldScorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


def saved_temperature(state: Mapping[str, Any], component: str) -> float:
    """The temperature in a saved component's state, checked."""
    temperature = state.get("temperature")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not np.isfinite(temperature) or temperature <= 0:
        raise ModelArchiveError(f"{component}: the saved model's confidence temperature "
                                f"({temperature!r}) is not a positive number; the archive is "
                                "damaged or from an older Parley (train again).")
    return float(temperature)


def saved_top_map(state: Mapping[str, Any], component: str) -> TopMap:
    """The top intent's confidence map in a saved component's state, checked; archives
    from before it existed have none and keep the temperature alone."""
    saved = state.get("top_calibration")
    if saved is None:
        return IDENTITY_TOP_MAP
    valid = isinstance(saved, (list, tuple)) and len(saved) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
        for v in saved)
    if not valid or not MIN_TOP_SLOPE <= saved[0] <= MAX_TOP_SLOPE:
        raise ModelArchiveError(f"{component}: the saved model's top-intent calibration "
                                f"({saved!r}) is not a slope and an intercept; the archive is "
                                "damaged.")
    return float(saved[0]), float(saved[1])


def scaled_softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Row-wise ``softmax(logits / temperature)``; ``-inf`` logits get probability 0."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return np.asarray(p / p.sum(axis=1, keepdims=True))


def _top_and_rest(logits: np.ndarray, temperature: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of ``softmax(logits / temperature)``: the top class, ``logit(p_top)`` and
    each other class's share of the rest (0 for the top). Computed from the logits, never
    from ``p_top`` (which rounds to 1.0 long before its log-odds stop growing); a row with
    one finite logit gets log-odds +inf and no rest. Plain numpy: it runs on every parse."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    rows = np.arange(len(z))
    top = z.argmax(axis=1)
    best = z[rows, top]
    z[rows, top] = -np.inf
    highest = z.max(axis=1)
    some = np.isfinite(highest)
    with np.errstate(invalid="ignore", over="ignore"):
        rest = np.exp(z - np.where(some, highest, 0.0)[:, None])
    total = rest.sum(axis=1)
    rest = rest / np.where(total > 0, total, 1.0)[:, None]
    with np.errstate(divide="ignore"):
        odds = np.where(some, best - highest - np.log(np.where(some, total, 1.0)), np.inf)
    return top, odds, rest


def top_log_odds(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Per row, ``logit(p_top)`` of ``softmax(logits / temperature)``: the top scaled logit
    less the log-sum-exp of the others; +inf for a row with one finite logit."""
    return _top_and_rest(logits, temperature)[1]


def calibrated_softmax(logits: np.ndarray, temperature: float,
                       top_map: TopMap = IDENTITY_TOP_MAP) -> np.ndarray:
    """Row-wise calibrated probabilities: ``softmax(logits / temperature)``, then the top
    class's probability replaced by ``σ(a · logit(p_top) + b)`` (``top_map`` = (a, b)) and
    the others scaled to share the rest as they shared it before. The order of the classes
    never changes: the top one keeps more than the second's new share."""
    logits = np.asarray(logits, dtype=np.float64)
    if top_map == IDENTITY_TOP_MAP or logits.shape[1] < 2:
        return scaled_softmax(logits, temperature)
    if len(logits) == 1:
        return _calibrated_row(logits[0], temperature, top_map)[None, :]
    slope, intercept = top_map
    top, odds, rest = _top_and_rest(logits, temperature)
    score = slope * np.minimum(odds, 1e6) + intercept
    with np.errstate(over="ignore"):
        confidence, remainder = 1.0 / (1.0 + np.exp(-score)), 1.0 / (1.0 + np.exp(score))
    second = rest.max(axis=1)
    # Keep the top first: c > (1 - c) · second  ⇔  c > second / (1 + second); the margin
    # outlasts rounding.
    floor = second / (1.0 + second) + 1e-12
    low = confidence < floor
    confidence[low], remainder[low] = floor[low], 1.0 - floor[low]
    out = rest * remainder[:, None]
    out[np.arange(len(out)), top] = confidence
    return out


def _calibrated_row(logits: np.ndarray, temperature: float, top_map: TopMap) -> np.ndarray:
    """:func:`calibrated_softmax` of one row (a parse), the same floats: the vector steps
    are the same numpy calls on the row, the scalar ones Python's float arithmetic (the
    same IEEE operations), ``exp`` and ``log`` numpy's on one value each as before — a
    third of the calls, none of them for 1-element arrays or ``errstate``."""
    slope, intercept = top_map
    z = logits / temperature
    top = int(z.argmax())
    best = float(z[top])
    z[top] = -np.inf
    highest = float(z.max())
    some = math.isfinite(highest)
    rest = np.exp(z - highest) if some else np.exp(z)
    total = float(np.add.reduce(rest))
    if total > 0:
        rest /= total
    odds = best - highest - float(np.log(np.float64(total))) if some else math.inf
    score = slope * min(odds, 1e6) + intercept
    if abs(score) > 700:  # exp may overflow to inf: 1 / (1 + inf) = 0, as it should
        with np.errstate(over="ignore"):
            confidence = 1.0 / (1.0 + float(np.exp(np.float64(-score))))
            remainder = 1.0 / (1.0 + float(np.exp(np.float64(score))))
    else:
        confidence = 1.0 / (1.0 + float(np.exp(np.float64(-score))))
        remainder = 1.0 / (1.0 + float(np.exp(np.float64(score))))
    second = float(rest.max())
    floor = second / (1.0 + second) + 1e-12
    if confidence < floor:
        confidence, remainder = floor, 1.0 - floor
    rest *= remainder
    rest[top] = confidence
    return rest


def paraphrase_groups(x: csr_matrix, labels: np.ndarray, dims: list[int] | None = None,
                      sparse: list[bool] | None = None,
                      similarity: float = PARAPHRASE_SIMILARITY) -> np.ndarray:
    """A group id per row: rows of one label whose cosine similarity exceeds
    ``similarity``, joined transitively (connected components). Compared within each
    label only, so the cost is the sum of squared label sizes, not the square of all.

    ``x`` holds raw feature counts in blocks of ``dims`` columns (one per featurizer; None:
    one block); they are compared as sublinear tf-idf, each block of unit length, as the
    default pipeline's classifier sees them. On raw counts, the char n-grams every message
    shares make most messages of an intent look alike (one group per intent). Blocks that
    ``sparse`` marks False (sentence embeddings) are left out: all of an intent's messages
    are close in them, which would put the intent in one group again (on banking77-small
    with all-MiniLM vectors, out-of-fold accuracy fell to 0.51 and the error to 0.07).
    Blocks where a message has values in more than :data:`MAX_BLOCK_DENSITY` of the columns
    on average are left out too: they describe a message's form (LexicalSyntacticFeaturizer's
    case and position flags), which all messages share, not its wording — with them in,
    banking77-small's 1,540 examples fell into 158 groups. Without any block left, every row
    is its own group."""
    from scipy.sparse.csgraph import connected_components

    blocks = [x.shape[1]] if dims is None else list(dims)
    keep = [True] * len(blocks) if sparse is None else list(sparse)
    starts = np.cumsum([0, *blocks])
    x = x.tocsc()
    for i, dim in enumerate(blocks):
        stored = x.indptr[starts[i + 1]] - x.indptr[starts[i]]
        if dim == 0 or stored > MAX_BLOCK_DENSITY * dim * max(x.shape[0], 1):
            keep[i] = False
    if not any(keep):
        return np.arange(len(labels), dtype=np.int64)
    columns = np.concatenate([np.arange(starts[i], starts[i + 1])
                              for i, kept in enumerate(keep) if kept])
    x = x[:, columns].tocsr()
    blocks = [d for d, kept in zip(blocks, keep, strict=True) if kept]
    weighted = tfidf_weights(x, inverse_document_frequency(x, blocks, [True] * len(blocks)),
                             blocks)
    groups = np.empty(len(labels), dtype=np.int64)
    norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    next_id = 0
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        block = weighted[rows]
        cosine = (block @ block.T).toarray() / np.outer(norms[rows], norms[rows])
        count, component = connected_components(cosine > similarity, directed=False)
        groups[rows] = component + next_id
        next_id += count
    return groups


def grouped_folds(labels: np.ndarray, groups: np.ndarray, k: int, seed: int) -> np.ndarray:
    """A fold (0 … k-1) per row: each label's groups dealt out in a seeded random order,
    so every fold holds about 1/k of each label and a group never spans two folds."""
    rng = np.random.default_rng(seed)
    folds = np.empty(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        label_groups = np.unique(groups[rows])
        order = rng.permutation(len(label_groups))
        fold_of_group = dict(zip(label_groups[order].tolist(), np.arange(len(order)) % k,
                                 strict=True))
        folds[rows] = [fold_of_group[g] for g in groups[rows].tolist()]
    return folds


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the mean negative log-likelihood of ``labels``
    (column indices) under ``softmax(logits / T)``, with a weak prior toward 1
    (:data:`PRIOR_EXAMPLES`). Rows whose label has logit ``-inf``
    (the class was absent from that fold's training) are left out; with no row left,
    1.0 (no change)."""
    from scipy.optimize import minimize_scalar
    from scipy.special import logsumexp

    logits = np.asarray(logits, dtype=np.float64)
    true = logits[np.arange(len(labels)), labels]
    usable = np.isfinite(true)
    if not usable.any():
        return 1.0
    logits, true = logits[usable], true[usable]

    prior = PRIOR_EXAMPLES / len(true)

    def nll(log_t: float) -> float:
        t = np.exp(log_t)
        return float(np.mean(logsumexp(logits / t, axis=1) - true / t)) + prior * log_t ** 2

    result = minimize_scalar(nll, bounds=(np.log(MIN_TEMPERATURE), np.log(MAX_TEMPERATURE)),
                             method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))


def fit_top_map(logits: np.ndarray, labels: np.ndarray, temperature: float) -> TopMap:
    """The (slope, intercept) of ``σ(a · logit(p_top) + b)`` that makes it the most likely
    probability of the top class being ``labels``' (least binary log-loss) over the rows of
    ``logits``, ``p_top`` from ``softmax(logits / temperature)``. Rows whose label has logit
    ``-inf`` are left out, as in :func:`fit_temperature`; a weak prior toward (1, 0), worth
    :data:`PRIOR_EXAMPLES` rows, keeps a small bot whose folds are all right from mapping
    every message to near-certainty. With no row left, or rows all right or all wrong on
    fewer than :data:`PRIOR_EXAMPLES` rows, the identity."""
    from scipy.optimize import minimize
    from scipy.special import log_expit

    logits = np.asarray(logits, dtype=np.float64)
    usable = np.isfinite(logits[np.arange(len(labels)), labels])
    if usable.sum() < PRIOR_EXAMPLES:
        return IDENTITY_TOP_MAP
    logits, labels = logits[usable], np.asarray(labels)[usable]
    right = logits.argmax(axis=1) == labels
    odds = np.clip(top_log_odds(logits, temperature), -50.0, 50.0)
    prior = PRIOR_EXAMPLES / len(labels)
    sign = np.where(right, 1.0, -1.0)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        log_slope, intercept = theta
        slope = np.exp(log_slope)
        score = sign * (slope * odds + intercept)
        value = -float(np.mean(log_expit(score))) + prior * (log_slope ** 2 + intercept ** 2)
        residual = -sign * np.exp(log_expit(-score))  # d(-log σ(score)) / d(a·x + b)
        grad = np.array([float(np.mean(residual * odds)) * slope + 2 * prior * log_slope,
                         float(np.mean(residual)) + 2 * prior * intercept])
        return value, grad

    result = minimize(loss, np.zeros(2), jac=True, method="L-BFGS-B",
                      bounds=[(np.log(MIN_TOP_SLOPE), np.log(MAX_TOP_SLOPE)),
                              (-MAX_TOP_INTERCEPT, MAX_TOP_INTERCEPT)])
    return float(np.exp(result.x[0])), float(result.x[1])


def cross_validated_temperature(score_fold: FoldScorer, labels: np.ndarray,
                                groups: np.ndarray, k: int, seed: int) -> float:
    """:func:`fit_temperature` on out-of-fold logits (see
    :func:`cross_validated_calibration`); the temperature alone."""
    return cross_validated_calibration(score_fold, labels, groups, k, seed,
                                       top_map=False)[0]


def cross_validated_calibration(score_fold: FoldScorer, labels: np.ndarray,
                                groups: np.ndarray, k: int, seed: int,
                                top_map: bool = True,
                                rounds: int | None = None) -> tuple[float, TopMap]:
    """The temperature (:func:`fit_temperature`) and the top intent's map
    (:func:`fit_top_map`, when ``top_map``) of out-of-fold logits
    (:func:`out_of_fold_logits`, whose arguments these are). With fewer than two folds'
    worth of groups, no calibration: (1.0, identity)."""
    out_of_fold = out_of_fold_logits(score_fold, labels, groups, k, seed, rounds)
    if out_of_fold is None:
        return 1.0, IDENTITY_TOP_MAP
    return calibration_of(out_of_fold, labels, top_map)


def out_of_fold_logits(score_fold: FoldScorer, labels: np.ndarray, groups: np.ndarray,
                       k: int, seed: int, rounds: int | None = None,
                       first: int = 0) -> np.ndarray | None:
    """Logits of each row from a classifier that did not see it (its fold held out).

    ``score_fold(train_rows, held_out_rows)`` trains the classifier on ``train_rows`` and
    returns logits for ``held_out_rows`` over all classes (``-inf`` for a class it could
    not learn). The folds are :func:`grouped_folds` of ``groups`` (seeded: the same rows
    fall together for every caller with the same seed, so settings compared on them are
    compared on the same held-out messages). ``rounds`` (None: ``k``) is how many of the
    ``k`` folds are held out in turn: with 1, one classifier trained on ``(k - 1) / k`` of
    the data scores the other ``1 / k``, and the other rows keep ``-inf`` logits (which
    the fits leave out) — for a classifier whose training is too dear to repeat ``k`` times
    (DIET). ``first`` is the first fold held out: rounds ``first … first + rounds - 1``
    (so a caller can score some folds now and the rest later). None when there is nothing
    to hold out (``k < 2`` or a single class)."""
    if k < 2 or len(np.unique(labels)) < 2:
        return None
    folds = grouped_folds(labels, groups, k, seed)
    n_classes = int(labels.max()) + 1
    out_of_fold = np.full((len(labels), n_classes), -np.inf)
    last = k if rounds is None else min(k, first + max(1, rounds))
    for fold in range(first, last):
        held_out = np.flatnonzero(folds == fold)
        train = np.flatnonzero(folds != fold)
        if len(held_out) == 0 or len(np.unique(labels[train])) < 2:
            continue
        out_of_fold[held_out] = score_fold(train, held_out)
    return out_of_fold


def calibration_of(out_of_fold: np.ndarray, labels: np.ndarray,
                   top_map: bool = True) -> tuple[float, TopMap]:
    """The temperature and (when ``top_map``) the top intent's map fitted on out-of-fold
    logits (:func:`out_of_fold_logits`)."""
    temperature = fit_temperature(out_of_fold, labels)
    if not top_map:
        return temperature, IDENTITY_TOP_MAP
    return temperature, fit_top_map(out_of_fold, labels, temperature)


def held_out_log_loss(out_of_fold: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of ``labels`` under ``softmax(logits / temperature)``
    over the rows whose label the fold's classifier could learn (a finite logit): the proper
    score by which settings are compared on the training data's folds. Accuracy moves by a
    message or two between settings that differ; the likelihood sees how sure the
    classifier was, right or wrong. +inf with no usable row."""
    from scipy.special import logsumexp

    logits = np.asarray(out_of_fold, dtype=np.float64)
    true = logits[np.arange(len(labels)), labels]
    usable = np.isfinite(true)
    if not usable.any():
        return math.inf
    return float(np.mean(logsumexp(logits[usable] / temperature, axis=1)
                         - true[usable] / temperature))
