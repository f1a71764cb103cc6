"""LR+GD and normalized LR+GD steps: NumPy's BLAS for ``Ax`` and ``Aᵀc``, Numba for the weights.

Mirrors ``refimpl/optim/logistic_gd.py``. The two products go through ``np.dot`` (BLAS);
the per-row work between them (margin, logistic weight, log-softplus) is one parallel
kernel over the n rows in float64 with ``_vmath`` exponentials and logs, and the reductions
over rows (max, log-sum-exp) are float64 loops.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from refimpl.authoring import Impl

from .. import _vmath
from .._jit import parallel_kernel


@njit(cache=True, inline="always")
def _softplus(u):
    return max(u, 0.0) + _vmath.log1p(_vmath.exp(-abs(u)))


@parallel_kernel()
def _weights(ax, y, mode, out_w, out_aux):
    """mode 0: w = σ(−m)·y; mode 1: log σ(−m) and log softplus(−m); mode 2: log σ(−m)."""
    for i in prange(ax.shape[0]):
        yi = np.float64(y[i])
        m = yi * np.float64(ax[i])
        if mode == 0:
            e = _vmath.exp(-abs(m))
            out_w[i] = (1.0 / (1.0 + e) if m <= 0 else e / (1.0 + e)) * yi
        else:
            out_w[i] = -_softplus(m)
            if mode == 1:
                t = -m
                if t > 0:
                    out_aux[i] = _vmath.log(_softplus(t))
                else:
                    u = _vmath.exp(t)
                    out_aux[i] = t + (_vmath.log(_vmath.log1p(u) / u) if u > 0 else 0.0)


@njit(cache=True)
def _finish(log_w, log_s, y, mode):
    """The normalized weights ω ⊙ y from the log weights (mode 1: loss, 2: gradient norm)."""
    n = log_w.shape[0]
    shift = -np.inf
    if mode == 1:
        top = -np.inf
        for i in range(n):
            top = max(top, log_s[i])
        total = 0.0
        for i in range(n):
            total += _vmath.exp(log_s[i] - top)
        shift = top + _vmath.log(total)
    else:
        for i in range(n):
            shift = max(shift, log_w[i])
    out = np.empty(n)
    for i in range(n):
        out[i] = _vmath.exp(log_w[i] - shift) * np.float64(y[i])
    return out


def logistic_gd_step_forward(data, labels, x, *, lr):
    dtype = x.dtype
    ax = np.dot(data, x)
    coefficient = np.empty(data.shape[0])
    _weights(ax, labels, 0, coefficient, coefficient)
    grad = -np.dot(data.T, coefficient.astype(dtype)) / data.shape[0]
    return x - dtype.type(lr) * grad, None


def normalized_logistic_gd_step_forward(data, labels, x, *, lr, normalizer):
    dtype = x.dtype
    n = data.shape[0]
    mode = 1 if normalizer == "loss" else 2
    ax = np.dot(data, x)
    log_w, log_s = np.empty(n), np.empty(n)
    _weights(ax, labels, mode, log_w, log_s)
    v = np.dot(data.T, _finish(log_w, log_s, labels, mode).astype(dtype))
    if mode == 2:
        norm = math.sqrt(float(np.dot(v.astype(np.float64), v.astype(np.float64))))
        if norm == 0:
            return x.copy(), None
        v = v / dtype.type(norm)
    return (x + dtype.type(lr) * v).astype(dtype), None


IMPLS = {
    "logistic_gd_step": Impl(logistic_gd_step_forward),
    "normalized_logistic_gd_step": Impl(normalized_logistic_gd_step_forward),
}
