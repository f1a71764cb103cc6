"""IGNITE's gradient-norm penalty and finite-difference HVP on CuPy: a fused reduction for
``Σ g²`` and fused elementwise passes.

Mirrors ``refimpl/regularizers/ignite.py``. The sum of squares runs on a float64 copy (float32
squares overflow at |g| ~ 2e19 and underflow at ~1e-19, where ‖g‖ is representable); a float64
gradient that leaves float64's range there takes the scaled ``row_norm``, as the reference.
``param_grad = ρ·hvp``, the backward ``ḡ = (p̄ρ)·(g/‖g‖)``, ``hvp̄ = ρ·Ḡ`` and the difference
quotient ``(g_shifted − g)/r`` are one fused pass each, in the arrays' dtype. On the host the
same functions run as plain NumPy.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from refimpl.authoring import Impl, row_norm

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def sum_of_squares(x):
        return xp.sum(x * x)

    @fuse
    def scale(x, factor):
        return factor * x

    @fuse
    def scaled_direction(g, norm, factor):
        return factor * (g / norm)  # the unit direction first: |ĝ_i| ≤ 1

    @fuse
    def difference_quotient(g_shifted, g, r):
        return (g_shifted - g) / r

    return SimpleNamespace(
        sum_of_squares=sum_of_squares,
        scale=scale,
        scaled_direction=scaled_direction,
        difference_quotient=difference_quotient,
    )


kernels_for = kernel_set(_kernels)


def _norm(g):
    xp = xp_of(g)
    squares = float(kernels_for(g).sum_of_squares(g.astype(xp.float64)))
    if math.isfinite(squares) and squares >= np.finfo(np.float64).tiny:
        return g.dtype.type(math.sqrt(squares))
    return g.dtype.type(float(row_norm(g.reshape(1, -1))[0, 0]))


def gradient_norm_penalty_forward(g, hvp, *, rho=0.05):
    xp = xp_of(g)
    dtype = g.dtype.type
    rho_ = dtype(rho)
    norm = _norm(g)
    param_grad = kernels_for(g).scale(hvp, rho_).astype(g.dtype, copy=False)
    return (xp.asarray(rho_ * norm, dtype=g.dtype), param_grad), (g, norm, rho)


def gradient_norm_penalty_backward(residuals, cotangents):
    g, norm, rho = residuals
    g_penalty, g_param_grad = cotangents
    k = kernels_for(g)
    dtype = g.dtype.type
    rho_ = dtype(rho)
    g_g = k.scaled_direction(g, norm, dtype(rho_ * dtype(float(g_penalty))))
    g_hvp = k.scale(g_param_grad.astype(g.dtype, copy=False), rho_)
    return g_g.astype(g.dtype, copy=False), g_hvp.astype(g.dtype, copy=False)


def finite_difference_hvp_forward(g_shifted, g, *, r=0.05):
    hvp = kernels_for(g).difference_quotient(g_shifted, g, g.dtype.type(r))
    return hvp.astype(g.dtype, copy=False), None


IMPLS = {
    "gradient_norm_penalty": Impl(gradient_norm_penalty_forward, gradient_norm_penalty_backward),
    "finite_difference_hvp": Impl(finite_difference_hvp_forward),
}
