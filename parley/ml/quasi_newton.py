"""OWL-QN: L-BFGS for a smooth objective plus an L1 penalty ``c1 · ‖x‖₁`` (Andrew & Gao, 2007).

This is what CRFsuite's ``lbfgs`` trainer runs (through liblbfgs) when ``c1 > 0``, with
liblbfgs' settings: 6 correction pairs, a backtracking line search that halves the step
and asks for the Armijo decrease ``1e-4 · pg·(x_new - x)``, a first step of ``1/‖d‖``, and
two stopping tests — ``‖pg‖ / max(1, ‖x‖) ≤ epsilon`` and a relative decrease of the
objective below ``delta`` over the last ``past`` iterations. ``pg`` is the pseudo-gradient
of the whole objective, which picks the one-sided derivative that points downhill where a
weight is zero; steps never cross from one orthant to another (a weight that would change
sign becomes zero), which is what makes L1-trained weights sparse. With ``c1 = 0`` it is
plain L-BFGS with the same line search.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]


@dataclass
class Result:
    x: np.ndarray
    fun: float
    n_iter: int
    converged: bool


def pseudo_gradient(x: np.ndarray, g: np.ndarray, c1: float) -> np.ndarray:
    """The gradient of ``f(x) + c1·‖x‖₁``, taking at ``x_i = 0`` the side that descends
    (zero when neither does)."""
    if c1 <= 0:
        return g.copy()
    pg = g + c1 * np.sign(x)
    at_zero = x == 0
    right = g + c1  # derivative when moving up from zero
    left = g - c1  # derivative when moving down from zero
    pg[at_zero] = np.where(right[at_zero] < 0, right[at_zero],
                           np.where(left[at_zero] > 0, left[at_zero], 0.0))
    return pg


def minimize_owlqn(
    objective: Objective,
    x0: np.ndarray,
    *,
    c1: float = 0.0,
    max_iter: int = 100,
    memory: int = 6,
    epsilon: float = 1e-5,
    past: int = 10,
    delta: float = 1e-5,
    max_linesearch: int = 20,
) -> Result:
    """Minimise ``objective(x) + c1·‖x‖₁``; ``objective`` returns the smooth part's value
    and gradient. Returns the last accepted point (a failed line search keeps the previous
    one, as CRFsuite does)."""
    x = x0.astype(np.float64, copy=True)
    smooth, g = objective(x)
    f = smooth + c1 * float(np.abs(x).sum())
    pg = pseudo_gradient(x, g, c1)
    if _converged(x, pg, epsilon):
        return Result(x, f, 0, True)
    history: deque[tuple[np.ndarray, np.ndarray, float]] = deque(maxlen=memory)
    previous_f: deque[float] = deque([f], maxlen=past)
    direction = -pg
    step = 1.0 / max(float(np.linalg.norm(direction)), 1e-300)
    for iteration in range(1, max_iter + 1):
        if c1 > 0:
            # keep only the components that agree in sign with steepest descent
            direction[direction * pg >= 0] = 0.0
        orthant = np.where(x != 0, np.sign(x), -np.sign(pg))
        for _ in range(max_linesearch):
            x_new = x + step * direction
            if c1 > 0:
                x_new[x_new * orthant <= 0] = 0.0
            smooth_new, g_new = objective(x_new)
            f_new = smooth_new + c1 * float(np.abs(x_new).sum())
            if f_new <= f + 1e-4 * float(pg @ (x_new - x)):
                break
            step *= 0.5
        else:
            return Result(x, f, iteration - 1, False)
        s = x_new - x
        y = g_new - g
        x, f, g = x_new, f_new, g_new
        pg = pseudo_gradient(x, g, c1)
        if _converged(x, pg, epsilon):
            return Result(x, f, iteration, True)
        if len(previous_f) == past and abs(previous_f[0] - f) <= delta * abs(f):
            return Result(x, f, iteration, True)
        previous_f.append(f)
        ys = float(y @ s)
        if ys > 1e-10 * float(y @ y):
            history.append((s, y, 1.0 / ys))
        direction = -_two_loop(pg, history)
        step = 1.0
    return Result(x, f, max_iter, False)


def _converged(x: np.ndarray, pg: np.ndarray, epsilon: float) -> bool:
    return float(np.linalg.norm(pg)) <= epsilon * max(1.0, float(np.linalg.norm(x)))


def _two_loop(g: np.ndarray, history: deque[tuple[np.ndarray, np.ndarray, float]]) -> np.ndarray:
    """The L-BFGS approximation of the inverse Hessian applied to ``g``."""
    q = g.copy()
    alphas = []
    for s, y, rho in reversed(history):
        alpha = rho * float(s @ q)
        q -= alpha * y
        alphas.append(alpha)
    if history:
        _, y, rho = history[-1]
        q *= 1.0 / (rho * float(y @ y))
    for (s, y, rho), alpha in zip(history, reversed(alphas), strict=True):
        beta = rho * float(y @ q)
        q += (alpha - beta) * s
    return q
