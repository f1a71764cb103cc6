"""CGS's transition matrix in Numba: one pass over the edges (degree) or over the source
nodes' edge segments (softmax), writing the dense (H, n, n) matrices directly.

Mirrors ``refimpl/solvers/cgs.py``. Degree normalization: per edge e = (s → t) and head h,
``A[h, s, t] = clip(ℓ, 0, 1)/deg(s)`` (parallel over edges: no two edges share an entry, the
graph having no duplicate edges); the backward reads ``Ā[h, s, t]`` back the same way. Softmax:
edges sorted by source (a stable argsort, CSR offsets), then per source node and head the
segment max, the float64 sum of ``exp(ℓ − max)`` (``_vmath.exp``) and the normalized values;
the backward forms ``a(ḡ − Σ a ḡ)`` per segment. ``cgs_fixed_point`` (a whole solver) stays
reference-only.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel
from .._vmath import exp


@parallel_kernel()
def _degree_edges(logits, src, dst, out_degree, a):
    for e in prange(logits.shape[0]):
        s, t = src[e], dst[e]
        degree = out_degree[s]
        for h in range(logits.shape[1]):
            a[h, s, t] = min(max(logits[e, h], 0.0), 1.0) / degree


@parallel_kernel()
def _degree_edges_backward(logits, src, dst, out_degree, g_a, g_logits):
    for e in prange(logits.shape[0]):
        s, t = src[e], dst[e]
        degree = out_degree[s]
        for h in range(logits.shape[1]):
            value = logits[e, h]
            g_logits[e, h] = g_a[h, s, t] / degree if 0.0 <= value <= 1.0 else 0.0


@parallel_kernel()
def _softmax_segments(logits, order, offsets, dst, values, a):
    for node in prange(offsets.shape[0] - 1):
        start, end = offsets[node], offsets[node + 1]
        for h in range(logits.shape[1]):
            largest = -np.inf
            for k in range(start, end):
                largest = max(largest, np.float64(logits[order[k], h]))
            total = 0.0
            for k in range(start, end):
                total += exp(np.float64(logits[order[k], h]) - largest)
            for k in range(start, end):
                e = order[k]
                value = exp(np.float64(logits[e, h]) - largest) / total
                values[e, h] = value
                a[h, node, dst[e]] = value


@parallel_kernel()
def _softmax_segments_backward(values, order, offsets, dst, g_a, g_logits):
    for node in prange(offsets.shape[0] - 1):
        start, end = offsets[node], offsets[node + 1]
        for h in range(values.shape[1]):
            weighted = 0.0
            for k in range(start, end):
                e = order[k]
                weighted += np.float64(values[e, h]) * g_a[h, node, dst[e]]
            for k in range(start, end):
                e = order[k]
                g_logits[e, h] = values[e, h] * (g_a[h, node, dst[e]] - weighted)


def cgs_transition_matrix_forward(edge_logits, src, dst, *, num_nodes, normalization="degree"):
    logits = np.ascontiguousarray(edge_logits)
    src, dst = np.ascontiguousarray(src, dtype=np.int64), np.ascontiguousarray(dst, dtype=np.int64)
    a = np.zeros((logits.shape[1], num_nodes, num_nodes), dtype=logits.dtype)
    if normalization == "degree":
        out_degree = np.bincount(src, minlength=num_nodes).astype(logits.dtype)
        _degree_edges(logits, src, dst, out_degree, a)
        return a, ("degree", logits, src, dst, out_degree)
    order = np.argsort(src, kind="stable")
    offsets = np.zeros(num_nodes + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=num_nodes), out=offsets[1:])
    values = np.empty_like(logits)
    _softmax_segments(logits, order, offsets, dst, values, a)
    return a, ("softmax", values, order, offsets, dst)


def cgs_transition_matrix_backward(residuals, g_a):
    kind = residuals[0]
    g_a = np.ascontiguousarray(g_a)
    if kind == "degree":
        _, logits, src, dst, out_degree = residuals
        g_logits = np.empty_like(logits)
        _degree_edges_backward(logits, src, dst, out_degree, g_a.astype(logits.dtype, copy=False), g_logits)
        return (g_logits,)
    _, values, order, offsets, dst = residuals
    g_logits = np.empty_like(values)
    _softmax_segments_backward(values, order, offsets, dst, g_a.astype(values.dtype, copy=False), g_logits)
    return (g_logits,)


IMPLS = {"cgs_transition_matrix": Impl(cgs_transition_matrix_forward, cgs_transition_matrix_backward)}
