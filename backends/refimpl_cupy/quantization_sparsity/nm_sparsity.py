"""N:M masks and sparse weights on CuPy: ranks by counting, fused elementwise kernels.

Mirrors ``refimpl/quantization_sparsity/nm_sparsity.py``. No sort (a GPU sort need not be
stable): the rank of each magnitude in its group's stable ascending order is counted,
``rank_j = Σ_i [a_i < a_j] + [a_i = a_j and i < j]``, in M fused passes over the (groups, M)
array (memory O(groups·M), not O(groups·M²)); ``j`` is kept when ``rank_j ≥ M − N``, so
among equal magnitudes the lower index is pruned first. The sparse weight and the
backwards are one fused kernel each.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def rank_step(a_i, a, before_i):
        # 1 where a_i sorts before a_j: smaller, or equal with the lower index i < j
        return (a_i < a) | ((a_i == a) & before_i)

    @fuse
    def pruned_scaled(w, keep, beta):
        return xp.where(keep, w, w * beta)

    @fuse
    def sr_ste_grad(g, w, keep, lambda_w):
        return xp.where(keep, g, g + lambda_w * w)

    @fuse
    def scaled_grad(g, keep, beta):
        return xp.where(keep, g, g * beta)

    return SimpleNamespace(
        rank_step=rank_step, pruned_scaled=pruned_scaled, sr_ste_grad=sr_ste_grad, scaled_grad=scaled_grad
    )


kernels_for = kernel_set(_kernels)


def _rows(xp, W, conv):  # noqa: N803
    return xp.ascontiguousarray(xp.transpose(W, (0, 2, 3, 1)) if conv else W)


def _layout(xp, rows, conv):
    return xp.ascontiguousarray(xp.transpose(rows, (0, 3, 1, 2))) if conv else rows


def _keep(W, N, M, conv):  # noqa: N803
    xp = xp_of(W)
    k = kernels_for(W)
    rows = _rows(xp, W, conv)
    magnitudes = xp.abs(rows.reshape(-1, M))
    positions = xp.arange(M)
    rank = xp.zeros(magnitudes.shape, dtype=xp.int32)
    for i in range(M):
        rank += k.rank_step(magnitudes[:, i : i + 1], magnitudes, (positions > i)[None, :])
    keep = rank >= M - N
    return _layout(xp, keep.reshape(rows.shape), conv)


def nm_mask_forward(W, *, N, M, conv=False):  # noqa: N803
    return _keep(W, N, M, conv), None


def _beta(variant, step, decay_rate):
    if variant == "mdgf_linear":
        return max(1.0 - decay_rate * step, 0.0)
    if variant == "mdgf_exp":
        return math.exp(-decay_rate * step)
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
    xp = xp_of(W)
    dtype = W.dtype.type
    beta = dtype(_beta(variant, step, decay_rate))
    keep = _keep(W, N, M, conv)
    if beta:
        w_sparse = kernels_for(W).pruned_scaled(W, keep, beta)
    else:
        w_sparse = xp.where(keep, W, dtype(0))
    return w_sparse.astype(W.dtype, copy=False), (W, keep, variant, beta, lambda_w, exact_grad)


def nm_sparse_weight_backward(residuals, g_w_sparse):
    W, keep, variant, beta, lambda_w, exact_grad = residuals  # noqa: N806
    k = kernels_for(W)
    g = g_w_sparse.astype(W.dtype, copy=False)
    if variant == "sr_ste":
        g_W = k.sr_ste_grad(g, W, keep, W.dtype.type(lambda_w))  # noqa: N806
    elif exact_grad:
        g_W = k.scaled_grad(g, keep, beta)  # noqa: N806
    else:
        g_W = g.copy()  # noqa: N806
    return (g_W.astype(W.dtype, copy=False),)


IMPLS = {
    "nm_mask": Impl(nm_mask_forward),
    "nm_sparse_weight": Impl(nm_sparse_weight_forward, nm_sparse_weight_backward),
}
