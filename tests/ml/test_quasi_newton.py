from __future__ import annotations

import numpy as np

from parley.nlu.classifiers._lbfgs import minimize_lbfgs


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
    import pytest

    with pytest.raises(FloatingPointError):
        minimize_lbfgs(lambda x: (float("nan"), x), np.zeros(2))
