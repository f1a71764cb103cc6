"""λ-orthogonality regularization on CuPy: two cuBLAS products and one fused squared-deviation kernel.

Mirrors ``refimpl/regularizers/lambda_orthogonality.py``: ``E = WWᵀ − I`` (the identity
subtracted on the diagonal), ``x = ‖E‖_F``, ``σ(α(x − λ))·x`` with the sigmoid and its slope
from ``exp(−|α(x − λ)|)``; the backward is ``W̄ = 2ḡ(s + ασ'x)/x · E W``.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl, sigmoid_and_slope

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def squared(E):
        return E * E

    return SimpleNamespace(squared=squared)


kernels_for = kernel_set(_kernels)


def lambda_orthogonality_penalty_forward(W, *, alpha, lam=12.0):
    xp = xp_of(W)
    k = kernels_for(W)
    E = W @ W.T
    diagonal = xp.arange(E.shape[0])
    E[diagonal, diagonal] -= 1
    x = xp.sqrt(k.squared(E).sum())
    switch, slope = sigmoid_and_slope(W.dtype.type(alpha) * (x - W.dtype.type(lam)))
    return (switch * x).astype(W.dtype), (W, E, x, switch, slope, alpha)


def lambda_orthogonality_penalty_backward(residuals, g_penalty):
    W, E, x, switch, slope, alpha = residuals
    xp = xp_of(W)
    if float(x) == 0:  # exactly orthonormal rows: subgradient 0
        return (xp.zeros_like(W),)
    factor = 2 * xp.asarray(g_penalty, dtype=W.dtype) * (switch + W.dtype.type(alpha) * slope * x) / x
    return ((factor * (E @ W)).astype(W.dtype),)


IMPLS = {
    "lambda_orthogonality_penalty": Impl(
        lambda_orthogonality_penalty_forward, lambda_orthogonality_penalty_backward
    )
}
