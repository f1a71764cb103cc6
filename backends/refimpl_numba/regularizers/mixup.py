"""MixUp: fused Numba kernels, parallel over rows.

Mirrors ``refimpl/regularizers/mixup.py``. The forward writes ``w_i x_i + (1 − w_i) x_{π(i)}``
row by row (w one coefficient per row, λ_i here, or one per entry: ``feat_mix``'s masks). The
backward gathers instead of scattering, so rows run in parallel without races: the rows whose
partner is j are listed once (a counting sort of π), and
``x̄_j = w_j ḡ_j + Σ_{i: π(i) = j} (1 − w_i) ḡ_i`` is summed in a float64 row buffer in a fixed
order.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@parallel_kernel()
def _mix_rows(x, weight, perm, out):
    """``out_i = w_i ⊙ x_i + (1 − w_i) ⊙ x_{π(i)}``; ``weight`` (B, 1) or (B, D), float64."""
    d = x.shape[1]
    per_row = weight.shape[1] == 1
    for i in prange(x.shape[0]):
        j = perm[i]
        if per_row:
            w = weight[i, 0]
            for k in range(d):
                out[i, k] = w * np.float64(x[i, k]) + (1.0 - w) * np.float64(x[j, k])
        else:
            for k in range(d):
                w = weight[i, k]
                out[i, k] = w * np.float64(x[i, k]) + (1.0 - w) * np.float64(x[j, k])


@parallel_kernel()
def _mix_backward_rows(g, weight, sources, starts, g_x):
    d = g.shape[1]
    per_row = weight.shape[1] == 1
    for j in prange(g.shape[0]):
        total = np.empty(d, dtype=np.float64)  # the row's float64 accumulator
        for k in range(d):
            total[k] = weight[j, 0 if per_row else k] * np.float64(g[j, k])
        for position in range(starts[j], starts[j + 1]):  # the rows i with π(i) = j
            i = sources[position]
            if per_row:
                partner_weight = 1.0 - weight[i, 0]
                for k in range(d):
                    total[k] += partner_weight * np.float64(g[i, k])
            else:
                for k in range(d):
                    total[k] += (1.0 - weight[i, k]) * np.float64(g[i, k])
        for k in range(d):
            g_x[j, k] = total[k]


def mix_rows(x, weight, perm):
    """Row mixing with float64 weights (B, 1) or (B, D); the output in the dtype of x."""
    out = np.empty(x.shape, dtype=x.dtype)
    _mix_rows(np.ascontiguousarray(x), weight, perm, out)
    return out


def mix_rows_backward(weight, perm, g):
    """The VJP of :func:`mix_rows` in x (gathered per target row: no write races)."""
    g = np.ascontiguousarray(g)
    # the rows i with π(i) = j are sources[starts[j]:starts[j + 1]] (stable: ascending i)
    sources = np.argsort(perm, kind="stable")
    starts = np.zeros(len(perm) + 1, dtype=np.int64)
    np.cumsum(np.bincount(perm, minlength=len(perm)), out=starts[1:])
    g_x = np.empty_like(g)
    _mix_backward_rows(g, weight, sources, starts, g_x)
    return g_x


def mixup_forward(x, Y, lam, perm):
    weight = np.ascontiguousarray(lam, dtype=np.float64)[:, None]
    partners = np.ascontiguousarray(perm, dtype=np.int64)
    x_mixed = mix_rows(x, weight, partners)
    y_mixed = mix_rows(Y.astype(x.dtype, copy=False), weight, partners)
    return (x_mixed, y_mixed), (weight, partners, x.dtype)


def mixup_backward(residuals, cotangents):
    weight, partners, dtype = residuals
    return (mix_rows_backward(weight, partners, np.asarray(cotangents[0], dtype=dtype)),)


IMPLS = {"mixup": Impl(mixup_forward, mixup_backward)}
