"""Sparse-simplex projection: Numba kernels, parallel over rows.

Mirrors ``refimpl/transport/sparse_ot.py`` (``sparse_simplex_projection``; the OT objectives
are reference-only). Per row, the k largest entries are found by insertion into a sorted
buffer of k when k is small (O(m·k), no sort of the row), else by a stable sort of the row;
both keep the lowest index first among equal values, as the reference. Then the simplex
threshold ``θ = (Σ_{l≤ρ} u_l − 1)/ρ`` from a running sum in float64, and ``y = max(x − θ, 0)``
on the kept entries. The backward is ``x̄ = [y > 0](ȳ − mean_{y>0} ȳ)``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@njit(cache=True)
def _top_k_by_insertion(row, k, values, indices):
    """The k largest of ``row``, descending, ties by lowest index (strictly greater displaces)."""
    count = 0
    for i in range(row.shape[0]):
        x = row[i]
        if count == k and not x > values[k - 1]:
            continue
        position = count if count < k else k - 1
        while position > 0 and x > values[position - 1]:  # equal values stay ahead: stable
            if position < k:
                values[position] = values[position - 1]
                indices[position] = indices[position - 1]
            position -= 1
        values[position] = x
        indices[position] = i
        if count < k:
            count += 1


@njit(cache=True)
def _top_k_by_sort(row, k, values, indices):
    order = np.argsort(-row, kind="mergesort")  # stable: ties keep index order
    for j in range(k):
        indices[j] = order[j]
        values[j] = row[order[j]]


@parallel_kernel()
def _project_rows(x, k, y):
    rows, m = x.shape
    use_insertion = k <= math.log2(m) + 1.0
    for r in prange(rows):
        values = np.empty(k, dtype=np.float64)
        indices = np.empty(k, dtype=np.int64)
        if use_insertion:
            _top_k_by_insertion(x[r], k, values, indices)
        else:
            _top_k_by_sort(x[r], k, values, indices)
        # shifted by the largest kept value (the projection is shift-invariant): the j = 0
        # test is then exactly 1 > 0 at any magnitude
        top = values[0]
        running = 0.0
        theta = -1.0
        for j in range(k):
            running += values[j] - top
            candidate = (running - 1.0) / (j + 1)
            if values[j] - top - candidate > 0.0:
                theta = candidate  # ρ is the last j where the condition holds (it holds for a prefix)
        for i in range(m):
            y[r, i] = 0.0
        for j in range(k):
            y[r, indices[j]] = max(values[j] - top - theta, 0.0)


@parallel_kernel()
def _project_backward_rows(y, g_y, g_x):
    rows, m = y.shape
    for r in prange(rows):
        total = 0.0
        count = 0
        for i in range(m):
            if y[r, i] > 0.0:
                total += g_y[r, i]
                count += 1
        mean = total / count
        for i in range(m):
            g_x[r, i] = g_y[r, i] - mean if y[r, i] > 0.0 else 0.0


def sparse_simplex_projection_forward(x, *, max_nz):
    m = x.shape[-1]
    rows = np.ascontiguousarray(x).reshape(-1, m)
    y = np.empty(rows.shape, dtype=x.dtype)
    _project_rows(rows, min(int(max_nz), m), y)
    y = y.reshape(x.shape)
    return y, y


def sparse_simplex_projection_backward(residuals, g_y):
    y = residuals
    m = y.shape[-1]
    g_x = np.empty(y.shape, dtype=y.dtype).reshape(-1, m)
    _project_backward_rows(y.reshape(-1, m), np.ascontiguousarray(g_y, dtype=y.dtype).reshape(-1, m), g_x)
    return (g_x.reshape(y.shape),)


IMPLS = {
    "sparse_simplex_projection": Impl(sparse_simplex_projection_forward, sparse_simplex_projection_backward)
}
