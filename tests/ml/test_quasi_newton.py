"""L-BFGS and OWL-QN, and the curvature history they share."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from parley.ml.quasi_newton import CurvatureHistory, minimize_lbfgs, minimize_owlqn
from parley.stopping import StopRequested, under_flag


def test_should_find_the_minimum_of_an_ill_conditioned_quadratic() -> None:
    scales = np.array([1.0, 10.0, 100.0, 1000.0])
    target = np.array([1.0, -2.0, 3.0, -4.0])

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        diff = x - target
        return float(0.5 * np.sum(scales * diff**2)), scales * diff

    result = minimize_lbfgs(objective, np.zeros(4), max_iter=200, gtol=1e-8)
    assert result.converged
    assert np.allclose(result.x, target, atol=1e-6)


def test_should_stop_after_max_iter() -> None:
    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        return float(np.sum(np.cosh(x))), np.sinh(x)

    result = minimize_lbfgs(objective, np.full(3, 5.0), max_iter=2, gtol=0.0)
    assert result.n_iter == 2


def test_a_step_that_overflows_should_be_shortened_not_taken() -> None:
    """From x = -20 the curvature looks nil, so the second step is huge and the objective
    overflows to inf - inf = NaN there: that step must be cut back, not taken or looped on."""
    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        with np.errstate(over="ignore", invalid="ignore"):
            value = np.exp(x) - 0.5 * np.exp(x) - 400.0 * x
            return float(value.sum()), 0.5 * np.exp(x) - 400.0

    result = minimize_lbfgs(objective, np.array([-20.0]), max_iter=200, gtol=1e-6)
    assert result.converged
    assert np.allclose(result.x, np.log(800.0))


def test_an_objective_not_finite_at_the_start_should_raise() -> None:
    with pytest.raises(FloatingPointError):
        minimize_lbfgs(lambda x: (float("nan"), x), np.zeros(2))


def test_owlqn_should_find_the_soft_thresholded_minimum() -> None:
    target = np.array([3.0, -0.05, 0.5, -2.0, 0.0])

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        return 0.5 * float((x - target) @ (x - target)), x - target

    result = minimize_owlqn(objective, np.zeros(5), c1=0.1, max_iter=100)
    expected = np.sign(target) * np.maximum(np.abs(target) - 0.1, 0.0)
    assert np.allclose(result.x, expected, atol=1e-4)
    assert result.x[1] == 0.0 and result.x[4] == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_history_should_meet_the_secant_condition_of_its_newest_pair(dtype) -> None:
    """Whatever came before, the approximation maps the newest ``y`` to its ``s`` (BFGS's
    secant condition), in the precision the pairs are kept in."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    hessian = a @ a.T + 6 * np.eye(6)
    history = CurvatureHistory(memory=3, dtype=dtype)
    for _ in range(5):  # more pairs than it keeps: the oldest drop out
        s = rng.normal(size=6)
        assert history.add(s, hessian @ s)
    assert len(history) == 3
    assert history.apply(np.ones(6)).dtype == dtype
    tolerance = 1e-4 if dtype == np.float32 else 1e-10
    assert np.allclose(history.apply(hessian @ s), s, rtol=tolerance, atol=tolerance)


def test_history_should_refuse_a_pair_without_positive_curvature() -> None:
    history = CurvatureHistory(memory=4)
    assert not history.add(np.array([1.0, 0.0]), np.array([-1.0, 0.5]))
    assert len(history) == 0
    g = np.array([2.0, -3.0])
    assert np.array_equal(history.apply(g), g)  # no pairs: the gradient itself


def test_should_end_once_its_run_asks_to_stop() -> None:
    flag = threading.Event()
    flag.set()

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        return float(np.sum(np.cosh(x))), np.sinh(x)

    with pytest.raises(StopRequested):
        under_flag(flag, minimize_lbfgs)(objective, np.full(3, 5.0), max_iter=50, gtol=0.0)
