"""LogisticRegressionClassifier: multinomial L2 logistic regression on sparse features.

Like Rasa's (which wraps scikit-learn with ``class_weight="balanced"``), it learns from the
sentence features of every featurizer before it, here solved directly with L-BFGS on the
weighted, regularised cross-entropy:

    minimise  1/S · Σ_i w_i · CE(softmax(x_i W + b), y_i)  +  1/(2·C·S) · ‖W‖²

with ``w_i`` the weight of example i's class and ``S = Σ w_i`` (the scaling keeps ``tol``
meaningful whatever the data size; the optimum is the same as scikit-learn's).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from itertools import accumulate
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np

from parley.component import FEATURES, INTENT, Finetunable, NLUComponent, finetune_epochs
from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.errors import ConfigError, DataError, ModelArchiveError
from parley.ml import linear_kernel
from parley.ml.quasi_newton import minimize_lbfgs
from parley.nlu.classifiers._output import LABEL_RANKING_LENGTH, write_intent_rankings
from parley.nlu.classifiers.calibration import (
    IDENTITY_TOP_MAP, MAX_CALIBRATION_FOLDS, calibrated_softmax, calibration_of,
    fit_temperature, held_out_log_loss, out_of_fold_logits, paraphrase_groups,
    saved_temperature, saved_top_map,
)
from parley.nlu.classifiers.tfidf import (  # noqa: F401 - scale_dense_blocks: public here too
    inverse_document_frequency, scale_dense_blocks, tfidf_row, tfidf_weights,
)
from parley.nlu.features import features_of, stack_sentence_features
from parley.params import AnyOf, Bool, Choice, Constraint, Float, Hint, Int, ListOf, NoneOr, Str

if TYPE_CHECKING:
    from typing import Self

    from scipy.sparse import csr_matrix

SOLVERS = ("lbfgs",)
# Folds of the calibration's on which the candidate dense_norm lengths are compared: two
# of five already chose as all five did on the -small sets (docs/lab-notes/calibration.md),
# and each fold is one more training per candidate.
SCREENING_FOLDS = 2


class _Learned:
    """Marks "the dense_norm the classifier learned" as a default argument."""


_LEARNED = _Learned()
# L-BFGS stops when it converges, so a generous cap; a billion iterations would not
# finish, and only a slip of the keyboard asks for them.
MAX_ITERATIONS = 1_000_000


class LogisticRegressionClassifier(NLUComponent, Finetunable):
    """Predicts the intent and a ranking of intents from sparse sentence features.

    ``max_iter``, ``solver``, ``tol``, ``random_state`` and ``ranking_length`` are Rasa's
    parameters (``ranking_length: 0`` ranks every intent). Parley adds ``C`` (inverse
    regularisation strength, scikit-learn's default 1.0), ``class_weight`` (``balanced``
    like Rasa, or null), ``featurizers`` (names of the featurizers whose features to
    use; null uses all), ``tfidf`` (see :func:`tfidf_weights`; off, as Rasa, by default) and
    ``dense_norm`` (see :func:`scale_dense_blocks`; null, the default, leaves dense features
    as their featurizer made them; a list of lengths has the calibration's folds choose one,
    see :meth:`_choose_dense_norm`) and ``calibration_folds``: the confidences are calibrated
    by a temperature and a map of the top intent's confidence, both learned with that many
    cross-validation folds of the training data (:mod:`parley.nlu.classifiers.calibration`;
    it trains the classifier that many times more); 0 leaves them as the regularised model
    gives them, which is far too low.
    L-BFGS is deterministic, so ``random_state`` changes nothing; it is kept for config
    compatibility.
    """

    name = "LogisticRegressionClassifier"
    prepares_training_data = False
    uses_packages = ("numpy", "scipy")
    needs = (FEATURES,)
    provides = (INTENT,)

    param_constraints: ClassVar[dict[str, Constraint]] = {
        "max_iter": Int(1, MAX_ITERATIONS),
        "solver": Hint(Choice(*SOLVERS), "Parley solves with lbfgs (the same optimum for "
                       "this model as scikit-learn's other solvers, e.g. liblinear)."),
        "tol": Float(min=0, min_exclusive=True),
        "random_state": NoneOr(Int(0, 2**32 - 1)),  # numpy's seeds: 0 … 2**32 - 1
        "ranking_length": Int(min=0),
        "C": Float(min=0, min_exclusive=True),
        "class_weight": NoneOr(Choice("balanced")),
        "featurizers": NoneOr(ListOf(Str(nonempty=True))),
        "tfidf": Bool(),
        "dense_norm": NoneOr(AnyOf(Float(min=0, min_exclusive=True),
                                   ListOf(Float(min=0, min_exclusive=True), min_len=1))),
        "calibration_folds": AnyOf(Choice(0), Int(2, MAX_CALIBRATION_FOLDS)),
    }

    def __init__(
        self,
        *,
        max_iter: int = 100,
        solver: str = "lbfgs",
        tol: float = 1e-4,
        random_state: int | None = 42,
        ranking_length: int = LABEL_RANKING_LENGTH,
        C: float = 1.0,  # noqa: N803 - scikit-learn's name
        class_weight: str | None = "balanced",
        featurizers: list[str] | None = None,
        tfidf: bool = False,
        dense_norm: float | list[float] | None = None,
        calibration_folds: int = 5,
    ) -> None:
        self.max_iter = max_iter
        self.solver = solver
        self.tol = tol
        self.random_state = random_state
        self.ranking_length = ranking_length
        self.C = C
        self.class_weight = class_weight
        self.featurizers = featurizers
        self.tfidf = tfidf
        self.dense_norm = dense_norm
        self.calibration_folds = calibration_folds

    # --- training ----------------------------------------------------------------------
    def fit(self, training_data: TrainingData) -> Self:
        self.check_params()
        examples = [m for m in training_data.intent_examples if m.text]
        if not examples:
            raise ValueError(f"{self.name} needs examples with an intent to learn from.")
        labels = [m.base_intent or "" for m in examples]
        self.classes_ = sorted(set(labels))
        y = np.searchsorted(np.array(self.classes_), np.array(labels))
        x = stack_sentence_features(examples, self.featurizers)
        records = features_of(examples[0], self.featurizers)
        self.feature_layout_ = [[f.origin, f.dim] for f in records]
        sparse = [f.is_sparse for f in records]
        self.idf_ = None
        if self.tfidf:
            self.idf_ = inverse_document_frequency(x, [f.dim for f in records], sparse)
        candidates = self._dense_norm_candidates(sparse)
        if len(candidates) > 1 and not self.calibration_folds:
            raise ConfigError(f"{self.name}: a list of dense_norm values is chosen from by "
                              "the calibration's cross-validation folds; set "
                              "calibration_folds (2 or more) or give one dense_norm.")
        groups = paraphrase_groups(x, y, [f.dim for f in records], sparse) \
            if self.calibration_folds else None
        self.dense_norm_, out_of_fold = self._choose_dense_norm(x, y, sparse, groups,
                                                                candidates)
        x = self._weighted(x, sparse)
        self.coef_, self.intercept_ = self._solve(x, y, len(self.classes_))
        self.temperature_, self.top_map_ = (1.0, IDENTITY_TOP_MAP) if out_of_fold is None \
            else calibration_of(out_of_fold, y)
        return self

    def _dense_norm_candidates(self, sparse: list[bool]) -> list[float | None]:
        """The lengths ``dense_norm`` offers; one (the first) when there is no dense block
        to scale, since the others would train the same classifier again."""
        values = self.dense_norm if isinstance(self.dense_norm, list) else [self.dense_norm]
        candidates: list[float | None] = [None if v is None else float(v) for v in values]
        return candidates if not all(sparse) else candidates[:1]

    def _choose_dense_norm(self, x: csr_matrix, y: np.ndarray, sparse: list[bool],
                           groups: np.ndarray | None, candidates: list[float | None]
                           ) -> tuple[float | None, np.ndarray | None]:
        """The dense blocks' length, and the out-of-fold logits the calibration is fitted
        on (None without calibration folds).

        With several candidate lengths, each is trained on the first
        :data:`SCREENING_FOLDS` of the calibration's grouped folds, and the one whose
        held-out predictions there are the most likely after their own temperature
        (:func:`held_out_log_loss`, a proper score) wins, the first listed on a tie; the
        winner then scores the remaining folds, so its calibration is the one it would have
        had alone. How much a sentence vector should weigh against the tf-idf blocks
        depends on the training set: on snips-small (140 examples of 7 intents, titles and
        names) the held-out likelihood is best at length 1, on hwu64-small and
        banking77-small at 2, on two folds as on five (docs/lab-notes/calibration.md).
        Each candidate but the winner trains the classifier :data:`SCREENING_FOLDS` times
        more."""
        if self.calibration_folds == 0 or groups is None:
            return candidates[0], None
        seed = 0 if self.random_state is None else self.random_state
        k = self.calibration_folds
        screened = [] if len(candidates) > 1 else [(0.0, candidates[0], 0)]
        screen = min(SCREENING_FOLDS, k)
        by_candidate: dict[int, np.ndarray] = {}
        for index, candidate in enumerate(candidates if len(candidates) > 1 else []):
            scorer = self._fold_scorer(self._weighted(x, sparse, candidate), y)
            logits = out_of_fold_logits(scorer, y, groups, k, seed, rounds=screen)
            if logits is None:
                return candidates[0], None
            by_candidate[index] = logits
            loss = held_out_log_loss(logits, y, fit_temperature(logits, y))
            screened.append((loss, candidate, index))
        _, winner, index = min(screened, key=lambda entry: (entry[0], entry[2]))
        scorer = self._fold_scorer(self._weighted(x, sparse, winner), y)
        if index not in by_candidate:
            return winner, out_of_fold_logits(scorer, y, groups, k, seed)
        logits = by_candidate[index]
        if screen < k:
            rest = out_of_fold_logits(scorer, y, groups, k, seed, rounds=k - screen,
                                      first=screen)
            if rest is not None:
                scored = np.isfinite(rest).any(axis=1)
                logits[scored] = rest[scored]
        return winner, logits

    def _fold_scorer(self, x: csr_matrix, y: np.ndarray
                     ) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """``score_fold`` for the calibration module: the classifier trained from scratch
        on some rows (as the final model is), its logits for the others over all classes
        (``-inf`` for a class absent from the fold's training rows). The final model is
        solved after the folds, so ``n_iter_`` ends as its own."""
        n_classes = len(self.classes_)

        def score_fold(train: np.ndarray, held_out: np.ndarray) -> np.ndarray:
            present = np.unique(y[train])
            coef, intercept = self._solve(x[train], np.searchsorted(present, y[train]),
                                          len(present))
            logits = np.full((len(held_out), n_classes), -np.inf)
            logits[:, present] = x[held_out] @ coef + intercept
            return logits

        return score_fold

    def finetune(self, training_data: TrainingData, epoch_fraction: float) -> Self:
        """Continue from the learned weights on new data for ``ceil(max_iter × fraction)``
        iterations; the intents and the feature layout must be the old ones. The
        calibration (temperature and top-intent map) stays the first training's: a few
        epochs on new data move the weights little, and calibrating again would train the
        classifier ``calibration_folds`` times more."""
        self.check_is_fitted()
        examples = [m for m in training_data.intent_examples if m.text]
        labels = [m.base_intent or "" for m in examples]
        unknown = sorted(set(labels) - set(self.classes_))
        if unknown:
            raise DataError(f"{self.name} cannot learn new intents when finetuning: "
                            f"{', '.join(unknown)}. Train a new model instead.")
        x = stack_sentence_features(examples, self.featurizers)
        records = features_of(examples[0], self.featurizers)
        layout = [[f.origin, f.dim] for f in records]
        if layout != self.feature_layout_:
            raise DataError(f"{self.name}: the features changed since the model was trained "
                            f"({self.feature_layout_} → {layout}); finetuning needs the same "
                            "featurizers, in the same order.")
        sparse = [f.is_sparse for f in records]
        x = self._weighted(x, sparse)  # the first training's idf: the weights expect it
        y = np.searchsorted(np.array(self.classes_), np.array(labels))
        start = np.concatenate([self.coef_.ravel(), self.intercept_])
        iterations = finetune_epochs(self.max_iter, epoch_fraction)
        self.coef_, self.intercept_ = self._solve(x, y, len(self.classes_), start, iterations)
        return self

    def _solve(self, x: csr_matrix, y: np.ndarray, k: int, start: np.ndarray | None = None,
               max_iter: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        n, d = x.shape
        if not np.isfinite(x.data).all():
            origins = ", ".join(dict.fromkeys(str(origin) for origin, _ in self.feature_layout_))
            raise DataError(f"{self.name}: the features it learns from ({origins}) hold NaN or "
                            "infinite values; check the featurizers that made them.")
        if k == 1:  # one intent: nothing to learn, it always wins
            self.n_iter_ = 0
            return np.zeros((d, 1)), np.zeros(1)
        counts = np.bincount(y, minlength=k)
        if self.class_weight == "balanced":
            weights = (n / (k * counts))[y]
        else:
            weights = np.ones(n)
        weights = weights / weights.sum()
        onehot = np.zeros((n, k))
        onehot[np.arange(n), y] = 1.0
        # The sparse products dominate the cost; in float32 they take half the time or
        # less (counts are exact in float32), the optimiser itself stays in float64.
        x32 = x.astype(np.float32)
        xt32 = x32.T.tocsr()
        alpha = 1.0 / (self.C * n)  # per-example scale of the penalty, as in 1/(C·S)

        def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w = theta[: d * k].reshape(d, k)
            b = theta[d * k:]
            z = (x32 @ w.astype(np.float32)).astype(np.float64) + b
            z -= z.max(axis=1, keepdims=True)
            exp = np.exp(z)
            total = exp.sum(axis=1, keepdims=True)
            log_p = z - np.log(total)
            loss = -float(weights @ (log_p * onehot).sum(axis=1)) + 0.5 * alpha * float(w.ravel() @ w.ravel())
            residual = (exp / total - onehot) * weights[:, None]
            grad_w = (xt32 @ residual.astype(np.float32)).astype(np.float64) + alpha * w
            grad_b = residual.sum(axis=0)
            return loss, np.concatenate([grad_w.ravel(), grad_b])

        result = minimize_lbfgs(
            loss_and_grad, np.zeros(d * k + k) if start is None else start,
            max_iter=self.max_iter if max_iter is None else max_iter, gtol=self.tol,
        )
        self.n_iter_ = result.n_iter
        theta = result.x
        return theta[: d * k].reshape(d, k).copy(), theta[d * k:].copy()

    # --- prediction --------------------------------------------------------------------
    def predict_proba(self, messages: list[Message]) -> np.ndarray:
        """Class probabilities, one row per message, columns in ``classes_`` order."""
        self.check_is_fitted()
        records = features_of(messages[0], self.featurizers)
        if len(messages) == 1 and records \
                and [[f.origin, f.dim] for f in records] == self.feature_layout_:
            return calibrated_softmax(self._logits_of_one(records)[None, :], self.temperature_,
                                      self.top_map_)
        x = stack_sentence_features(messages, self.featurizers)
        layout = [[f.origin, f.dim] for f in records]
        if layout != self.feature_layout_:
            raise ValueError(
                f"{self.name} was trained on features {self.feature_layout_} but the messages "
                f"carry {layout}; process them with the pipeline it was trained in."
            )
        z = self._weighted(x, [f.is_sparse for f in records]) @ self.coef_ + self.intercept_
        return calibrated_softmax(z, self.temperature_, self.top_map_)

    def _logits_of_one(self, records: list[Any]) -> np.ndarray:
        """One message's logits from its sentence rows: what :meth:`predict_proba`
        computes for a batch (blocks side by side, tf-idf, dense blocks scaled, the
        product), on the row's arrays — scipy's conversions cost more than the arithmetic
        for one row. Dense blocks (sentence embeddings) are one product with their slice
        of the weights."""
        starts = list(accumulate((f.dim for f in records), initial=0))
        out: np.ndarray = self.intercept_.astype(np.float64, copy=True)
        sparse = [(f, start) for f, start in zip(records, starts, strict=False) if f.is_sparse]
        if sparse and linear_kernel.AVAILABLE and self.coef_.flags.c_contiguous:
            for record, start in sparse:  # each block weighed and multiplied in one call
                linear_kernel.tfidf_dot(*record.sentence_entries(), start, self.idf_,
                                        self.coef_, out)
        elif sparse:
            rows = [f.sentence_entries() for f, _ in sparse]
            data = np.concatenate([values for values, _ in rows]).astype(np.float64,
                                                                         copy=False)
            cols = np.concatenate([columns.astype(np.int64) + start
                                   for (_, columns), (_, start) in zip(rows, sparse, strict=True)])
            if self.idf_ is not None:
                block = np.repeat(np.arange(len(rows)), [len(values) for values, _ in rows])
                data = tfidf_row(data, cols, block, len(rows), self.idf_)
            if len(cols):
                out += np.add.reduce(self.coef_.take(cols, axis=0) * data[:, None], axis=0)
        for record, start in zip(records, starts, strict=False):
            if record.is_sparse:
                continue
            row = np.asarray(record.sentence, dtype=np.float64).reshape(-1)
            norm = float(np.sqrt(row @ row))
            if self.dense_norm_ is not None and norm > 0:
                row = row * (self.dense_norm_ / norm)
            out += row @ self.coef_[start:start + record.dim]
        return out

    def _weighted(self, x: csr_matrix, sparse: list[bool],
                  dense_norm: float | None | _Learned = _LEARNED) -> csr_matrix:
        """``x`` as the classifier learns from it: tf-idf weighted when ``tfidf`` is on,
        dense blocks scaled to ``dense_norm`` (the learned one unless given) when it is set
        (``sparse`` flags each block)."""
        dims = [cast(int, dim) for _, dim in self.feature_layout_]
        length = self.dense_norm_ if isinstance(dense_norm, _Learned) else dense_norm
        if self.idf_ is not None:
            x = tfidf_weights(x, self.idf_, dims)
        if length is not None:
            x = scale_dense_blocks(x, dims, sparse, float(length))
        return x

    def process(self, messages: list[Message]) -> None:
        self.check_is_fitted()
        if not messages:
            return
        write_intent_rankings(messages, self.predict_proba(messages), self.classes_,
                              self.ranking_length)

    # --- persistence -------------------------------------------------------------------
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        arrays = {"coef": self.coef_, "intercept": self.intercept_}
        if self.idf_ is not None:
            arrays["idf"] = self.idf_
        return {"classes": self.classes_, "feature_layout": self.feature_layout_,
                "temperature": self.temperature_,
                "top_calibration": list(self.top_map_), "dense_norm": self.dense_norm_}, arrays

    def _set_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self.classes_ = [str(c) for c in state["classes"]]
        self.feature_layout_ = [[str(o), int(d)] for o, d in state["feature_layout"]]
        self.coef_ = arrays["coef"]
        self.intercept_ = arrays["intercept"]
        self.idf_ = arrays.get("idf")
        self.temperature_ = saved_temperature(state, self.name)
        self.top_map_ = saved_top_map(state, self.name)
        self.dense_norm_ = self._saved_dense_norm(state)
        if self.tfidf != (self.idf_ is not None) or (
                self.idf_ is not None and self.idf_.shape != (self.coef_.shape[0],)):
            raise ModelArchiveError(f"{self.name}: the saved model's tf-idf weights do not match "
                                    "its settings or its size; the archive is damaged.")

    def _saved_dense_norm(self, state: Mapping[str, Any]) -> float | None:
        """The dense blocks' length the saved model learned with; archives from before it
        was chosen from a list carry none and used the configured one."""
        if "dense_norm" not in state:
            if isinstance(self.dense_norm, list):
                raise ModelArchiveError(f"{self.name}: the saved model does not say which of "
                                        f"the dense_norm values {self.dense_norm} it learned "
                                        "with; train again.")
            return None if self.dense_norm is None else float(self.dense_norm)
        saved = state["dense_norm"]
        if saved is None:
            return None
        if isinstance(saved, bool) or not isinstance(saved, (int, float)) \
                or not math.isfinite(saved) or saved <= 0:
            raise ModelArchiveError(f"{self.name}: the saved model's dense_norm ({saved!r}) is "
                                    "not a positive number; the archive is damaged.")
        return float(saved)
