"""SklearnIntentClassifier: Rasa's grid-searched support vector machine, saved without pickle.

Training is Rasa's: scikit-learn's ``GridSearchCV`` over ``SVC(probability=True,
class_weight="balanced")`` on the sentence features, picking ``C``, ``gamma`` and the
kernel by ``scoring_function`` over ``max(2, min(max_cross_validation_folds, n // 5))``
stratified folds (``n``: the examples of the rarest intent; Rasa aims for five per fold).

Prediction does not need scikit-learn: the fitted SVC's arrays (support vectors, dual
coefficients, intercepts, Platt parameters) are kept, saved as ``.npz``/JSON, and the
probabilities computed here in numpy exactly as libsvm computes them — kernel values
against the support vectors, one decision value per pair of intents, Platt's sigmoid per
pair, and the pairwise coupling of Wu, Lin & Weng (2004, method 2) into one distribution.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from parley.component import FEATURES, INTENT, NLUComponent
from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.errors import ConfigError
from parley.nlu.classifiers._output import LABEL_RANKING_LENGTH, write_intent_rankings
from parley.nlu.classifiers.calibration import (
    IDENTITY_TOP_MAP, MAX_CALIBRATION_FOLDS, TopMap, calibrated_softmax,
    cross_validated_calibration, paraphrase_groups, saved_temperature, saved_top_map,
)
from parley.nlu.features import features_of, stack_sentence_features
from parley.params import AnyOf, Choice, Constraint, Float, Int, ListOf, NoneOr, Str

if TYPE_CHECKING:
    from typing import Self

    from scipy.sparse import csr_matrix

DEFAULT_C = (1, 2, 5, 10, 20, 100)
DEFAULT_GAMMA = (0.1,)
DEFAULT_KERNELS = ("linear",)
KERNELS = ("linear", "poly", "rbf", "sigmoid")
_POSITIVE = Float(min=0, min_exclusive=True)
# numpy's and scikit-learn's random_state take 0 … 2**32 - 1.
_SEED = NoneOr(Int(0, 2**32 - 1))
_GAMMA = AnyOf(_POSITIVE, Choice("scale", "auto"))
_MIN_PROBABILITY = 1e-7  # libsvm clips each pairwise probability to [1e-7, 1 - 1e-7]


@dataclass
class SVMModel:
    """A fitted multi-class SVC in libsvm's own layout.

    Support vectors are grouped by class (``n_support[c]`` of class ``c``, in class
    order). For the pair of classes ``(i, j)``, ``i < j``, numbered in the order (0,1),
    (0,2), …, (1,2), …, the decision value is ``Σ_{s∈i} dual_coef[j-1, s]·K(x, s) +
    Σ_{s∈j} dual_coef[i, s]·K(x, s) + intercept[p]``; positive votes for ``i``. These are
    libsvm's signs: scikit-learn flips ``dual_coef_``/``intercept_`` for two classes.
    """

    support_vectors: csr_matrix
    dual_coef: np.ndarray  # (n_classes - 1) × n_support_vectors
    intercept: np.ndarray  # one per pair
    n_support: np.ndarray
    prob_a: np.ndarray  # Platt's A per pair
    prob_b: np.ndarray  # Platt's B per pair
    kernel: str
    gamma: float
    degree: int
    coef0: float

    @classmethod
    def from_sklearn(cls, svc: Any) -> SVMModel:
        import warnings

        from scipy.sparse import csr_matrix

        with warnings.catch_warnings():
            # scikit-learn 1.9 deprecates probA_/probB_ with probability=True (gone in 1.11)
            warnings.simplefilter("ignore", FutureWarning)
            prob_a, prob_b = svc.probA_, svc.probB_
        dual = svc.dual_coef_
        dual = np.asarray(dual.toarray() if hasattr(dual, "toarray") else dual, dtype=np.float64)
        intercept = np.asarray(svc.intercept_, dtype=np.float64)
        if len(svc.classes_) == 2:  # undo scikit-learn's sign flip for two classes
            dual, intercept = -dual, -intercept
        return cls(
            csr_matrix(svc.support_vectors_, dtype=np.float64), dual, intercept,
            np.asarray(svc.n_support_, dtype=np.int64),
            np.asarray(prob_a, dtype=np.float64), np.asarray(prob_b, dtype=np.float64),
            str(svc.kernel), float(svc._gamma), int(svc.degree), float(svc.coef0),
        )

    @property
    def n_classes(self) -> int:
        return len(self.n_support)

    def kernel_values(self, x: csr_matrix) -> np.ndarray:
        """``n_samples × n_support_vectors`` kernel between ``x`` and the support vectors."""
        sv = self.support_vectors
        dot = np.asarray((x @ sv.T).toarray(), dtype=np.float64)
        if self.kernel == "linear":
            return dot
        if self.kernel == "poly":
            return np.power(self.gamma * dot + self.coef0, self.degree)
        if self.kernel == "sigmoid":
            return np.tanh(self.gamma * dot + self.coef0)
        x_norms = np.asarray(x.multiply(x).sum(axis=1)).reshape(-1, 1)
        sv_norms = np.asarray(sv.multiply(sv).sum(axis=1)).reshape(1, -1)
        squared = np.maximum(x_norms + sv_norms - 2.0 * dot, 0.0)
        return np.exp(-self.gamma * squared)

    def decision_values(self, x: csr_matrix) -> np.ndarray:
        """libsvm's one-vs-one decision values, ``n_samples × n_pairs``."""
        kernel = self.kernel_values(x)
        starts = np.concatenate([[0], np.cumsum(self.n_support)]).astype(np.int64)
        # by_class[:, c, r] = Σ over class c's support vectors s of dual_coef[r, s]·K(x, s)
        by_class = np.stack([kernel[:, a:b] @ self.dual_coef[:, a:b].T
                             for a, b in zip(starts[:-1], starts[1:], strict=True)], axis=1)
        first, second = np.triu_indices(self.n_classes, 1)  # the pairs in libsvm's order
        return by_class[:, first, second - 1] + by_class[:, second, first] + self.intercept

    def predict_proba(self, x: csr_matrix, chunk: int = 512) -> np.ndarray:
        """Class probabilities, ``n_samples × n_classes``, as libsvm's ``predict_probability``."""
        decision = self.decision_values(x)
        f = decision * self.prob_a + self.prob_b
        # Platt's sigmoid 1 / (1 + exp(f)), written as libsvm writes it for each sign of f
        with np.errstate(over="ignore"):
            pairwise = np.where(f >= 0, np.exp(-f) / (1.0 + np.exp(-f)), 1.0 / (1.0 + np.exp(f)))
        pairwise = np.minimum(np.maximum(pairwise, _MIN_PROBABILITY), 1 - _MIN_PROBABILITY)
        k = self.n_classes
        first, second = np.triu_indices(k, 1)  # the pairs in libsvm's order
        out = np.empty((len(pairwise), k))
        for lo in range(0, len(pairwise), chunk):
            block = pairwise[lo:lo + chunk]
            r = np.zeros((len(block), k, k))
            r[:, first, second] = block
            r[:, second, first] = 1.0 - block
            out[lo:lo + chunk] = couple_pairwise(r)
        return out


def couple_pairwise(r: np.ndarray) -> np.ndarray:
    """Wu, Lin & Weng's method 2, as libsvm's ``multiclass_probability``, for a batch.

    ``r[b, i, j]`` is the probability of class ``i`` against ``j`` for sample ``b``
    (the diagonal is ignored). Like libsvm, each sample is updated class by class
    (Gauss–Seidel) in rounds until its own ``max_t |(Qp)_t - pᵀQp| < 0.005 / k``, at most
    ``max(100, k)`` rounds. libsvm rescales ``p`` and ``Qp`` after every class; here a
    round keeps one running scale instead, which is the same algebra in O(k²) per round.
    """
    n, k = r.shape[:2]
    rt = r.transpose(0, 2, 1)
    q = -rt * r  # Q[t, j] = -r[j, t] · r[t, j] off the diagonal (symmetric)
    diagonal = np.arange(k)
    q[:, diagonal, diagonal] = (rt * rt).sum(axis=2) - rt[:, diagonal, diagonal] ** 2
    if n <= _ONE_BY_ONE:
        return np.array([_couple_one(q[b]) for b in range(n)]).reshape(n, k)
    return _couple_batch(q)


# Up to this many samples, plain Python floats per sample beat numpy over the batch.
_ONE_BY_ONE = 16


def _couple_one(q: np.ndarray) -> np.ndarray:
    k = len(q)
    rows = q.tolist()
    p = np.full(k, 1.0 / k)
    for _ in range(max(100, k)):
        qp = q @ p
        pqp = float(p @ qp)
        if float(np.abs(qp - pqp).max()) < 0.005 / k:
            break
        start, scaled, steps, scale = qp.tolist(), p.tolist(), [0.0] * k, 1.0
        for t in range(k):
            row = rows[t]
            qp_t = (start[t] + sum(steps[s] * row[s] for s in range(t))) / scale
            diff = (pqp - qp_t) / row[t]
            scaled[t] += diff * scale
            pqp = (pqp + diff * (diff * row[t] + 2 * qp_t)) / (1 + diff) / (1 + diff)
            steps[t] = diff * scale
            scale *= 1 + diff
        p = np.array(scaled) / scale
    return p


def _couple_batch(q: np.ndarray) -> np.ndarray:
    n, k = q.shape[:2]
    diag = q[:, np.arange(k), np.arange(k)].copy()
    out = np.full((n, k), 1.0 / k)
    active = np.arange(n)
    p = out.copy()
    for _ in range(max(100, k)):
        qp = np.matmul(q, p[:, :, None])[:, :, 0]
        pqp = (p * qp).sum(axis=1)
        done = np.abs(qp - pqp[:, None]).max(axis=1) < 0.005 / k
        if done.any():  # finished samples leave the batch
            out[active[done]] = p[done]
            going = ~done
            active, p, q, diag, qp, pqp = (active[going], p[going], q[going], diag[going],
                                           qp[going], pqp[going])
            if not len(active):
                return out
        steps = np.zeros_like(p)
        scale = np.ones(len(p))
        for t in range(k):
            qp_t = (qp[:, t] + np.einsum("bs,bs->b", steps[:, :t], q[:, t, :t])) / scale
            diff = (pqp - qp_t) / diag[:, t]
            steps[:, t] = diff * scale
            p[:, t] += steps[:, t]
            pqp = (pqp + diff * (diff * diag[:, t] + 2 * qp_t)) / (1 + diff) / (1 + diff)
            scale *= 1 + diff
        p /= scale[:, None]
    out[active] = p
    return out


class _Scorer(Str):
    """A scikit-learn scorer name (any non-empty text when scikit-learn is missing: then
    fitting says how to install it)."""

    def __init__(self) -> None:
        super().__init__(nonempty=True)

    @staticmethod
    def _names() -> list[str] | None:
        try:
            from sklearn.metrics import get_scorer_names
        except ImportError:
            return None
        return sorted(get_scorer_names())

    def allows(self, value: Any) -> bool:
        names = self._names()
        return super().allows(value) and (names is None or value in names)

    def describe(self) -> str:
        return "the name of a scikit-learn scorer"

    def hint(self, value: Any) -> str:
        import difflib

        close = difflib.get_close_matches(str(value), self._names() or [], n=3)
        return f"Did you mean {' or '.join(repr(c) for c in close)}?" if close else \
            "E.g. f1_weighted (Rasa's default), accuracy, f1_macro."


class SklearnIntentClassifier(NLUComponent):
    """Predicts the intent and a ranking of intents with a grid-searched SVM.

    Rasa's parameters: ``C``, ``gamma`` and ``kernels`` (lists to search; null for Rasa's
    defaults ``[1, 2, 5, 10, 20, 100]``, ``[0.1]``, ``["linear"]``; kernels: linear, poly,
    rbf, sigmoid), ``max_cross_validation_folds``, ``scoring_function`` (a scikit-learn
    scorer name) and ``num_threads`` (parallel grid-search jobs). Parley adds
    ``random_seed`` (the SVC's ``random_state``: its probability calibration shuffles),
    ``ranking_length`` (Rasa reports 10; 0 ranks every intent), ``featurizers`` (whose
    sentence features to use; null uses all, sparse and dense) and ``calibration_folds``:
    libsvm's pairwise probabilities are far from how often the SVM is right (expected
    calibration error 0.17 on snips-small, 0.40 on hwu64-small with Rasa's settings), so
    their logarithms are divided by a temperature, and the top intent's confidence mapped to
    how often it is right, both learned on that many folds of the training data (the SVC
    with the parameters the search chose, trained again on the other folds;
    :mod:`parley.nlu.classifiers.calibration`); 0 leaves them as libsvm gives them.

    When some intent has a single example the folds cannot be stratified; then (and when
    the grid has one point) no search runs and the SVC is fitted with the first value of
    each list. One intent only: it always wins.
    """

    name = "SklearnIntentClassifier"
    prepares_training_data = False
    uses_packages = ("numpy", "scipy", "scikit-learn")
    needs = (FEATURES,)
    provides = (INTENT,)

    param_constraints: ClassVar[dict[str, Constraint]] = {
        "C": NoneOr(AnyOf(_POSITIVE, ListOf(_POSITIVE, min_len=1))),
        "gamma": NoneOr(AnyOf(_GAMMA, ListOf(_GAMMA, min_len=1))),
        "kernels": NoneOr(AnyOf(Choice(*KERNELS), ListOf(Choice(*KERNELS), min_len=1))),
        "max_cross_validation_folds": Int(min=2),
        "scoring_function": _Scorer(),
        # scikit-learn's n_jobs: -1 uses every core; the search runs at most one job per
        # core whatever is asked (see _jobs).
        "num_threads": AnyOf(Int(1, 1024), Choice(-1)),
        "random_seed": _SEED,
        "ranking_length": Int(min=0),
        "featurizers": NoneOr(ListOf(Str(nonempty=True))),
        "calibration_folds": AnyOf(Choice(0), Int(2, MAX_CALIBRATION_FOLDS)),
    }

    def __init__(
        self,
        *,
        C: list[float] | None = None,  # noqa: N803 - Rasa's name
        gamma: list[float | str] | None = None,
        kernels: list[str] | None = None,
        max_cross_validation_folds: int = 5,
        scoring_function: str = "f1_weighted",
        num_threads: int = 1,
        random_seed: int | None = 42,
        ranking_length: int = LABEL_RANKING_LENGTH,
        featurizers: list[str] | None = None,
        calibration_folds: int = 3,
    ) -> None:
        self.C = C
        self.gamma = gamma
        self.kernels = kernels
        self.max_cross_validation_folds = max_cross_validation_folds
        self.scoring_function = scoring_function
        self.num_threads = num_threads
        self.random_seed = random_seed
        self.ranking_length = ranking_length
        self.featurizers = featurizers
        self.calibration_folds = calibration_folds

    def _grid(self) -> dict[str, list[Any]]:
        def as_list(value: Any, default: tuple[Any, ...]) -> list[Any]:
            if value is None:
                return list(default)
            return list(value) if isinstance(value, (list, tuple)) else [value]

        return {"C": as_list(self.C, DEFAULT_C), "gamma": as_list(self.gamma, DEFAULT_GAMMA),
                "kernel": as_list(self.kernels, DEFAULT_KERNELS)}

    def _jobs(self) -> int:
        """Parallel grid-search jobs: more than the cores only spawns idle processes (a
        thousand of them take minutes to start), so at most one per core."""
        import os

        cores = os.cpu_count() or 1
        return cores if self.num_threads == -1 else min(self.num_threads, cores)

    def _folds(self, counts: np.ndarray) -> int:
        return max(2, min(self.max_cross_validation_folds, int(counts.min()) // 5))

    # --- training ----------------------------------------------------------------------
    def fit(self, training_data: TrainingData) -> Self:
        self.check_params()
        grid = self._grid()
        examples = [m for m in training_data.intent_examples if m.text]
        if not examples:
            raise ValueError(f"{self.name} needs examples with an intent to learn from.")
        labels = [m.base_intent or "" for m in examples]
        self.classes_ = sorted(set(labels))
        x = stack_sentence_features(examples, self.featurizers)
        self.feature_layout_ = [[f.origin, f.dim] for f in features_of(examples[0], self.featurizers)]
        self.best_params_: dict[str, Any] = {}
        self.svm_: SVMModel | None = None
        self.temperature_, self.top_map_ = 1.0, IDENTITY_TOP_MAP
        if len(self.classes_) == 1:
            return self
        y = np.searchsorted(np.array(self.classes_), np.array(labels))
        self.svm_ = self._search(x, y, grid)
        sparse = [f.is_sparse for f in features_of(examples[0], self.featurizers)]
        self.temperature_, self.top_map_ = self._calibrate(x, y, sparse)
        return self

    def _calibrate(self, x: csr_matrix, y: np.ndarray,
                   sparse: list[bool]) -> tuple[float, TopMap]:
        """The temperature and top-intent map of out-of-fold log-probabilities (see the
        calibration module)."""
        if not self.calibration_folds:
            return 1.0, IDENTITY_TOP_MAP
        import warnings

        from sklearn.svm import SVC

        n_classes = len(self.classes_)

        def score_fold(train: np.ndarray, held_out: np.ndarray) -> np.ndarray:
            present = np.unique(y[train])
            svc = SVC(probability=True, class_weight="balanced", random_state=self.random_seed,
                      **self.best_params_)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                svc.fit(x[train], np.searchsorted(present, y[train]))
            logits = np.full((len(held_out), n_classes), -np.inf)
            probabilities = SVMModel.from_sklearn(svc).predict_proba(x[held_out])
            logits[:, present] = np.log(np.maximum(probabilities, _MIN_PROBABILITY))
            return logits

        seed = 0 if self.random_seed is None else self.random_seed
        groups = paraphrase_groups(x, y, [d for _, d in self.feature_layout_], sparse)
        return cross_validated_calibration(score_fold, y, groups, self.calibration_folds, seed)

    def _search(self, x: csr_matrix, y: np.ndarray, grid: dict[str, list[Any]]) -> SVMModel:
        import warnings

        try:
            from sklearn.model_selection import GridSearchCV
            from sklearn.svm import SVC
        except ImportError as error:
            raise ConfigError(
                f"{self.name} trains with scikit-learn, which is not installed: "
                "pip install 'parley[sklearn]'"
            ) from error
        svc = SVC(C=1, probability=True, class_weight="balanced", random_state=self.random_seed)
        counts = np.bincount(y)
        with warnings.catch_warnings():
            # scikit-learn warns a lot on small data (ill-defined F-scores); Rasa hides it too
            warnings.simplefilter("ignore")
            if counts.min() < 2 or math.prod(len(v) for v in grid.values()) == 1:
                params = {key: values[0] for key, values in grid.items()}
                self.best_params_ = dict(params)
                return SVMModel.from_sklearn(svc.set_params(**params).fit(x, y))
            search = GridSearchCV(svc, param_grid=[grid], cv=self._folds(counts),
                                  scoring=self.scoring_function, n_jobs=self._jobs())
            search.fit(x, y)
            self.best_params_ = dict(search.best_params_)
            return SVMModel.from_sklearn(search.best_estimator_)

    # --- prediction --------------------------------------------------------------------
    def _features(self, messages: list[Message]) -> csr_matrix:
        x = stack_sentence_features(messages, self.featurizers)
        layout = [[f.origin, f.dim] for f in features_of(messages[0], self.featurizers)]
        if layout != self.feature_layout_:
            raise ValueError(
                f"{self.name} was trained on features {self.feature_layout_} but the messages "
                f"carry {layout}; process them with the pipeline it was trained in."
            )
        return x

    def decision_function(self, messages: list[Message]) -> np.ndarray:
        """libsvm's one-vs-one decision values, one column per pair of intents."""
        self.check_is_fitted()
        if self.svm_ is None:
            return np.zeros((len(messages), 0))
        return self.svm_.decision_values(self._features(messages))

    def predict_proba(self, messages: list[Message]) -> np.ndarray:
        """Intent probabilities, one row per message, columns in ``classes_`` order."""
        self.check_is_fitted()
        if self.svm_ is None:
            return np.ones((len(messages), 1))
        probabilities = self.svm_.predict_proba(self._features(messages))
        if self.temperature_ == 1.0 and self.top_map_ == IDENTITY_TOP_MAP:
            return probabilities
        return calibrated_softmax(np.log(np.maximum(probabilities, _MIN_PROBABILITY)),
                                  self.temperature_, self.top_map_)

    def process(self, messages: list[Message]) -> None:
        self.check_is_fitted()
        if not messages:
            return
        write_intent_rankings(messages, self.predict_proba(messages), self.classes_,
                              self.ranking_length)

    # --- persistence -------------------------------------------------------------------
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state: dict[str, Any] = {"classes": self.classes_, "feature_layout": self.feature_layout_,
                                 "best_params": self.best_params_, "svm": None,
                                 "temperature": self.temperature_,
                                 "top_calibration": list(self.top_map_)}
        arrays: dict[str, np.ndarray] = {}
        if self.svm_ is not None:
            svm = self.svm_
            sv = svm.support_vectors
            state["svm"] = {"kernel": svm.kernel, "gamma": svm.gamma, "degree": svm.degree,
                            "coef0": svm.coef0, "support_vectors_shape": list(sv.shape)}
            arrays = {"sv_data": sv.data, "sv_indices": sv.indices, "sv_indptr": sv.indptr,
                      "dual_coef": svm.dual_coef, "intercept": svm.intercept,
                      "n_support": svm.n_support, "prob_a": svm.prob_a, "prob_b": svm.prob_b}
        return state, arrays

    def _set_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        from scipy.sparse import csr_matrix

        self.classes_ = [str(c) for c in state["classes"]]
        self.feature_layout_ = [[str(o), int(d)] for o, d in state["feature_layout"]]
        self.best_params_ = dict(state["best_params"])
        self.temperature_ = saved_temperature(state, self.name)
        self.top_map_ = saved_top_map(state, self.name)
        self.svm_ = None
        saved = state["svm"]
        if saved is not None:
            shape = tuple(int(n) for n in saved["support_vectors_shape"])
            svm = SVMModel(
                csr_matrix((arrays["sv_data"], arrays["sv_indices"], arrays["sv_indptr"]),
                           shape=shape),
                arrays["dual_coef"], arrays["intercept"], arrays["n_support"].astype(np.int64),
                arrays["prob_a"], arrays["prob_b"], str(saved["kernel"]),
                float(saved["gamma"]), int(saved["degree"]), float(saved["coef0"]),
            )
            _check(svm, len(self.classes_))
            self.svm_ = svm


def _check(svm: SVMModel, n_classes: int) -> None:
    n_pairs = n_classes * (n_classes - 1) // 2
    n_sv = svm.support_vectors.shape[0]
    if (svm.kernel not in KERNELS or len(svm.n_support) != n_classes
            or int(svm.n_support.sum()) != n_sv
            or svm.dual_coef.shape != (n_classes - 1, n_sv)
            or not len(svm.intercept) == len(svm.prob_a) == len(svm.prob_b) == n_pairs):
        raise ValueError("the saved arrays do not fit together")
