"""LDR-KL and ALDR-KL losses: fused Numba kernels, parallel over rows.

Mirrors ``refimpl/losses/ldr_kl.py``. The three logit normalizations share one form,
``z̃ = u/s`` with ``s = mean_k |u_k|``: ``u = z, s = 1`` ("none"), ``u = softplus(z)``
("softplus_mean") and ``u = z`` ("l1", ``K z/‖z‖₁ = z/mean|z|``), so one kernel serves all
three (given u: z itself, or softplus(z) computed first), and their VJPs share
``g_u = (g − sign(u)⟨g, u⟩/(K s))/s``. One pass per row normalizes, forms ``a = b/λ_i``
and evaluates ``λ_i (m + log1p(mean expm1(a − m)))``; the backward rebuilds the worst-case
distribution ``q = softmax(a)`` from the saved row max and normalizer (no (B, K) buffer kept
between the passes). Row scalars are float64; ``exp`` and ``expm1`` are the vectorizable
ones of ``_vmath``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from refimpl.authoring import Impl, reduce_rows, row_weights

from .._jit import parallel_kernel
from .._vmath import exp, expm1

_MODES = {"none": 0, "softplus_mean": 1, "l1": 2}


@parallel_kernel()
def _softplus_rows(z, u):
    """u = softplus(z) = max(z, 0) + log1p(exp(−|z|)), in float64 (the "softplus_mean" mode)."""
    for i in prange(z.shape[0]):
        for k in range(z.shape[1]):
            v = np.float64(z[i, k])
            u[i, k] = max(v, 0.0) + math.log1p(math.exp(-abs(v)))


@njit(cache=True, inline="always")
def _sigmoid(x):
    e = math.exp(-abs(x))
    return 1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e)


@njit(cache=True, inline="always")
def _shifted(c, u, i, k, label, top, inverse_s, z_tilde_y, inverse_lam, m):
    """a_k − m, with a_k = (c + ũ_k − z̃_y)/λ (a_y = 0) and m = a_top the row's largest.

    For k ≠ y and a largest term other than the label's, ``(ũ_k − ũ_top)/λ``: exactly 0 at
    the top (whatever order the additions are done in: reassociation is allowed here) and
    without the cancellation of ``a_k − m`` when |a| ≈ 300 (λ = 0.1), which would make the
    top softmax weight 1 − 250 ulps in one kernel and 1 in the other."""
    if k == label:
        return -m
    if top < 0:  # the label's a_y = 0 is the largest: m = 0
        return (c + u[i, k] * inverse_s - z_tilde_y) * inverse_lam
    return ((u[i, k] - u[i, top]) * inverse_s) * inverse_lam


@parallel_kernel(fastmath={"reassoc"})
def _ldr_rows(u, y, c, lam, normalized, row_max, top, normalizer, scale, per_row):
    num_classes = u.shape[1]
    for i in prange(u.shape[0]):
        s = 1.0
        if normalized:
            total = 0.0
            for k in range(num_classes):
                total += abs(u[i, k])
            s = total / num_classes
        label = y[i]
        inverse_s = 1.0 / s
        z_tilde_y = u[i, label] * inverse_s
        inverse_lam = 1.0 / lam[i]
        m = 0.0  # a_y = 0
        best = -1
        for k in range(num_classes):  # a_k = b_k/λ_i
            if k != label:
                a = (c + u[i, k] * inverse_s - z_tilde_y) * inverse_lam
                if a > m:
                    m, best = a, k
        acc = 0.0
        for k in range(num_classes):  # every exponent is <= 0
            acc += expm1(_shifted(c, u, i, k, label, best, inverse_s, z_tilde_y, inverse_lam, m))
        per_row[i] = lam[i] * (m + math.log1p(acc / num_classes))
        row_max[i] = m
        top[i] = best
        normalizer[i] = acc + num_classes  # Σ_k exp(a_k − m)
        scale[i] = s


@parallel_kernel(fastmath={"reassoc"})
def _ldr_backward_rows(u, y, c, lam, normalized, row_max, top, normalizer, scale, weight, z, softplus, g_z):
    """ū_k = w (q_k − δ_ky) with q = softmax(a) rebuilt from the row's max and normalizer,
    then through the normalization and, for "softplus_mean", du/dz = σ(z)."""
    num_classes = u.shape[1]
    for i in prange(u.shape[0]):
        label = y[i]
        s = scale[i]
        inverse_s = 1.0 / s
        z_tilde_y = u[i, label] * inverse_s
        inverse_lam = 1.0 / lam[i]
        m = row_max[i]
        w_over_normalizer = weight[i] / normalizer[i]
        best = top[i]
        for k in range(num_classes):
            shifted = _shifted(c, u, i, k, label, best, inverse_s, z_tilde_y, inverse_lam, m)
            g_z[i, k] = w_over_normalizer * exp(shifted)
        g_z[i, label] -= weight[i]
        if not normalized:
            continue
        g_dot_u = 0.0
        for k in range(num_classes):
            g_dot_u += g_z[i, k] * u[i, k]
        correction = g_dot_u / (num_classes * s)
        for k in range(num_classes):  # sign(u) = sign(z) ("l1"), 1 (softplus > 0)
            v = u[i, k]
            sign = 1.0 if v > 0 else (-1.0 if v < 0 else 0.0)
            g_z[i, k] = (g_z[i, k] - sign * correction) * inverse_s
        if softplus:
            for k in range(num_classes):
                g_z[i, k] = g_z[i, k] * _sigmoid(np.float64(z[i, k]))


def _forward(z, y, c, lam_rows, normalize):
    work = np.ascontiguousarray(z)
    labels = np.ascontiguousarray(y, dtype=np.int64)
    mode = _MODES[normalize]
    u = work
    if mode == 1:
        u = np.empty(work.shape, dtype=np.float64)
        _softplus_rows(work, u)
    row_max, normalizer, scale, per_row = (np.empty(work.shape[0], dtype=np.float64) for _ in range(4))
    top = np.empty(work.shape[0], dtype=np.int64)
    _ldr_rows(u, labels, float(c), lam_rows, mode != 0, row_max, top, normalizer, scale, per_row)
    saved = (u, labels, float(c), lam_rows, mode != 0, row_max, top, normalizer, scale, work, mode == 1)
    return per_row, saved


def ldr_kl_loss_forward(z, y, *, c=0.1, lam=10.0, normalize="none", reduction="mean"):
    per_row, saved = _forward(z, y, c, np.full(z.shape[0], float(lam)), normalize)
    return reduce_rows(per_row, reduction, z.dtype), (saved, reduction)


def ldr_kl_loss_backward(residuals, g_loss):
    saved, reduction = residuals
    u, labels, c, lam_rows, normalized, row_max, top, normalizer, scale, work, softplus = saved
    g_z = np.empty(work.shape, dtype=work.dtype)
    weight = row_weights(np.asarray(g_loss, dtype=np.float64), reduction, work.shape[0])
    _ldr_backward_rows(
        u, labels, c, lam_rows, normalized, row_max, top, normalizer, scale, weight, work, softplus, g_z
    )
    return (g_z,)


def aldr_kl_loss_forward(z, y, lam, ids, *, c=0.1, lam0=10.0, alpha=2.0, normalize="none", reduction="mean"):
    lam_rows = np.ascontiguousarray(lam[ids], dtype=np.float64)
    per_row, saved = _forward(z, y, c, lam_rows, normalize)
    per_row -= alpha * math.log(z.shape[1]) / (2 * lam0) * (lam_rows - lam0) ** 2
    return reduce_rows(per_row, reduction, z.dtype), (saved, reduction)


IMPLS = {
    "ldr_kl_loss": Impl(ldr_kl_loss_forward, ldr_kl_loss_backward),
    "aldr_kl_loss": Impl(aldr_kl_loss_forward, ldr_kl_loss_backward),
}
