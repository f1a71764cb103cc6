"""Top-k activation thresholding: a Numba kernel, parallel over rows.

Mirrors ``refimpl/layers/topk_activation.py``: per row, the k-th largest value ``t_k`` from
``np.partition`` of a copy of the row, then one pass that keeps the entries above ``t_k``
and, under ``"exactly_k"``, the first (lowest-index) entries equal to ``t_k`` until k are
kept (``"threshold"`` keeps every one). The mask is the residual; the backward is
``h̄ = h̃̄ ⊙ m``. ``activation_sparsity`` is a statistic: reference only.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@parallel_kernel()
def _topk_rows(h, k, exactly_k, h_topk, mask):
    n, d = h.shape
    for i in prange(n):
        kth = np.partition(h[i].copy(), d - k)[d - k]
        above = 0
        for j in range(d):
            if h[i, j] > kth:
                above += 1
        places_left = k - above  # entries equal to t_k still to keep (≥ 1)
        for j in range(d):
            value = h[i, j]
            keep = value > kth
            if value == kth and (places_left > 0 or not exactly_k):
                keep = True
                places_left -= 1
            mask[i, j] = keep
            h_topk[i, j] = value if keep else 0


@parallel_kernel()
def _masked_rows(g, mask, g_h):
    n, d = g.shape
    for i in prange(n):
        for j in range(d):
            g_h[i, j] = g[i, j] if mask[i, j] else 0


def topk_activation_forward(h, *, k, tie_rule="exactly_k"):
    rows = np.ascontiguousarray(h).reshape(-1, h.shape[-1])
    h_topk = np.empty_like(rows)
    mask = np.empty(rows.shape, dtype=np.bool_)
    _topk_rows(rows, int(k), tie_rule == "exactly_k", h_topk, mask)
    return h_topk.reshape(h.shape), (mask, h.shape)


def topk_activation_backward(residuals, g_h_topk):
    mask, shape = residuals
    g_rows = np.ascontiguousarray(g_h_topk).reshape(mask.shape)
    g_h = np.empty_like(g_rows)
    _masked_rows(g_rows, mask, g_h)
    return (g_h.reshape(shape),)


IMPLS = {"topk_activation": Impl(topk_activation_forward, topk_activation_backward)}
