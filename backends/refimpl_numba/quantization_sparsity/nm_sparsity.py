"""N:M masks and sparse weights: Numba kernels, parallel over groups.

Mirrors ``refimpl/quantization_sparsity/nm_sparsity.py``. Each group of M magnitudes is
ranked by counting, ``rank_j = #{i: a_i < a_j} + #{i < j: a_i = a_j}`` (the position of
``a_j`` in a stable ascending sort, with no sort), and ``j`` is kept when
``rank_j ≥ M − N``: among equal magnitudes the lower index is pruned first, as in the
reference. O(M²) compares per group, no allocation; the sparse weight is written in the
same pass. A conv weight is grouped on a contiguous (out, kh, kw, in) copy.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@parallel_kernel()
def _mask_groups(groups, pruned_count, keep):
    size = groups.shape[1]
    for g in prange(groups.shape[0]):
        for j in range(size):
            a_j = abs(groups[g, j])
            rank = 0
            for i in range(size):
                a_i = abs(groups[g, i])
                # branch-free (random magnitudes make the comparison unpredictable)
                rank += (a_i < a_j) | ((a_i == a_j) & (i < j))
            keep[g, j] = rank >= pruned_count


@parallel_kernel()
def _sparse_groups(groups, pruned_count, beta, keep, out):
    size = groups.shape[1]
    for g in prange(groups.shape[0]):
        for j in range(size):
            w_j = groups[g, j]
            a_j = abs(w_j)
            rank = 0
            for i in range(size):
                a_i = abs(groups[g, i])
                # branch-free (random magnitudes make the comparison unpredictable)
                rank += (a_i < a_j) | ((a_i == a_j) & (i < j))
            kept = rank >= pruned_count
            keep[g, j] = kept
            # pruned: β·w, or +0 when β = 0 (as the reference's where(m, W, 0))
            out[g, j] = w_j if kept else (w_j * beta if beta != 0 else abs(w_j) * beta)


@parallel_kernel()
def _sr_ste_backward(g, w, keep, lambda_w, out):
    for i in prange(g.shape[0]):
        out[i] = g[i] if keep[i] else g[i] + lambda_w * w[i]


@parallel_kernel()
def _scaled_backward(g, keep, beta, out):
    for i in prange(g.shape[0]):
        out[i] = g[i] if keep[i] else g[i] * beta


def _rows(W, conv):  # noqa: N803
    return np.ascontiguousarray(np.transpose(W, (0, 2, 3, 1)) if conv else W)


def _layout(rows, conv):
    return np.ascontiguousarray(np.transpose(rows, (0, 3, 1, 2))) if conv else rows


def nm_mask_forward(W, *, N, M, conv=False):  # noqa: N803
    rows = _rows(W, conv)
    groups = rows.reshape(-1, M)
    keep = np.empty(groups.shape, dtype=np.bool_)
    _mask_groups(groups, M - N, keep)
    return _layout(keep.reshape(rows.shape), conv), None


def _beta(variant, step, decay_rate):
    if variant == "mdgf_linear":
        return max(1.0 - decay_rate * step, 0.0)
    if variant == "mdgf_exp":
        return float(np.exp(-decay_rate * step))
    return 0.0


def nm_sparse_weight_forward(
    W,  # noqa: N803
    *,
    N,  # noqa: N803
    M,  # noqa: N803
    variant,
    step=None,
    decay_rate=None,
    lambda_w=2e-4,
    exact_grad=False,
    conv=False,
):
    dtype = W.dtype.type
    beta = dtype(_beta(variant, step, decay_rate))
    rows = _rows(W, conv)
    groups = rows.reshape(-1, M)
    keep = np.empty(groups.shape, dtype=np.bool_)
    out = np.empty_like(groups)
    _sparse_groups(groups, M - N, beta, keep, out)
    w_sparse = _layout(out.reshape(rows.shape), conv)
    mask = _layout(keep.reshape(rows.shape), conv)
    return w_sparse, (np.ascontiguousarray(W), mask, variant, beta, lambda_w, exact_grad)


def nm_sparse_weight_backward(residuals, g_w_sparse):
    W, mask, variant, beta, lambda_w, exact_grad = residuals  # noqa: N806
    dtype = W.dtype.type
    g = np.ascontiguousarray(g_w_sparse, dtype=W.dtype).reshape(-1)
    if variant != "sr_ste" and not exact_grad:
        return (g.reshape(W.shape).copy(),)
    out = np.empty_like(g)
    if variant == "sr_ste":
        _sr_ste_backward(g, W.reshape(-1), mask.reshape(-1), dtype(lambda_w), out)
    else:
        _scaled_backward(g, mask.reshape(-1), beta, out)
    return (out.reshape(W.shape),)


IMPLS = {
    "nm_mask": Impl(nm_mask_forward),
    "nm_sparse_weight": Impl(nm_sparse_weight_forward, nm_sparse_weight_backward),
}
