"""The transformer's GELU, ``x · (1 + erf(x / √2)) / 2``, with erf the float32 rational
function the numpy predictor uses (:func:`parley.ml.numpy_net.erf`, Eigen's minimax
approximation, |error| < 5e-7): training and parsing compute the same activations, bit for
bit.

The C kernel (``gelu`` in parley/ml/_dropout.c, with the dropout after it in the same pass)
runs it where it was built; :class:`RationalGelu` is the same arithmetic in torch — one
IEEE operation at a time in the same order, so the bits agree — for where it was not. Its
slope is the derivative of that function (of the rational erf, written out), within ~7e-6
of the exact GELU's. Rasa activates with ``tf.nn.gelu``, the exact GELU.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from parley.ml.numpy_net import _ERF_P as ERF_P  # float32 coefficients, highest power first
from parley.ml.numpy_net import _ERF_Q as ERF_Q

_SQRT_HALF = float(np.float32(math.sqrt(0.5)))
# the derivatives' coefficients, as the C kernel's compiler folds them (one float32 product)
_ERF_DP = [float(np.float32(len(ERF_P) - 1 - k) * c) for k, c in enumerate(ERF_P[:-1])]
_ERF_DQ = [float(np.float32(len(ERF_Q) - 1 - k) * c) for k, c in enumerate(ERF_Q[:-1])]
_ERF_P_LIST = [float(c) for c in ERF_P]  # (as Python floats once, not at every call)
_ERF_Q_LIST = [float(c) for c in ERF_Q]


def _horner(coefficients: list[float], w: torch.Tensor) -> torch.Tensor:
    out = w * coefficients[0]
    for c in coefficients[1:-1]:
        out = (out + c) * w
    return out + coefficients[-1]


def _derivative(coefficients: list[float], w: torch.Tensor) -> torch.Tensor:
    out = torch.full_like(w, coefficients[0])
    for c in coefficients[1:]:
        out = out * w + c
    return out


def _parts(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    z = torch.clamp(x * _SQRT_HALF, -4.0, 4.0)
    w = z * z
    return z, w, _horner(_ERF_P_LIST, w), _horner(_ERF_Q_LIST, w)


def gelu_values(x: torch.Tensor) -> torch.Tensor:
    """The activation of float32 ``x`` (no autograd)."""
    z, _, p, q = _parts(x)
    return (p * z / q + 1.0) * x * 0.5


def gelu_slope(x: torch.Tensor) -> torch.Tensor:
    """d gelu / dx at float32 ``x``: (1 + E(z)) / 2 + x · E'(z) / (2√2), E = z·P(w)/Q(w)."""
    z, w, p, q = _parts(x)
    dp, dq = _derivative(_ERF_DP, w), _derivative(_ERF_DQ, w)
    slope_of_erf = ((p + 2.0 * w * dp) * q - 2.0 * w * p * dq) / (q * q)
    inside = x * _SQRT_HALF
    slope_of_erf = torch.where((inside > -4.0) & (inside < 4.0), slope_of_erf, 0.0)
    return (p * z / q + 1.0) * 0.5 + x * slope_of_erf * (_SQRT_HALF * 0.5)


class RationalGelu(torch.autograd.Function):
    """The GELU above in torch (float32 or bfloat16: computed in float32, rounded once)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return gelu_values(x.float()).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return (grad.float() * gelu_slope(x.float())).to(grad.dtype)
