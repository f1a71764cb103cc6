"""Soft Dice and FEBS Dice losses on CuPy: fused elementwise kernels + row reductions.

Mirrors ``refimpl/reweighting/febs.py``. One fused kernel forms, per entry, the float64 terms
``(w x − y)², w x y, (w x)², y²`` (``w`` the row's weight, float64, which promotes the
products), each reduced over the row; FEBS runs it unscaled (the group losses D_g, then the
weights by a few array operations on the (B, C) sums, on the device) and scaled. The
backward is one fused kernel, ``ḡ = a_r x − b_r y`` with float64 scales, rounded once.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def dice_terms(x, y, w, one):
        s = w * x  # float64: w is float64
        t = one * y  # float64 (a float32 t² overflows beyond 1.8e19)
        d = s - t
        return d * d, s * t, s * s, t * t

    @fuse
    def combination(x, y, a, b):
        return a * x - b * y

    return SimpleNamespace(dice_terms=dice_terms, combination=combination)


kernels_for = kernel_set(_kernels)


def _row_sums(x, y, row_weight):
    """Σ(w x − y)², Σ w x y, Σ(w x)², Σ y² of each row of (rows, n) ``x``, ``y`` (float64)."""
    xp = xp_of(x)
    terms = kernels_for(x).dice_terms(x, y, row_weight[:, None], xp.ones((1, 1)))
    return [term.sum(axis=1) for term in terms]


# -- soft_dice_loss -----------------------------------------------------------------------------------
def soft_dice_loss_forward(s, t, *, eps=1e-5):
    xp = xp_of(s)
    x, y = s.reshape(1, -1), t.reshape(1, -1)
    squared_error, overlap, x_squares, y_squares = (v[0] for v in _row_sums(x, y, xp.ones(1)))
    total = x_squares + y_squares + eps  # S
    kappa = (2 * overlap + eps) / total
    return xp.asarray(squared_error / total, dtype=s.dtype), (x, y, s.shape, kappa, total)


def soft_dice_loss_backward(residuals, g_loss):
    x, y, shape, kappa, total = residuals
    dtype = x.dtype
    scale = 2 * g_loss.astype(total.dtype) / total  # ∂D/∂s = (2/S)(κ s − t)
    # float64 scales (2/S may underflow float32 where t is huge): the products are float64
    g_s = kernels_for(x).combination(x, y, scale * kappa, scale)
    return (g_s.reshape(shape).astype(dtype, copy=False),)


# -- febs_dice_loss -----------------------------------------------------------------------------------
def _group_weights(squared_error, totals, groups, num_groups, gamma, eps, official_absent_group):
    """w_b = tanh((min D/D_g(b))^γ) from (B, C) float64 sums: D_g over the groups present."""
    xp = xp_of(squared_error)
    present, position = xp.unique(groups, return_inverse=True)
    position = position.reshape(-1)
    membership = (position[None, :] == xp.arange(present.size)[:, None]).astype(xp.float64)  # (G', B)
    group_loss = (membership @ squared_error / (membership @ totals + eps)).sum(axis=1)
    smallest = group_loss.min()
    if official_absent_group and present.size < num_groups:
        smallest = xp.zeros_like(smallest)
    safe = xp.where(group_loss == 0, 1.0, group_loss)
    ratio = xp.where(group_loss == smallest, 1.0, smallest / safe)
    return xp.tanh(ratio**gamma)[position]


def febs_dice_loss_forward(p, t, groups, *, num_groups, gamma=1.0, eps=1e-5, official_absent_group=False):
    xp = xp_of(p)
    batch, num_classes = p.shape[:2]
    rows = batch * num_classes
    x, y = p.reshape(rows, -1), t.reshape(rows, -1)
    squared_error, _, x_squares, y_squares = _row_sums(x, y, xp.ones(rows))
    weights = _group_weights(
        squared_error.reshape(batch, num_classes),
        (x_squares + y_squares).reshape(batch, num_classes),
        groups,
        num_groups,
        gamma,
        eps,
        official_absent_group,
    )
    scaled = _row_sums(x, y, xp.repeat(weights, num_classes))
    squared_error, overlap, x_squares, y_squares = (v.reshape(batch, num_classes).sum(axis=0) for v in scaled)
    total = x_squares + y_squares + eps  # S_c
    loss = (squared_error / total).mean()
    kappa = (2 * overlap + eps) / total
    return xp.asarray(loss, dtype=p.dtype), (x, y, p.shape, weights, kappa, total)


def febs_dice_loss_backward(residuals, g_loss):
    x, y, shape, weights, kappa, total = residuals
    dtype = x.dtype
    num_classes = shape[1]
    # p̄[b, c] = a_bc p − b_bc t: b_bc = (L̄/C)·w_b·2/S_c, a_bc = b_bc·κ_c·w_b
    scale_t = (2 * g_loss.astype(total.dtype) / num_classes) * weights[:, None] / total[None, :]
    scale_p = scale_t * kappa[None, :] * weights[:, None]
    g_p = kernels_for(x).combination(x, y, scale_p.reshape(-1, 1), scale_t.reshape(-1, 1))  # float64
    return (g_p.reshape(shape).astype(dtype, copy=False),)


IMPLS = {
    "soft_dice_loss": Impl(soft_dice_loss_forward, soft_dice_loss_backward),
    "febs_dice_loss": Impl(febs_dice_loss_forward, febs_dice_loss_backward),
}
