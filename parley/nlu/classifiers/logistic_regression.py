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

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from parley.component import Component
from parley.data.message import Message
from parley.data.training_data import TrainingData
from parley.errors import ConfigError, DataError
from parley.nlu._io import new_from_saved, read_arrays, read_json, write_arrays, write_json
from parley.nlu.classifiers._lbfgs import minimize_lbfgs
from parley.nlu.classifiers._output import LABEL_RANKING_LENGTH, write_intent_rankings
from parley.nlu.features import features_of, stack_sentence_features

if TYPE_CHECKING:
    from typing import Self

    from scipy.sparse import csr_matrix

SOLVERS = ("lbfgs",)


class LogisticRegressionClassifier(Component):
    """Predicts the intent and a ranking of intents from sparse sentence features.

    ``max_iter``, ``solver``, ``tol``, ``random_state`` and ``ranking_length`` are Rasa's
    parameters (``ranking_length: 0`` ranks every intent). Parley adds ``C`` (inverse
    regularisation strength, scikit-learn's default 1.0), ``class_weight`` (``balanced``
    like Rasa, or null) and ``featurizers`` (names of the featurizers whose features to
    use; null uses all). L-BFGS is deterministic, so ``random_state`` changes nothing; it
    is kept for config compatibility.
    """

    name = "LogisticRegressionClassifier"
    prepares_training_data = False
    uses_packages = ("numpy", "scipy")

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
    ) -> None:
        self.max_iter = max_iter
        self.solver = solver
        self.tol = tol
        self.random_state = random_state
        self.ranking_length = ranking_length
        self.C = C
        self.class_weight = class_weight
        self.featurizers = featurizers

    def _validate(self) -> None:
        if self.solver not in SOLVERS:
            raise ConfigError(
                f"{self.name}: solver {self.solver!r} is not available; Parley solves with "
                f"{', '.join(repr(s) for s in SOLVERS)} (the same optimum for this model)."
            )
        if self.class_weight not in ("balanced", None):
            raise ConfigError(f"{self.name}: class_weight must be 'balanced' or null, "
                              f"not {self.class_weight!r}.")
        if not (isinstance(self.max_iter, int) and self.max_iter > 0):
            raise ConfigError(f"{self.name}: max_iter must be a positive whole number.")
        if not self.C > 0:
            raise ConfigError(f"{self.name}: C must be > 0, not {self.C!r}.")

    # --- training ----------------------------------------------------------------------
    def fit(self, training_data: TrainingData) -> Self:
        self._validate()
        examples = [m for m in training_data.intent_examples if m.text]
        if not examples:
            raise ValueError(f"{self.name} needs examples with an intent to learn from.")
        labels = [m.base_intent or "" for m in examples]
        self.classes_ = sorted(set(labels))
        y = np.searchsorted(np.array(self.classes_), np.array(labels))
        x = stack_sentence_features(examples, self.featurizers)
        self.feature_layout_ = [[f.origin, f.dim] for f in features_of(examples[0], self.featurizers)]
        self.coef_, self.intercept_ = self._solve(x, y, len(self.classes_))
        return self

    def finetune(self, training_data: TrainingData, epoch_fraction: float) -> Self:
        """Continue from the learned weights on new data for ``ceil(max_iter × fraction)``
        iterations; the intents and the feature layout must be the old ones."""
        self.check_is_fitted()
        examples = [m for m in training_data.intent_examples if m.text]
        labels = [m.base_intent or "" for m in examples]
        unknown = sorted(set(labels) - set(self.classes_))
        if unknown:
            raise DataError(f"{self.name} cannot learn new intents when finetuning: "
                            f"{', '.join(unknown)}. Train a new model instead.")
        x = stack_sentence_features(examples, self.featurizers)
        if x.shape[1] != self.coef_.shape[0]:
            raise DataError(f"{self.name}: the features changed size since the model was "
                            "trained; finetuning needs the same featurizers.")
        y = np.searchsorted(np.array(self.classes_), np.array(labels))
        start = np.concatenate([self.coef_.ravel(), self.intercept_])
        iterations = max(1, math.ceil(self.max_iter * epoch_fraction))
        self.coef_, self.intercept_ = self._solve(x, y, len(self.classes_), start, iterations)
        return self

    def _solve(self, x: csr_matrix, y: np.ndarray, k: int, start: np.ndarray | None = None,
               max_iter: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        n, d = x.shape
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
        x = stack_sentence_features(messages, self.featurizers)
        layout = [[f.origin, f.dim] for f in features_of(messages[0], self.featurizers)]
        if layout != self.feature_layout_:
            raise ValueError(
                f"{self.name} was trained on features {self.feature_layout_} but the messages "
                f"carry {layout}; process them with the pipeline it was trained in."
            )
        z = x @ self.coef_ + self.intercept_
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return np.asarray(p / p.sum(axis=1, keepdims=True))

    def process(self, messages: list[Message]) -> None:
        self.check_is_fitted()
        if not messages:
            return
        write_intent_rankings(messages, self.predict_proba(messages), self.classes_,
                              self.ranking_length)

    # --- persistence -------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        self.check_is_fitted()
        self.save_params(directory)
        write_json(directory, {"classes": self.classes_, "feature_layout": self.feature_layout_})
        write_arrays(directory, {"coef": self.coef_, "intercept": self.intercept_})

    @classmethod
    def load(cls, directory: Path) -> Self:
        classifier = new_from_saved(cls, directory)
        state = read_json(directory)
        arrays = read_arrays(directory)
        classifier.classes_ = list(state["classes"])
        classifier.feature_layout_ = [[str(o), int(d)] for o, d in state["feature_layout"]]
        classifier.coef_ = arrays["coef"]
        classifier.intercept_ = arrays["intercept"]
        return classifier
