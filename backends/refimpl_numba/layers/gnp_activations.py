"""MaxMin, GroupSort and Householder activations: Numba kernels, parallel over rows.

Mirrors ``refimpl/layers/gnp_activations.py``. MaxMin and GroupSort keep the input (MaxMin
recomputes the swaps in the backward) or the permutation (GroupSort: an in-group index per
output, ``int32``) as residuals; GroupSort sorts a group by a stable insertion sort (ties keep
their order: a strict ``<`` moves an entry up) and groups longer than 32 by NumPy's stable
merge sort. Householder computes ``s = vᵀz`` per row in float64; ``v̄`` is summed per thread
chunk of rows, then over the chunks.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel, reduction_chunks

INSERTION_SORT_MAX = 32  # above this group size the O(g²) insertion sort loses to merge sort


@parallel_kernel()
def _maxmin_rows(x, halves, y):
    n, d = x.shape
    half = d // 2
    for i in prange(n):
        for p in range(half):
            first = p if halves else 2 * p
            second = p + half if halves else 2 * p + 1
            a, b = x[i, first], x[i, second]
            if b > a:  # strict: a tie keeps the first member in the max position
                y[i, first], y[i, second] = b, a
            else:
                y[i, first], y[i, second] = a, b


@parallel_kernel()
def _maxmin_backward_rows(x, g_y, halves, g_x):
    n, d = x.shape
    half = d // 2
    for i in prange(n):
        for p in range(half):
            first = p if halves else 2 * p
            second = p + half if halves else 2 * p + 1
            if x[i, second] > x[i, first]:
                g_x[i, first], g_x[i, second] = g_y[i, second], g_y[i, first]
            else:
                g_x[i, first], g_x[i, second] = g_y[i, first], g_y[i, second]


def _rows(array):
    return np.ascontiguousarray(array).reshape(-1, array.shape[-1])


def maxmin_activation_forward(x, *, pairing="adjacent"):
    rows = _rows(x)
    y = np.empty_like(rows)
    _maxmin_rows(rows, pairing == "halves", y)
    return y.reshape(x.shape), (rows, pairing == "halves", x.shape)


def maxmin_activation_backward(residuals, g_y):
    rows, halves, shape = residuals
    g_x = np.empty_like(rows)
    _maxmin_backward_rows(rows, _rows(g_y), halves, g_x)
    return (g_x.reshape(shape),)


@parallel_kernel()
def _groupsort_rows(x, group_size, y, order):
    n, d = x.shape
    for i in prange(n):
        for start in range(0, d, group_size):
            if group_size <= INSERTION_SORT_MAX:
                for r in range(group_size):  # stable insertion sort, descending
                    value = x[i, start + r]
                    q = r
                    while q > 0 and y[i, start + q - 1] < value:
                        y[i, start + q] = y[i, start + q - 1]
                        order[i, start + q] = order[i, start + q - 1]
                        q -= 1
                    y[i, start + q] = value
                    order[i, start + q] = r
            else:
                ranks = np.argsort(-x[i, start : start + group_size], kind="mergesort")
                for r in range(group_size):
                    order[i, start + r] = ranks[r]
                    y[i, start + r] = x[i, start + ranks[r]]


@parallel_kernel()
def _groupsort_backward_rows(order, g_y, group_size, g_x):
    n, d = g_y.shape
    for i in prange(n):
        for start in range(0, d, group_size):
            for r in range(group_size):
                g_x[i, start + order[i, start + r]] = g_y[i, start + r]  # x̄ = Pᵀ ȳ


def groupsort_activation_forward(x, *, group_size):
    rows = _rows(x)
    y = np.empty_like(rows)
    order = np.empty(rows.shape, dtype=np.int32)
    _groupsort_rows(rows, int(group_size), y, order)
    return y.reshape(x.shape), (order, int(group_size), x.shape)


def groupsort_activation_backward(residuals, g_y):
    order, group_size, shape = residuals
    g_x = np.empty(order.shape, dtype=g_y.dtype)
    _groupsort_backward_rows(order, _rows(g_y), group_size, g_x)
    return (g_x.reshape(shape),)


@parallel_kernel()
def _householder_rows(z, v, y, s):
    n, d = z.shape
    for i in prange(n):
        dot = 0.0
        for j in range(d):
            dot += np.float64(z[i, j]) * np.float64(v[j])
        s[i] = dot
        if dot > 0:
            for j in range(d):
                y[i, j] = z[i, j]
        else:
            scale = z.dtype.type(2.0 * dot)
            for j in range(d):
                y[i, j] = z[i, j] - scale * v[j]  # (I − 2vvᵀ) z


@parallel_kernel()
def _householder_backward_rows(z, v, s, g_y, g_z, partial_v):
    n, d = z.shape
    chunks = partial_v.shape[0]
    for c in prange(chunks):
        for i in range(c * n // chunks, (c + 1) * n // chunks):
            if s[i] > 0:
                for j in range(d):
                    g_z[i, j] = g_y[i, j]
                continue
            v_dot_g = 0.0
            for j in range(d):
                v_dot_g += np.float64(v[j]) * np.float64(g_y[i, j])
            scale = z.dtype.type(2.0 * v_dot_g)
            for j in range(d):
                g_z[i, j] = g_y[i, j] - scale * v[j]
                partial_v[c, j] -= 2.0 * (s[i] * g_y[i, j] + v_dot_g * z[i, j])


def householder_activation_forward(z, v):
    rows = _rows(z)
    y = np.empty_like(rows)
    s = np.empty(rows.shape[0], dtype=np.float64)
    _householder_rows(rows, v, y, s)
    return y.reshape(z.shape), (rows, v, s, z.shape)


def householder_activation_backward(residuals, g_y):
    rows, v, s, shape = residuals
    g_z = np.empty_like(rows)
    chunks = reduction_chunks(rows.shape[0])
    partial_v = np.zeros((chunks, rows.shape[1]))
    _householder_backward_rows(rows, v, s, _rows(g_y), g_z, partial_v)
    return g_z.reshape(shape), partial_v.sum(axis=0).astype(rows.dtype)


IMPLS = {
    "maxmin_activation": Impl(maxmin_activation_forward, maxmin_activation_backward),
    "groupsort_activation": Impl(groupsort_activation_forward, groupsort_activation_backward),
    "householder_activation": Impl(householder_activation_forward, householder_activation_backward),
}
