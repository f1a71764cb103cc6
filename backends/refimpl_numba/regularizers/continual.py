"""Continual-learning regularizers: single-pass Numba reductions, parallel over chunks.

Mirrors ``refimpl/regularizers/continual.py``. The three penalties are memory-bound sums over
flattened weights (or features):

* forward: one pass reads θ and θ* (and F) once; each chunk of ``CHUNK`` elements sums
  ``Δ²`` (or ``F·Δ²``) in float64 into its own slot, the chunks run in parallel and their
  partial sums are added in chunk order (the result does not depend on the thread count);
  Δ = θ − θ* is formed in the input dtype, as in the reference;
* backward: one parallel pass writes ``w·Δ`` (``w·F·Δ``) in the input dtype, w = ḡλ
  (2ḡ/c for feature distillation), recomputing Δ from the inputs (no residual array).

``empirical_fisher_diagonal`` (a one-off statistic, forward only) is parallel over chunks of
``COLUMNS`` columns: each chunk keeps its float64 column sums (4 KiB, in L1) while it streams
the rows, so the (N, P) matrix is read once.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel

CHUNK = 1 << 14  # elements per partial sum: 128 KiB of float64 θ and θ*, a few per thread
COLUMNS = 512  # columns per Fisher chunk: their float64 sums stay in L1


@parallel_kernel(fastmath={"reassoc"})
def _squared_distance(theta, theta_star, partials):
    """``Σ (θ − θ*)²`` in float64, one partial sum per chunk."""
    n = theta.shape[0]
    for c in prange(partials.shape[0]):
        start = c * CHUNK
        stop = min(start + CHUNK, n)
        total = 0.0
        for i in range(start, stop):
            difference = np.float64(theta[i] - theta_star[i])
            total += difference * difference
        partials[c] = total
    return partials.sum()


@parallel_kernel(fastmath={"reassoc"})
def _weighted_squared_distance(theta, theta_star, fisher, partials):
    """``Σ F·(θ − θ*)²`` in float64, one partial sum per chunk."""
    n = theta.shape[0]
    for c in prange(partials.shape[0]):
        start = c * CHUNK
        stop = min(start + CHUNK, n)
        total = 0.0
        for i in range(start, stop):
            difference = np.float64(theta[i] - theta_star[i])
            total += np.float64(fisher[i]) * difference * difference
        partials[c] = total
    return partials.sum()


@parallel_kernel()
def _scaled_difference(theta, theta_star, w, out):
    """``out = w·(θ − θ*)`` in the input dtype (w rounded once to it, as the reference)."""
    for i in prange(theta.shape[0]):
        out[i] = w * (theta[i] - theta_star[i])


@parallel_kernel()
def _weighted_scaled_difference(theta, theta_star, fisher, w, out):
    """``out = (w·F)·(θ − θ*)`` in the input dtype, in the reference's order."""
    for i in prange(theta.shape[0]):
        out[i] = w * fisher[i] * (theta[i] - theta_star[i])


@parallel_kernel(fastmath={"reassoc"})
def _column_squared_sums(grads, sums):
    """``sums_j = Σ_n g_nj²`` in float64; parallel over chunks of COLUMNS columns."""
    num_rows, num_columns = grads.shape
    for c in prange((num_columns + COLUMNS - 1) // COLUMNS):
        start = c * COLUMNS
        stop = min(start + COLUMNS, num_columns)
        for j in range(start, stop):
            sums[j] = 0.0
        for n in range(num_rows):
            for j in range(start, stop):
                value = np.float64(grads[n, j])
                sums[j] += value * value


def _flat(array):
    return np.ascontiguousarray(array).reshape(-1)


def _partials(size):
    return np.empty((size + CHUNK - 1) // CHUNK, dtype=np.float64)


def _cotangent_weight(factor, g, dtype):
    """``factor·ḡ`` in the input dtype, formed as the reference forms it."""
    return dtype.type(factor) * np.asarray(g).astype(dtype)[()]


def l2_anchor_regularizer_forward(theta, theta_star, *, lam):
    flat_theta, flat_star = _flat(theta), _flat(theta_star)
    penalty = 0.5 * lam * _squared_distance(flat_theta, flat_star, _partials(flat_theta.size))
    return np.asarray(penalty, dtype=theta.dtype), (flat_theta, flat_star, lam, theta.shape)


def l2_anchor_regularizer_backward(residuals, g_penalty):
    flat_theta, flat_star, lam, shape = residuals
    g_theta = np.empty_like(flat_theta)
    _scaled_difference(flat_theta, flat_star, _cotangent_weight(lam, g_penalty, flat_theta.dtype), g_theta)
    return (g_theta.reshape(shape),)


def ewc_penalty_forward(theta, theta_star, fisher, *, lam):
    flats = _flat(theta), _flat(theta_star), _flat(fisher)
    penalty = 0.5 * lam * _weighted_squared_distance(*flats, _partials(flats[0].size))
    return np.asarray(penalty, dtype=theta.dtype), (flats, lam, theta.shape)


def ewc_penalty_backward(residuals, g_penalty):
    flats, lam, shape = residuals
    g_theta = np.empty_like(flats[0])
    _weighted_scaled_difference(*flats, _cotangent_weight(lam, g_penalty, flats[0].dtype), g_theta)
    return (g_theta.reshape(shape),)


def feature_distillation_loss_forward(h_new, h_old, *, reduction="batchmean"):
    count = h_new.shape[0] if reduction == "batchmean" else h_new.size
    flat_new, flat_old = _flat(h_new), _flat(h_old)
    loss = _squared_distance(flat_new, flat_old, _partials(flat_new.size)) / count
    return np.asarray(loss, dtype=h_new.dtype), (flat_new, flat_old, count, h_new.shape)


def feature_distillation_loss_backward(residuals, g_loss):
    flat_new, flat_old, count, shape = residuals
    g_new = np.empty_like(flat_new)
    _scaled_difference(flat_new, flat_old, _cotangent_weight(2.0 / count, g_loss, flat_new.dtype), g_new)
    return (g_new.reshape(shape),)


def empirical_fisher_diagonal_forward(per_sample_grads):
    grads = np.ascontiguousarray(per_sample_grads)
    sums = np.empty(grads.shape[1], dtype=np.float64)
    _column_squared_sums(grads, sums)
    return (sums / grads.shape[0]).astype(grads.dtype), None


IMPLS = {
    "l2_anchor_regularizer": Impl(l2_anchor_regularizer_forward, l2_anchor_regularizer_backward),
    "ewc_penalty": Impl(ewc_penalty_forward, ewc_penalty_backward),
    "feature_distillation_loss": Impl(feature_distillation_loss_forward, feature_distillation_loss_backward),
    "empirical_fisher_diagonal": Impl(empirical_fisher_diagonal_forward),
}
