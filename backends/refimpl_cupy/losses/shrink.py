"""ShrinkMatch's shrunk-class-space loss on CuPy: a batched selection + fused kernels.

Mirrors ``refimpl/losses/shrink.py``: a stable descending argsort of p per row, the tail
sums ``T_c`` (float64, a running sum from the smallest probability up), the first ``c`` with
``q_0/(q_0 + T_c) ≥ τ``, the kept classes S scattered back to class order; then the
cross-entropy of the top-1 class over S with the row max of S subtracted. The backward's
fused kernel recomputes ``σ_S(z)`` from the saved max and sum: ``z̄ = w ρ ω (σ_S(z) − e_top)``.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl, reduce_rows, row_weights

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def kept_exp(z, m, kept):
        # min(·, 0): a removed class above m must not overflow before it is masked
        return xp.exp(xp.minimum(z - m, 0)) * kept

    @fuse
    def shrink_grad(z, m, kept, inverse_total, is_top, factor):
        return factor * (xp.exp(xp.minimum(z - m, 0)) * kept * inverse_total - is_top)

    return SimpleNamespace(kept_exp=kept_exp, shrink_grad=shrink_grad)


kernels_for = kernel_set(_kernels)


def _shrunk_class_space(p, tau):
    """(top (B, 1), kept (B, C) bool, ω (B,) float64, certain (B,)): the reference's selection."""
    xp = xp_of(p)
    batch, num_classes = p.shape
    order = xp.argsort(-p, axis=-1, kind="stable")  # ties: the lowest class first
    sorted_p = xp.take_along_axis(p, order, axis=-1).astype(xp.float64)
    top_p = sorted_p[:, 0]
    certain = top_p >= tau
    tail = xp.cumsum(sorted_p[:, ::-1], axis=-1)[:, ::-1]  # T_c, from the smallest up
    cut = xp.full(batch, max(num_classes - 1, 0), dtype=xp.int64)
    reached = xp.zeros(batch, dtype=bool)
    if num_classes >= 3:
        passes = top_p[:, None] / (top_p[:, None] + tail[:, 2:]) >= tau
        reached = passes.any(axis=-1)
        cut = xp.where(reached, 2 + passes.argmax(axis=-1), num_classes - 1)
    ranks = xp.arange(num_classes)[None, :]
    kept_by_rank = (ranks == 0) | (ranks >= cut[:, None])
    kept = xp.zeros((batch, num_classes), dtype=bool)
    kept[xp.arange(batch)[:, None], order] = kept_by_rank
    weight = xp.where(reached & ~certain, top_p, 0.0)
    return order[:, :1], kept, weight, certain


def shrink_loss_forward(p, z, *, certain_ratio, threshold=0.95, momentum=0.999, reduction="mean"):
    xp = xp_of(z)
    k = kernels_for(z)
    dtype = z.dtype
    batch = z.shape[0]
    top, kept, weight, certain = _shrunk_class_space(p, float(p.dtype.type(threshold)))
    kept = kept.astype(dtype)
    m = xp.where(kept > 0, z, dtype.type(-xp.inf)).max(axis=-1, keepdims=True)
    total = k.kept_exp(z, m, kept).sum(axis=-1, keepdims=True)
    per_row_ce = (xp.log(total) - (xp.take_along_axis(z, top, axis=1) - m))[:, 0]
    factor = (dtype.type(certain_ratio) * weight.astype(dtype)).astype(dtype)  # ρ ω_b
    per_row = factor * per_row_ce
    fraction = float(certain.mean()) if batch else 0.0
    ratio = momentum * certain_ratio + (1.0 - momentum) * fraction if batch else certain_ratio
    loss = reduce_rows(per_row, reduction, dtype)
    return (loss, xp.asarray(ratio, dtype=dtype)), (z, top, kept, m, 1 / total, factor, reduction)


def shrink_loss_backward(residuals, cotangents):
    z, top, kept, m, inverse_total, factor, reduction = residuals
    g_loss, _ = cotangents  # ρ' does not depend on z
    xp = xp_of(z)
    k = kernels_for(z)
    batch, num_classes = z.shape
    w = row_weights(g_loss.astype(z.dtype), reduction, batch)
    is_top = (xp.arange(num_classes)[None, :] == top).astype(z.dtype)
    g_z = k.shrink_grad(z, m, kept, inverse_total, is_top, (w * factor)[:, None])
    return (g_z.astype(z.dtype),)


IMPLS = {"shrink_loss": Impl(shrink_loss_forward, shrink_loss_backward)}
