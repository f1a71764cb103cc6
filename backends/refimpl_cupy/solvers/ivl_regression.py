"""IVL regression on CuPy: cuSOLVER QR and least squares, cuBLAS products.

Mirrors ``refimpl/solvers/ivl_regression.py``: β̂ solves ``[QᵀX; √α X] β ≈ [Qᵀy; √α y]`` (Q from
the QR of G); backward ``ᾱ = −⟨R⁻ᵀβ̄, R⁻ᵀXᵀ(Xβ̂ − y)⟩`` with R from the QR of the stacked design
(triangular systems solved as general ones: p × p).
"""

from __future__ import annotations

import math

from refimpl.authoring import Impl

from .._fuse import xp_of


def ivl_regression_forward(X, y, G, alpha):  # noqa: N803
    xp = xp_of(X)
    q, _ = xp.linalg.qr(G)
    root = math.sqrt(float(alpha))
    design = xp.concatenate([q.T @ X, root * X])
    target = xp.concatenate([q.T @ y, root * y])
    beta = xp.linalg.lstsq(design, target, rcond=None)[0].astype(X.dtype, copy=False)
    return beta, (X, y, design, beta)


def ivl_regression_backward(residuals, g_beta):
    X, y, design, beta = residuals  # noqa: N806
    xp = xp_of(X)
    r_factor = xp.linalg.qr(design, mode="r")
    whitened_g = xp.linalg.solve(r_factor.T, g_beta.astype(X.dtype))  # R⁻ᵀβ̄
    whitened_gradient = xp.linalg.solve(r_factor.T, X.T @ (X @ beta - y))
    g_alpha = -whitened_g @ whitened_gradient
    return (xp.asarray(g_alpha, dtype=X.dtype),)


IMPLS = {"ivl_regression": Impl(ivl_regression_forward, ivl_regression_backward)}
