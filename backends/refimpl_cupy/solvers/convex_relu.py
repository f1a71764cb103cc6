"""The gated-ReLU objective on CuPy: cuBLAS products and fused elementwise kernels.

Mirrors ``refimpl/solvers/convex_relu.py``: masks ``1[X hᵢ ≥ 0]`` and the gated predictions in
one fused kernel, the residual and group norms by reductions (``row_norm``), and the backward
``Ū = ḡ((masks ⊙ r)ᵀ X + β U/‖U‖_rows)`` as one product and one fused kernel.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl, row_norm

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def gate(scores, predictions):
        masks = (scores >= 0).astype(predictions.dtype)
        return masks, masks * predictions

    @fuse
    def penalty_gradient(smooth, u, inverse_norm, coefficient):
        return smooth + coefficient * u * inverse_norm

    return SimpleNamespace(gate=gate, penalty_gradient=penalty_gradient)


kernels_for = kernel_set(_kernels)


def gated_relu_objective_forward(X, y, gates, U, *, beta):  # noqa: N803 - the paper's matrices
    k = kernels_for(X)
    masks, gated = k.gate(X @ gates.T, X @ U.T)
    residual = gated.sum(axis=1) - y
    norms = row_norm(U)
    dtype = X.dtype.type
    objective = dtype(0.5) * (residual @ residual) + dtype(beta) * norms.sum()
    return objective.astype(X.dtype), (X, U, masks, residual, norms, beta)


def gated_relu_objective_backward(residuals, g_objective):
    X, U, masks, residual, norms, beta = residuals  # noqa: N806
    xp = xp_of(X)
    k = kernels_for(X)
    dtype = X.dtype.type
    g = g_objective.astype(X.dtype)
    smooth = (masks * (g * residual)[:, None]).T @ X
    inverse_norm = xp.where(norms > 0, 1 / xp.where(norms > 0, norms, 1), 0).astype(X.dtype)
    g_u = k.penalty_gradient(smooth, U, inverse_norm, g * dtype(beta))
    return (g_u.astype(X.dtype),)


IMPLS = {"gated_relu_objective": Impl(gated_relu_objective_forward, gated_relu_objective_backward)}
