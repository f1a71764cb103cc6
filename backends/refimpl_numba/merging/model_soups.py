"""Model soups: Numba kernels for the uniform and the learned soup.

Mirrors ``refimpl/merging/model_soups.py``. Both soups are one pass over the flattened
parameter, parallel over elements, with the K models of an element read from one row of the
(n, K) stack. The uniform soup sums in float64 and divides once (the reference's mean); the
learned soup accumulates ``Σ_k p_k θ_k`` in the input dtype in the reference's order, with
``p = softmax(α)`` from the shared block (K values). The learned soup's backward
``p̄_k = ⟨θ̄, θ_k⟩`` sums pieces of at most ``PIECE`` elements in parallel (float64) and adds
the pieces in order; softmax's VJP is the shared block. The greedy soup stays in the
reference (a loop of oracle calls).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl, softmax, softmax_backward

from .._jit import parallel_kernel

PIECE = 1 << 14  # elements per parallel piece of a reduction


@parallel_kernel()
def _mean(thetas, out):
    n, count = thetas.shape
    for j in prange(n):
        total = 0.0
        for k in range(count):
            total += np.float64(thetas[j, k])
        out[j] = total / count


@parallel_kernel()
def _weighted_sum(thetas, p, out):
    n, count = thetas.shape
    for j in prange(n):
        total = thetas[j, 0] * p[0]  # in the input dtype, k = 1, 2, … as the reference
        for k in range(1, count):
            total = total + thetas[j, k] * p[k]
        out[j] = total


@parallel_kernel()
def _piece_dots(g, matrix, partial):
    """``partial[p, k] = Σ_{j in piece p} g_j·matrix[j, k]`` in float64."""
    n, count = matrix.shape
    for piece in prange(partial.shape[0]):
        totals = np.zeros(count)  # one pass over the piece, its rows read contiguously
        for j in range(piece * PIECE, min((piece + 1) * PIECE, n)):
            g_j = np.float64(g[j])
            for k in range(count):
                totals[k] += g_j * np.float64(matrix[j, k])
        for k in range(count):
            partial[piece, k] = totals[k]


def column_dots(g, matrix):
    """``gᵀ·matrix`` for g (n,) and matrix (n, K): K inner products, float64, parallel over pieces."""
    partial = np.empty((-(-matrix.shape[0] // PIECE), matrix.shape[1]), dtype=np.float64)
    _piece_dots(g, matrix, partial)
    return partial.sum(axis=0)  # the pieces in order


def _rows(thetas):
    count = thetas.shape[-1]
    return np.ascontiguousarray(thetas).reshape(-1, count)


def uniform_soup_forward(thetas):
    rows = _rows(thetas)
    theta = np.empty(rows.shape[0], dtype=thetas.dtype)
    _mean(rows, theta)
    return theta.reshape(thetas.shape[:-1]), None


def learned_soup_forward(thetas, alpha):
    p = softmax(alpha)
    rows = _rows(thetas)
    theta = np.empty(rows.shape[0], dtype=thetas.dtype)
    _weighted_sum(rows, np.ascontiguousarray(p), theta)
    return theta.reshape(thetas.shape[:-1]), (rows, p)


def learned_soup_backward(residuals, g_theta):
    rows, p = residuals
    g_p = column_dots(np.ascontiguousarray(g_theta).reshape(-1), rows).astype(p.dtype)  # p̄_k = ⟨θ̄, θ_k⟩
    return (softmax_backward(p, g_p),)


IMPLS = {
    "uniform_soup": Impl(uniform_soup_forward),
    "learned_soup": Impl(learned_soup_forward, learned_soup_backward),
}
