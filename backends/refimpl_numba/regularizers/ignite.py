"""IGNITE's gradient-norm penalty and finite-difference HVP: fused Numba passes over the
flattened parameter vector.

Mirrors ``refimpl/regularizers/ignite.py``:

* ``gradient_norm_penalty``: one parallel reduction ``Σ g_i²`` accumulated in float64 (a
  float32 gradient's squares can neither overflow nor underflow there; a float64 gradient
  beyond ~1e154 or below ~1e-154 takes the reference's scaled norm instead), one pass
  ``ρ·hvp``; the backward writes ``ḡ = (p̄ρ)·(g/‖g‖)`` and ``hvp̄ = ρ·Ḡ`` in one pass each.
* ``finite_difference_hvp``: one pass ``(g_shifted − g)/r`` in the arrays' dtype.

The elementwise passes run in the arrays' dtype with the scalars rounded once to it, as the
reference does. ``ignite_dual_update`` (a scalar step) stays reference-only.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl, row_norm

from .._jit import parallel_kernel


@parallel_kernel(fastmath={"reassoc"})
def _sum_of_squares(g):
    total = 0.0
    for i in prange(g.shape[0]):
        value = np.float64(g[i])
        total += value * value
    return total


@parallel_kernel()
def _scale(x, factor, out):
    for i in prange(x.shape[0]):
        out[i] = factor * x[i]


@parallel_kernel()
def _scaled_direction(g, norm, factor, out):
    """``out = factor·(g/‖g‖)``: the unit direction first, |ĝ_i| ≤ 1."""
    for i in prange(g.shape[0]):
        out[i] = factor * (g[i] / norm)


@parallel_kernel()
def _difference_quotient(g_shifted, g, r, out):
    for i in prange(g.shape[0]):
        out[i] = (g_shifted[i] - g[i]) / r


def _norm(g):
    """``‖g‖`` rounded to g's dtype; the float64 sum of squares, or the scaled norm where it
    left float64's range."""
    squares = _sum_of_squares(g)
    if math.isfinite(squares) and squares >= np.finfo(np.float64).tiny:
        return g.dtype.type(math.sqrt(squares))
    return row_norm(g.reshape(1, -1))[0, 0]


def gradient_norm_penalty_forward(g, hvp, *, rho=0.05):
    dtype = g.dtype.type
    g = np.ascontiguousarray(g)
    hvp = np.ascontiguousarray(hvp)
    rho_ = dtype(rho)
    norm = _norm(g)
    param_grad = np.empty_like(hvp)
    _scale(hvp, rho_, param_grad)
    return (np.asarray(rho_ * norm, dtype=g.dtype), param_grad), (g, norm, rho)


def gradient_norm_penalty_backward(residuals, cotangents):
    g, norm, rho = residuals
    g_penalty, g_param_grad = cotangents
    dtype = g.dtype.type
    rho_ = dtype(rho)
    g_g = np.empty_like(g)
    _scaled_direction(g, norm, dtype(rho_ * dtype(g_penalty)), g_g)
    g_hvp = np.empty_like(g)
    _scale(np.ascontiguousarray(g_param_grad, dtype=g.dtype), rho_, g_hvp)
    return g_g, g_hvp


def finite_difference_hvp_forward(g_shifted, g, *, r=0.05):
    hvp = np.empty_like(g, order="C")
    _difference_quotient(np.ascontiguousarray(g_shifted), np.ascontiguousarray(g), g.dtype.type(r), hvp)
    return hvp, None


IMPLS = {
    "gradient_norm_penalty": Impl(gradient_norm_penalty_forward, gradient_norm_penalty_backward),
    "finite_difference_hvp": Impl(finite_difference_hvp_forward),
}
