"""Soft Dice and FEBS Dice losses: fused Numba kernels, parallel over blocks of each row.

Mirrors ``refimpl/reweighting/febs.py``. Every sum is one pass over ``(x, y)`` rows cut into
blocks (a soft Dice row is the whole flattened input; a FEBS row one (sample, class) channel),
the blocks spread over the threads, the block sums (float64) added afterwards:
``Σ(w x − y)², Σ w x y, Σ (w x)², Σ y²`` with the row's weight ``w``. FEBS takes two such
passes, unscaled (the group losses D_g) then scaled by the group weights; the group weights
are a few NumPy operations on the (B, C) sums. The backward is one pass,
``ḡ = a_r x − b_r y`` per row.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel

BLOCK = 16384  # elements per block: blocks, not rows, are spread over the threads


@parallel_kernel(fastmath={"reassoc"})
def _block_sums(x, y, row_weight, block, squared_error, overlap, x_squares, y_squares):
    """Per (row, block): Σ(w x − y)², Σ w x y, Σ (w x)², Σ y² over the block, in float64."""
    n = x.shape[1]
    blocks = squared_error.shape[1]
    for job in prange(x.shape[0] * blocks):
        row = job // blocks
        start = (job % blocks) * block
        stop = min(start + block, n)
        w = row_weight[row]
        q, i_sum, xx, yy = 0.0, 0.0, 0.0, 0.0
        for k in range(start, stop):
            s = w * np.float64(x[row, k])
            t = np.float64(y[row, k])
            d = s - t
            q += d * d
            i_sum += s * t
            xx += s * s
            yy += t * t
        squared_error[row, job % blocks] = q
        overlap[row, job % blocks] = i_sum
        x_squares[row, job % blocks] = xx
        y_squares[row, job % blocks] = yy


@parallel_kernel(fastmath={"reassoc"})
def _block_combination(x, y, scale_x, scale_y, block, out):
    """out[r] = scale_x[r]·x[r] − scale_y[r]·y[r], block by block."""
    n = x.shape[1]
    blocks = (n + block - 1) // block
    for job in prange(x.shape[0] * blocks):
        row = job // blocks
        start = (job % blocks) * block
        stop = min(start + block, n)
        a = scale_x[row]
        b = scale_y[row]
        for k in range(start, stop):
            out[row, k] = a * np.float64(x[row, k]) - b * np.float64(y[row, k])


def _row_sums(x, y, row_weight):
    """The four sums of each row of (rows, n) ``x``, ``y`` (float64, (rows,) each)."""
    rows, n = x.shape
    blocks = (n + BLOCK - 1) // BLOCK
    partial = [np.empty((rows, blocks)) for _ in range(4)]
    _block_sums(x, y, row_weight, BLOCK, *partial)
    return [part.sum(axis=1) for part in partial]


# -- soft_dice_loss -----------------------------------------------------------------------------------
def _as_rows(a, rows):
    return np.ascontiguousarray(a).reshape(rows, -1)


def soft_dice_loss_forward(s, t, *, eps=1e-5):
    # the whole input is one sum: one row, whose blocks the threads share
    x, y = _as_rows(s, 1), _as_rows(t, 1)
    squared_error, overlap, x_squares, y_squares = (float(v[0]) for v in _row_sums(x, y, np.ones(1)))
    total = x_squares + y_squares + eps  # S
    kappa = (2 * overlap + eps) / total
    return np.asarray(squared_error / total, dtype=s.dtype), (x, y, s.shape, kappa, total)


def soft_dice_loss_backward(residuals, g_loss):
    x, y, shape, kappa, total = residuals
    scale = 2 * float(g_loss) / total  # ∂D/∂s = (2/S)(κ s − t)
    g_s = np.empty(x.shape, dtype=x.dtype)
    _block_combination(x, y, np.array([scale * kappa]), np.array([scale]), BLOCK, g_s)
    return (g_s.reshape(shape),)


# -- febs_dice_loss -----------------------------------------------------------------------------------
def _group_weights(squared_error, totals, groups, num_groups, gamma, eps, official_absent_group):
    """w_b = tanh((min D/D_g(b))^γ) from (B, C) float64 sums: D_g over the groups present."""
    present, position = np.unique(groups, return_inverse=True)
    membership = (position[None, :] == np.arange(present.size)[:, None]).astype(np.float64)  # (G', B)
    group_loss = (membership @ squared_error / (membership @ totals + eps)).sum(axis=1)
    smallest = group_loss.min()
    if official_absent_group and present.size < num_groups:
        smallest = 0.0
    safe = np.where(group_loss == 0, 1.0, group_loss)
    ratio = np.where(group_loss == smallest, 1.0, smallest / safe)
    return np.tanh(ratio**gamma)[position]


def febs_dice_loss_forward(p, t, groups, *, num_groups, gamma=1.0, eps=1e-5, official_absent_group=False):
    batch, num_classes = p.shape[:2]
    rows = batch * num_classes
    x, y = _as_rows(p, rows), _as_rows(t, rows)
    squared_error, _, x_squares, y_squares = _row_sums(x, y, np.ones(rows))
    weights = _group_weights(
        squared_error.reshape(batch, num_classes),
        (x_squares + y_squares).reshape(batch, num_classes),
        np.asarray(groups),
        num_groups,
        gamma,
        eps,
        official_absent_group,
    )
    row_weight = np.repeat(weights, num_classes)
    scaled = _row_sums(x, y, row_weight)
    squared_error, overlap, x_squares, y_squares = (v.reshape(batch, num_classes).sum(axis=0) for v in scaled)
    total = x_squares + y_squares + eps  # S_c
    loss = (squared_error / total).mean()
    kappa = (2 * overlap + eps) / total
    return np.asarray(loss, dtype=p.dtype), (x, y, p.shape, weights, kappa, total)


def febs_dice_loss_backward(residuals, g_loss):
    x, y, shape, weights, kappa, total = residuals
    num_classes = shape[1]
    # p̄[b, c] = a_bc p − b_bc t: b_bc = (L̄/C)·w_b·2/S_c, a_bc = b_bc·κ_c·w_b
    scale_t = (2 * float(g_loss) / num_classes) * weights[:, None] / total[None, :]
    scale_p = scale_t * kappa[None, :] * weights[:, None]
    g_p = np.empty(x.shape, dtype=x.dtype)
    _block_combination(x, y, scale_p.ravel(), scale_t.ravel(), BLOCK, g_p)
    return (g_p.reshape(shape),)


IMPLS = {
    "soft_dice_loss": Impl(soft_dice_loss_forward, soft_dice_loss_backward),
    "febs_dice_loss": Impl(febs_dice_loss_forward, febs_dice_loss_backward),
}
