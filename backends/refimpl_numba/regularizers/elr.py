"""ELR loss: fused Numba kernels, parallel over rows.

Mirrors ``refimpl/regularizers/elr.py``. Per row, the forward reads the logits once for
the max, once for the log-sum-exp (accumulated in float64) and once to write p and
accumulate ``D = Σ_k p_k (1 − t_k)`` (paper: no cancellation) or ``1 − ⟨t, p̃⟩`` (the
official clamp); the row's cross-entropy and log D are summed in float64 afterwards. The
backward recomputes nothing but one dot product per row (the clamp's ``⟨a, p⟩``).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl
from refimpl.regularizers.elr import CLAMP_HIGH, CLAMP_LOW

from .._jit import parallel_kernel


@parallel_kernel()
def _elr_rows(z, y, t, clamp, low, high, p, cross_entropy, denominator):
    batch, classes = z.shape
    for i in prange(batch):
        top = z[i, 0]
        for k in range(1, classes):
            top = max(top, z[i, k])
        total = 0.0
        for k in range(classes):
            total += np.exp(np.float64(z[i, k]) - top)  # subtract the row max: no overflow
        log_normalizer = top + np.log(total)
        d = 0.0
        for k in range(classes):
            p_k = np.exp(np.float64(z[i, k]) - log_normalizer)
            p[i, k] = p_k
            if clamp:
                d += np.float64(t[i, k]) * min(max(np.float64(p[i, k]), low), high)
            else:
                d += p_k * (1.0 - np.float64(t[i, k]))  # D = Σ p_k (1 − t_k)
        denominator[i] = 1.0 - d if clamp else d
        cross_entropy[i] = log_normalizer - z[i, y[i]]


@parallel_kernel()
def _elr_rows_backward(p, y, t, denominator, clamp, low, high, lam, scale, g_z):
    batch, classes = p.shape
    for i in prange(batch):
        d = denominator[i]
        if clamp:
            # a_k = −m_k t_k/D (m_k: p_k inside the clamp, bounds inclusive); g = p ⊙ (a − ⟨a, p⟩)
            a_dot_p = 0.0
            for k in range(classes):
                if p[i, k] >= low and p[i, k] <= high:
                    a_dot_p -= np.float64(t[i, k]) / d * p[i, k]
            for k in range(classes):
                a_k = -np.float64(t[i, k]) / d if (p[i, k] >= low and p[i, k] <= high) else 0.0
                g_z[i, k] = scale * (lam * p[i, k] * (a_k - a_dot_p) + p[i, k])
        else:
            for k in range(classes):
                # p ⊙ (u/D − 1), u = 1 − t
                g_z[i, k] = scale * (lam * p[i, k] * ((1.0 - np.float64(t[i, k])) / d - 1.0) + p[i, k])
        g_z[i, y[i]] -= scale


def elr_loss_forward(z, y, idx, targets, *, lam, clamp=False):
    dtype = z.dtype
    batch = z.shape[0]
    t = np.ascontiguousarray(targets[idx])
    p = np.empty_like(z)
    cross_entropy = np.empty(batch, dtype=np.float64)
    denominator = np.empty(batch, dtype=np.float64)
    low, high = dtype.type(CLAMP_LOW), dtype.type(CLAMP_HIGH)
    labels = np.ascontiguousarray(y, dtype=np.int64)
    _elr_rows(np.ascontiguousarray(z), labels, t, clamp, low, high, p, cross_entropy, denominator)
    loss = cross_entropy.sum() / batch + lam * np.log(denominator).sum() / batch
    return np.asarray(loss, dtype=dtype), (p, labels, t, denominator, lam, clamp)


def elr_loss_backward(residuals, g_loss):
    p, labels, t, denominator, lam, clamp = residuals
    low, high = p.dtype.type(CLAMP_LOW), p.dtype.type(CLAMP_HIGH)
    g_z = np.empty_like(p)
    scale = float(g_loss) / p.shape[0]
    _elr_rows_backward(p, labels, t, denominator, clamp, low, high, float(lam), scale, g_z)
    return (g_z,)


IMPLS = {"elr_loss": Impl(elr_loss_forward, elr_loss_backward)}
