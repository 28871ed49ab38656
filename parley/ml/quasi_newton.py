"""Quasi-Newton minimisers in numpy: L-BFGS, and OWL-QN for an added L1 penalty.

Both keep the last few curvature pairs ``(s, y)`` and turn a gradient into a search direction
by the two-loop recursion; that core — which pairs to keep, in what precision, and the
recursion — is :class:`CurvatureHistory`, written once. What differs is deliberate:

- :func:`minimize_lbfgs` (LogisticRegressionClassifier) is tuned for speed on smooth convex
  problems of up to a million weights: pairs kept in float32 (half the memory the recursion
  streams through), a line search that interpolates a quadratic and cuts back a step that
  overflows, and stops on the gradient or a stalled decrease. scipy's L-BFGS-B spends most of
  its time on bookkeeping for bounds these problems do not have (~25 ms a step at half a
  million weights), and ``scipy.optimize`` is slow to import.
- :func:`minimize_owlqn` (CRFEntityExtractor) reproduces what CRFsuite's ``lbfgs`` trainer
  runs through liblbfgs, so that Parley's CRF learns what Rasa's does: float64 pairs, a line
  search that halves the step and never leaves the current orthant, liblbfgs' stopping tests.

The line searches stay two: each is part of what its caller matches (speed and overflow
safety; CRFsuite's weights), and sharing one would change one caller's results. These are
generic numerics with no torch, in :mod:`parley.ml` beside the other training machinery,
so that any layer above may use them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from parley.stopping import check_stop

Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]


@dataclass
class Result:
    x: np.ndarray
    fun: float
    n_iter: int
    converged: bool


class CurvatureHistory:
    """The last ``memory`` curvature pairs ``(s, y)`` (stored as ``dtype``) and the L-BFGS
    inverse-Hessian approximation they define."""

    def __init__(self, memory: int, dtype: type[np.floating] = np.float64) -> None:
        self.dtype = dtype
        self._pairs: deque[tuple[np.ndarray, np.ndarray, float]] = deque(maxlen=memory)

    def __len__(self) -> int:
        return len(self._pairs)

    def clear(self) -> None:
        self._pairs.clear()

    def add(self, s: np.ndarray, y: np.ndarray) -> bool:
        """Keep the step ``s`` and gradient change ``y`` when they show positive curvature
        (``s·y > 1e-10 · y·y``; otherwise the approximation would stop being positive
        definite); returns whether the pair was kept."""
        sy = float(s @ y)
        if sy <= 1e-10 * float(y @ y):
            return False
        self._pairs.append((s.astype(self.dtype), y.astype(self.dtype), 1.0 / sy))
        return True

    def apply(self, g: np.ndarray) -> np.ndarray:
        """The inverse-Hessian approximation applied to ``g`` (a new array of ``dtype``): the
        two-loop recursion, starting from the scaling ``s·y / y·y`` of the newest pair."""
        q = g.astype(self.dtype)
        alphas = []
        for s, y, rho in reversed(self._pairs):
            alpha = rho * float(s @ q)
            q -= alpha * y
            alphas.append(alpha)
        if self._pairs:
            _, y, rho = self._pairs[-1]
            q *= 1.0 / (rho * float(y @ y))
        for (s, y, rho), alpha in zip(self._pairs, reversed(alphas), strict=True):
            beta = rho * float(y @ q)
            q += (alpha - beta) * s
        return q


def minimize_lbfgs(
    objective: Objective,
    x0: np.ndarray,
    *,
    max_iter: int = 100,
    gtol: float = 1e-4,
    ftol: float = 64 * np.finfo(float).eps,
    memory: int = 10,
) -> Result:
    """Minimise ``objective`` (returning value and gradient) from ``x0``.

    Stops when the largest gradient entry is at most ``gtol``, when the relative decrease
    of the value falls to ``ftol``, or after ``max_iter`` steps.
    """
    x = x0.astype(float, copy=True)
    f, g = objective(x)
    if not (np.isfinite(f) and np.isfinite(g).all()):
        raise FloatingPointError("the objective is not finite where the minimisation starts")
    # float32 halves the memory the two-loop recursion streams through; the direction only
    # needs to be roughly right, the line search checks it
    history = CurvatureHistory(memory, np.float32)
    for iteration in range(1, max_iter + 1):
        check_stop()  # the run this minimisation trains for ended early
        if np.abs(g).max() <= gtol:
            return Result(x, f, iteration - 1, True)
        direction = -history.apply(g).astype(np.float64)
        slope = float(g @ direction)
        if slope >= 0:  # not a descent direction: forget the curvature pairs
            history.clear()
            direction = -g
            slope = -float(g @ g)
        step = 1.0 if len(history) else min(1.0, 1.0 / float(np.abs(g).sum()))
        while True:
            x_new = x + step * direction
            f_new, g_new = objective(x_new)
            finite = bool(np.isfinite(f_new) and np.isfinite(g_new).all())
            if finite and (f_new <= f + 1e-4 * step * slope or step < 1e-12):
                break
            if step < 1e-12:  # nothing finite along this direction
                return Result(x, f, iteration - 1, False)
            if not finite:  # overflowed: far too long a step
                step *= 0.1
                continue
            # minimum of the quadratic through f, slope and f_new, kept within [0.1, 0.5]·step
            quadratic = -slope * step * step / (2.0 * (f_new - f - slope * step))
            step = min(max(quadratic, 0.1 * step), 0.5 * step)
        history.add(x_new - x, g_new - g)
        decrease = f - f_new
        x, f, g = x_new, f_new, g_new
        if decrease <= ftol * max(abs(f), abs(f + decrease), 1.0):
            return Result(x, f, iteration, True)
    return Result(x, f, max_iter, bool(np.abs(g).max() <= gtol))


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
    """Minimise ``objective(x) + c1·‖x‖₁`` (Andrew & Gao, 2007); ``objective`` returns the
    smooth part's value and gradient. Returns the last accepted point (a failed line search
    keeps the previous one, as CRFsuite does).

    liblbfgs' settings, as CRFsuite's ``lbfgs`` trainer uses them when ``c1 > 0``: 6 pairs,
    a backtracking line search that halves the step and asks for the Armijo decrease
    ``1e-4 · pg·(x_new - x)``, a first step of ``1/‖d‖``, and two stopping tests —
    ``‖pg‖ / max(1, ‖x‖) ≤ epsilon`` and a relative decrease of the objective below
    ``delta`` over the last ``past`` iterations. ``pg`` is the pseudo-gradient of the whole
    objective; steps never cross from one orthant to another (a weight that would change
    sign becomes zero), which is what makes L1-trained weights sparse. With ``c1 = 0`` it is
    plain L-BFGS with this line search.
    """
    x = x0.astype(np.float64, copy=True)
    smooth, g = objective(x)
    f = smooth + c1 * float(np.abs(x).sum())
    pg = pseudo_gradient(x, g, c1)
    if _converged(x, pg, epsilon):
        return Result(x, f, 0, True)
    history = CurvatureHistory(memory, np.float64)
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
        history.add(s, y)
        direction = -history.apply(pg)
        step = 1.0
    return Result(x, f, max_iter, False)


def _converged(x: np.ndarray, pg: np.ndarray, epsilon: float) -> bool:
    return float(np.linalg.norm(pg)) <= epsilon * max(1.0, float(np.linalg.norm(x)))
