"""The gated-ReLU objective: NumPy's BLAS for the products, Numba kernels for the rest.

Mirrors ``refimpl/solvers/convex_relu.py``. The products ``X Hᵀ`` (the gate scores), ``X Uᵀ``
(every neuron on every sample) and ``(masks ⊙ r)ᵀ X`` (the smooth gradient) go through
``np.dot``; one row-parallel kernel turns the scores into masks and sums the gated predictions
into the residual ``r_k = Σ_i 1[x_k·h_i ≥ 0] x_k·u_i − y_k``, one computes the group norms (scaled,
as LAPACK's ``nrm2``), and one writes the masked residual and, in the backward, adds
``β u_i/‖u_i‖``. Row scalars are float64.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@parallel_kernel(fastmath={"reassoc"})
def _gated_residual(scores, predictions, y, residual, masks):
    for k in prange(scores.shape[0]):
        total = 0.0
        for i in range(scores.shape[1]):
            if scores[k, i] >= 0:
                masks[k, i] = 1.0
                total += np.float64(predictions[k, i])
            else:
                masks[k, i] = 0.0
        residual[k] = total - np.float64(y[k])


@parallel_kernel()
def _group_norms(u, norms):
    for i in prange(u.shape[0]):
        largest = 0.0
        for j in range(u.shape[1]):
            largest = max(largest, abs(np.float64(u[i, j])))
        total = 0.0
        if largest > 0:
            for j in range(u.shape[1]):
                scaled = np.float64(u[i, j]) / largest
                total += scaled * scaled
        norms[i] = largest * math.sqrt(total)


@parallel_kernel()
def _masked_residual(masks, residual, scale, out):
    for k in prange(masks.shape[0]):
        value = scale * residual[k]
        for i in range(masks.shape[1]):
            out[k, i] = masks[k, i] * value


@parallel_kernel()
def _add_penalty_gradient(g_u, u, norms, coefficient):
    for i in prange(u.shape[0]):
        if norms[i] > 0:
            factor = coefficient / norms[i]
            for j in range(u.shape[1]):
                g_u[i, j] += factor * np.float64(u[i, j])


def gated_relu_objective_forward(X, y, gates, U, *, beta):  # noqa: N803 - the paper's matrices
    x = np.ascontiguousarray(X)
    u = np.ascontiguousarray(U)
    scores = np.dot(x, np.ascontiguousarray(gates).T)
    predictions = np.dot(x, u.T)
    n = x.shape[0]
    residual = np.empty(n, dtype=np.float64)
    masks = np.empty(scores.shape, dtype=x.dtype)
    _gated_residual(scores, predictions, np.ascontiguousarray(y), residual, masks)
    norms = np.empty(u.shape[0], dtype=np.float64)
    _group_norms(u, norms)
    objective = 0.5 * float(residual @ residual) + float(beta) * float(norms.sum())
    return np.asarray(objective, dtype=X.dtype), (x, u, masks, residual, norms, float(beta))


def gated_relu_objective_backward(residuals, g_objective):
    x, u, masks, residual, norms, beta = residuals
    g = float(np.asarray(g_objective))
    weighted = np.empty(masks.shape, dtype=x.dtype)
    _masked_residual(masks, residual, g, weighted)  # ḡ · (masks ⊙ r)
    # ḡ Xᵀ D_i r for every i, as (Xᵀ W)ᵀ: OpenBLAS runs Wᵀ X (a transposed (n, P) left
    # operand) ~9x slower than Xᵀ W at n = 8192, P = 64, d = 1024
    g_u = np.ascontiguousarray(np.dot(x.T, weighted).T)
    _add_penalty_gradient(g_u, u, norms, g * beta)
    return (g_u.astype(x.dtype, copy=False),)


IMPLS = {"gated_relu_objective": Impl(gated_relu_objective_forward, gated_relu_objective_backward)}
