"""Soft thresholding and group soft thresholding: Numba kernels.

Mirrors ``refimpl/solvers/prox.py``. ``soft_threshold`` is one elementwise pass (parallel over
elements) that also writes the active mask ``|v| > λ`` for the backward ``v̄ = 1[|v| > λ] ⊙ x̄``.
``group_soft_threshold`` is one pass per row (parallel over rows): the row's norm in float64
(scaled by its largest entry, as LAPACK's ``nrm2``, so that no square over- or underflows),
then ``y = max(0, 1 − τ/‖u‖)·u``; the backward ``ū = ȳ − (τ/‖u‖)(ȳ − û⟨û, ȳ⟩)`` recomputes
``û`` from the saved norm.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@parallel_kernel()
def _soft_threshold(v, lam, x, active):
    for j in prange(v.shape[0]):
        value = np.float64(v[j])
        magnitude = abs(value) - lam
        if magnitude > 0:
            x[j] = math.copysign(magnitude, value)
            active[j] = True
        else:
            x[j] = math.copysign(0.0, value)  # sign(v)·0 keeps the reference's signed zero
            active[j] = False


@parallel_kernel()
def _masked(g, active, out):
    for j in prange(g.shape[0]):
        out[j] = g[j] if active[j] else 0.0


def soft_threshold_forward(v, *, lam):
    work = np.ascontiguousarray(v)
    dtype = v.dtype.type
    x = np.empty_like(work)
    active = np.empty(work.shape[0], dtype=np.bool_)
    # compare |v| with λ rounded to the dtype, as the reference does
    _soft_threshold(work, np.float64(dtype(lam)), x, active)
    return x, active


def soft_threshold_backward(residuals, g_x):
    active = residuals
    g = np.ascontiguousarray(g_x)
    out = np.empty_like(g)
    _masked(g, active, out)
    return (out,)


@njit(cache=True)
def _row_norm(u, i):
    largest = 0.0
    for k in range(u.shape[1]):
        largest = max(largest, abs(np.float64(u[i, k])))
    if largest == 0.0:
        return 0.0
    total = 0.0
    for k in range(u.shape[1]):
        scaled = np.float64(u[i, k]) / largest
        total += scaled * scaled
    return largest * math.sqrt(total)


@parallel_kernel()
def _group_soft_threshold_rows(u, threshold, y, norm):
    for i in prange(u.shape[0]):
        length = _row_norm(u, i)
        norm[i] = length
        # τ = 0 is the identity, the zero row included
        scale = 1.0 - threshold / length if length > threshold else (1.0 if threshold == 0 else 0.0)
        for k in range(u.shape[1]):
            y[i, k] = scale * np.float64(u[i, k])


@parallel_kernel()
def _group_soft_threshold_backward_rows(u, norm, threshold, g_y, g_u):
    for i in prange(u.shape[0]):
        length = norm[i]
        if threshold == 0:  # the identity
            for k in range(u.shape[1]):
                g_u[i, k] = g_y[i, k]
            continue
        if not length > threshold:
            for k in range(u.shape[1]):
                g_u[i, k] = 0.0
            continue
        inverse = 1.0 / length
        along = 0.0  # ⟨û, ȳ⟩
        for k in range(u.shape[1]):
            along += np.float64(u[i, k]) * inverse * np.float64(g_y[i, k])
        shrink = threshold * inverse  # τ/‖u‖
        for k in range(u.shape[1]):
            g = np.float64(g_y[i, k])
            g_u[i, k] = g - shrink * (g - np.float64(u[i, k]) * inverse * along)


def group_soft_threshold_forward(u, *, t, beta):
    work = np.ascontiguousarray(u)
    threshold = float(t) * float(beta)
    y = np.empty_like(work)
    norm = np.empty(work.shape[0], dtype=np.float64)
    _group_soft_threshold_rows(work, threshold, y, norm)
    return y, (work, norm, threshold)


def group_soft_threshold_backward(residuals, g_y):
    work, norm, threshold = residuals
    g = np.ascontiguousarray(np.asarray(g_y).astype(work.dtype, copy=False))
    g_u = np.empty_like(work)
    _group_soft_threshold_backward_rows(work, norm, threshold, g, g_u)
    return (g_u,)


IMPLS = {
    "soft_threshold": Impl(soft_threshold_forward, soft_threshold_backward),
    "group_soft_threshold": Impl(group_soft_threshold_forward, group_soft_threshold_backward),
}
