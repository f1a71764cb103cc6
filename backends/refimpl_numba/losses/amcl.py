"""The AMCL loss: fused Numba kernels, parallel over the (head, row) pairs.

Mirrors ``refimpl/losses/amcl.py``. Each row picks its ``k`` hardest negatives in one pass
with a heap of size k (ties: the lowest index, the set of the reference's stable sort),
evaluates the temperatures of the positive and of the kept negatives only, and stores the
loss's partial derivatives with respect to s and t; the backward scales them by ``ḡ/R`` and
scatters them into the kept columns. Row scalars are float64.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@njit(cache=True, inline="always")
def _temperature(t, tau_min, width):
    """``τ = τ_min + width·σ(−t)`` and ``∂τ/∂t = −width·σ(−t)(1 − σ(−t))``, without overflow."""
    u = -t
    e = math.exp(-abs(u))
    alpha = 1.0 / (1.0 + e) if u >= 0 else e / (1.0 + e)
    return tau_min + width * alpha, -width * e / ((1.0 + e) * (1.0 + e))


@njit(cache=True)
def _sift_down(values, indices, start, size):
    """Restore the min-heap on (value, −index) below ``start``: the root is the worst kept entry."""
    parent = start
    while True:
        worst = parent
        for child in (2 * parent + 1, 2 * parent + 2):
            if child < size and (
                values[child] < values[worst]
                or (values[child] == values[worst] and indices[child] > indices[worst])
            ):
                worst = child
        if worst == parent:
            return
        values[parent], values[worst] = values[worst], values[parent]
        indices[parent], indices[worst] = indices[worst], indices[parent]
        parent = worst


@njit(cache=True)
def _select_top_k(row, k, out):
    """The indices of the k largest entries; ties: the lowest index (a stable descending sort's
    first k). One pass with a heap of the k best so far, worst at the root: a later entry
    replaces the root only if it is strictly larger (an equal one has the higher index)."""
    values = np.empty(k, dtype=np.float64)
    for j in range(k):
        values[j] = row[j]
        out[j] = j
    for j in range(k // 2 - 1, -1, -1):
        _sift_down(values, out, j, k)
    for column in range(k, row.shape[0]):
        value = np.float64(row[column])
        if value > values[0]:
            values[0] = value
            out[0] = column
            _sift_down(values, out, 0, k)


@parallel_kernel(fastmath={"reassoc"})
def _amcl_rows(
    s_pos, t_pos, s_neg, t_neg, half_d, beta, tau_min, width, selected, per_row, coef_pos, coef_sel
):
    n = s_neg.shape[1]
    k = selected.shape[1]
    inverse_k = 1.0 / k
    for i in prange(s_neg.shape[0]):
        if k < n:
            _select_top_k(s_neg[i], k, selected[i])
        else:
            for j in range(k):
                selected[i, j] = j
        s = np.float64(s_pos[i])
        tau, slope = _temperature(np.float64(t_pos[i]), tau_min, width)
        inverse = 1.0 / tau
        total = -s * inverse + beta * (half_d * math.log(tau) + inverse)
        coef_pos[i, 0] = -inverse  # ∂ℓ/∂s⁺
        coef_pos[i, 1] = (s * inverse * inverse + beta * (half_d * inverse - inverse * inverse)) * slope
        negative = 0.0
        regularizer = 0.0
        for j in range(k):
            column = selected[i, j]
            s_j = np.float64(s_neg[i, column])
            tau_j, slope_j = _temperature(np.float64(t_neg[i, column]), tau_min, width)
            inverse_j = 1.0 / tau_j
            negative += s_j * inverse_j
            regularizer += math.log(tau_j) + inverse_j
            coef_sel[i, j, 0] = inverse_k * inverse_j
            coef_sel[i, j, 1] = (
                -s_j * inverse_j * inverse_j * inverse_k - beta * (inverse_j - inverse_j * inverse_j)
            ) * slope_j
        per_row[i] = total + negative * inverse_k - beta * regularizer


@parallel_kernel()
def _amcl_backward_rows(selected, coef_pos, coef_sel, weight, g_s_pos, g_t_pos, g_s_neg, g_t_neg):
    k = selected.shape[1]
    n = g_s_neg.shape[1]
    for i in prange(selected.shape[0]):
        g_s_pos[i] = weight * coef_pos[i, 0]
        g_t_pos[i] = weight * coef_pos[i, 1]
        for column in range(n):
            g_s_neg[i, column] = 0.0
            g_t_neg[i, column] = 0.0
        for j in range(k):  # outside the kept set: 0 (the set is held fixed)
            column = selected[i, j]
            g_s_neg[i, column] = weight * coef_sel[i, j, 0]
            g_t_neg[i, column] = weight * coef_sel[i, j, 1]


def amcl_loss_forward(s_pos, t_pos, s_neg, t_neg, *, dim, beta=0.01, tau_min=1e-5, tau_max=2.0, top_k=100):
    heads, rows, n = s_neg.shape
    flat = heads * rows
    k = min(top_k, n)
    selected = np.empty((flat, k), dtype=np.int64)
    per_row = np.empty(flat, dtype=np.float64)
    coef_pos = np.empty((flat, 2), dtype=np.float64)
    coef_sel = np.empty((flat, k, 2), dtype=np.float64)
    _amcl_rows(
        np.ascontiguousarray(s_pos).reshape(flat),
        np.ascontiguousarray(t_pos).reshape(flat),
        np.ascontiguousarray(s_neg).reshape(flat, n),
        np.ascontiguousarray(t_neg).reshape(flat, n),
        0.5 * float(dim),
        float(beta),
        float(tau_min),
        float(tau_max) - float(tau_min),
        selected,
        per_row,
        coef_pos,
        coef_sel,
    )
    loss = per_row.reshape(heads, rows).mean(axis=-1).sum()
    return np.asarray(loss, dtype=s_pos.dtype), (selected, coef_pos, coef_sel, s_neg.shape, s_pos.dtype)


def amcl_loss_backward(residuals, g_loss):
    selected, coef_pos, coef_sel, shape, dtype = residuals
    heads, rows, n = shape
    flat = heads * rows
    g_s_pos, g_t_pos = np.empty(flat, dtype=dtype), np.empty(flat, dtype=dtype)
    g_s_neg, g_t_neg = np.empty((flat, n), dtype=dtype), np.empty((flat, n), dtype=dtype)
    weight = float(np.asarray(g_loss, dtype=np.float64)) / rows  # mean over rows, sum over heads
    _amcl_backward_rows(selected, coef_pos, coef_sel, weight, g_s_pos, g_t_pos, g_s_neg, g_t_neg)
    return (
        g_s_pos.reshape(heads, rows),
        g_t_pos.reshape(heads, rows),
        g_s_neg.reshape(shape),
        g_t_neg.reshape(shape),
    )


IMPLS = {"amcl_loss": Impl(amcl_loss_forward, amcl_loss_backward)}
