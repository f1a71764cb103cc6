"""Sparse envelope function, k-support prox and WGSEF penalty: Numba kernels, parallel over rows.

Mirrors ``refimpl/regularizers/sparse_envelope.py``. Each row sorts its magnitudes ascending
(``np.sort``), so the descending ``a_j`` is ``ascending[n − 1 − j]`` and every tail sum of the
reference is a prefix sum from the smallest entry up; the split ``r`` (and, for the prox, the
last nonzero index ``l``) is the first index whose inequality holds, as in the reference.
Row scalars are float64.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@njit(cache=True)
def _envelope_level(ascending, k):
    """θ and r of ``s_k`` for one row of magnitudes sorted ascending (see the reference)."""
    n = ascending.shape[0]
    tail = 0.0
    for i in range(n - k + 1):  # r = 0: the tail is a_k, …, a_n (1-based, descending)
        tail += ascending[i]
    for r in range(k):
        if r > 0:
            tail += ascending[n - k + r]
        level = tail / (r + 1)
        if r == k - 1 or ascending[n - k + r + 1] > level:  # a_{k−r−1} > θ_r
            return level, r
    return tail / k, k - 1  # not reached


@parallel_kernel()
def _envelope_rows(x, k, value, theta):
    n = x.shape[1]
    for i in prange(x.shape[0]):
        ascending = np.empty(n, dtype=np.float64)
        for j in range(n):
            ascending[j] = abs(np.float64(x[i, j]))
        ascending.sort()
        level, r = _envelope_level(ascending, k)
        head = 0.0
        for j in range(n - k + r + 1, n):  # the top k − r − 1 entries
            head += ascending[j] * ascending[j]
        value[i] = 0.5 * (head + (r + 1) * level * level)
        theta[i] = level


@parallel_kernel()
def _envelope_backward_rows(x, theta, weight, g_x):
    n = x.shape[1]
    for i in prange(x.shape[0]):
        level, w = theta[i], weight[i]
        for j in range(n):
            value = np.float64(x[i, j])
            magnitude = max(abs(value), level)  # x on the head, sign(x)·θ on the tail
            g_x[i, j] = w * magnitude if value > 0 else (-w * magnitude if value < 0 else 0.0)


@njit(cache=True)
def _prox_level(ascending, k, gamma):
    """θ of ``prox_{γ s_k}`` for one row sorted ascending (the reference's ``prox_level``)."""
    n = ascending.shape[0]
    level = 0.0
    for r in range(k):
        start = k - r - 1  # descending index of the first tail entry: ascending[n − 1 − start]
        total = 0.0
        for last in range(start, n):
            total += ascending[n - 1 - last]
            level = total / (r + 1 + gamma * (last - start + 1))
            if last == n - 1 or ascending[n - 2 - last] <= gamma * level:  # z_{l+1} ≤ γθ
                break
        if r == k - 1 or ascending[n - start] / (1.0 + gamma) > level:  # z_{k−r−1}/(1 + γ) > θ
            return level
    return level


@parallel_kernel()
def _prox_rows(x, k, gamma, prox):
    n = x.shape[1]
    for i in prange(x.shape[0]):
        ascending = np.empty(n, dtype=np.float64)
        for j in range(n):
            ascending[j] = abs(np.float64(x[i, j]))
        ascending.sort()
        level = _prox_level(ascending, k, gamma)
        for j in range(n):
            value = np.float64(x[i, j])
            magnitude = abs(value)
            if magnitude > (1.0 + gamma) * level:
                shrunk = magnitude / (1.0 + gamma)  # head: x/(1 + γ)
            else:
                shrunk = max(magnitude - gamma * level, 0.0)  # tail: soft threshold at γθ
            prox[i, j] = shrunk if value > 0 else -shrunk


@parallel_kernel(fastmath={"reassoc"})
def _group_norms(x, norms):
    for g in prange(x.shape[0]):
        total = 0.0
        for j in range(x.shape[1]):
            value = np.float64(x[g, j])
            total += value * value
        norms[g] = np.sqrt(total)


@njit(cache=True)
def _group_envelope(u, k):
    """s_k(u) and θ of the weighted group norms (one vector: a serial sort and scan)."""
    ascending = np.sort(u)
    n = ascending.shape[0]
    level, r = _envelope_level(ascending, k)
    head = 0.0
    for j in range(n - k + r + 1, n):
        head += ascending[j] * ascending[j]
    return 0.5 * (head + (r + 1) * level * level), level


@parallel_kernel()
def _group_backward(x, factor, g_x):
    for g in prange(x.shape[0]):
        scale = factor[g]
        for j in range(x.shape[1]):
            g_x[g, j] = scale * x[g, j]


def sparse_envelope_function_forward(x, *, k):
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    value, theta = np.empty(rows.shape[0]), np.empty(rows.shape[0])
    _envelope_rows(rows, int(k), value, theta)
    return value.reshape(x.shape[:-1]).astype(x.dtype), (rows, theta, x.shape)


def sparse_envelope_function_backward(residuals, g_value):
    rows, theta, shape = residuals
    weight = np.ascontiguousarray(np.asarray(g_value, dtype=np.float64).reshape(-1))
    g_x = np.empty(rows.shape, dtype=rows.dtype)
    _envelope_backward_rows(rows, theta, weight, g_x)
    return (g_x.reshape(shape),)


def k_support_squared_prox_forward(x, *, k, gamma):
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    prox = np.empty(rows.shape, dtype=x.dtype)
    _prox_rows(rows, int(k), float(gamma), prox)
    return prox.reshape(x.shape), None


def wgsef_penalty_forward(x, weights, *, k, composition):
    rows = np.ascontiguousarray(x)
    norms = np.empty(rows.shape[0])
    _group_norms(rows, norms)
    u = weights.astype(np.float64) * norms
    value, theta = _group_envelope(u, int(k))
    if composition == "envelope_minus_half_norm":
        value -= 0.5 * float(u @ u)
    return np.asarray(value, dtype=x.dtype), (rows, weights, norms, u, theta, composition)


def wgsef_penalty_backward(residuals, g_penalty):
    rows, weights, norms, u, theta, composition = residuals
    if composition == "envelope_minus_half_norm":
        slope = np.maximum(theta - u, 0.0)
    else:
        slope = np.maximum(u, theta)
    nonzero = norms > 0
    factor = np.where(nonzero, float(g_penalty) * slope * weights / np.where(nonzero, norms, 1.0), 0.0)
    g_x = np.empty(rows.shape, dtype=rows.dtype)
    _group_backward(rows, factor, g_x)
    return (g_x,)


IMPLS = {
    "wgsef_penalty": Impl(wgsef_penalty_forward, wgsef_penalty_backward),
    "k_support_squared_prox": Impl(k_support_squared_prox_forward),
    "sparse_envelope_function": Impl(sparse_envelope_function_forward, sparse_envelope_function_backward),
}
