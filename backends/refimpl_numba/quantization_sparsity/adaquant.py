"""AdaQuant's fake quantizer: fused Numba kernels, parallel over rows (channels).

Mirrors ``refimpl/quantization_sparsity/adaquant.py``. The per-channel scale ``s`` and the
integer zero point ``r_z`` are computed once per channel (a handful of values); one pass per
row then forms ``u = x/s + r_z``, rounds it half to even (``np.rint``) and dequantizes, in the
dtype of x like the reference. The straight-through backward recomputes ``u`` and ``q`` and
accumulates each row's range and zero-point cotangents in float64.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel

RANGE_MIN, RANGE_MAX = 1e-6, 1e5  # the official clamp of the range


def _grid(num_bits, signed):
    qmin = -(2 ** (num_bits - 1)) if signed else 0
    return qmin, qmin + 2**num_bits - 1


def _channel_parameters(range_, zero_point, qmin, qmax):
    """Per channel: s, r_z (dtype of the inputs), and whether each clamp passes the gradient."""
    dtype = range_.dtype.type
    s = np.clip(range_, dtype(RANGE_MIN), dtype(RANGE_MAX)) / dtype(qmax - qmin)
    zero_point_grid = np.rint(dtype(qmin) - zero_point / s)
    zero_point_free = (zero_point_grid >= qmin) & (zero_point_grid <= qmax)
    range_free = (range_ >= RANGE_MIN) & (range_ <= RANGE_MAX)
    return s, np.clip(zero_point_grid, qmin, qmax), zero_point_free, range_free


def _channels(rows, groups):
    """The (range, zero point) index of every row: its own (per channel) or 0 (per tensor)."""
    return np.arange(rows, dtype=np.int64) if groups > 1 else np.zeros(rows, dtype=np.int64)


@parallel_kernel()
def _fake_quantize_rows(x, channel, s, r_z, qmin, qmax, x_hat):
    for i in prange(x.shape[0]):
        c = channel[i]
        scale, zero = s[c], r_z[c]
        for k in range(x.shape[1]):
            u = x[i, k] / scale + zero
            q = np.rint(min(max(u, qmin), qmax))  # round half to even
            x_hat[i, k] = scale * (q - zero)


@parallel_kernel(fastmath={"reassoc"})
def _fake_quantize_backward_rows(
    g, x, channel, s, r_z, zero_over_s, zero_free, qmin, qmax, g_x, row_s, row_zp
):
    """g_x = ḡ inside the clamp; per row Σ ḡ ∂x̂/∂s and Σ ḡ ∂x̂/∂zero_point (float64), without
    branches. Outside, ∂x̂/∂s = (q − r_z) − zero_over_s and ∂x̂/∂zero_point = zero_free, where
    zero_over_s is zero_point/s and zero_free is 1 while r_z's clamp is inactive (else 0, 0)."""
    for i in prange(x.shape[0]):
        c = channel[i]
        scale, zero, outside_term, outside_zero_point = s[c], r_z[c], zero_over_s[c], zero_free[c]
        total_s = 0.0
        total_zero_point = 0.0
        for k in range(x.shape[1]):
            x_over_s = x[i, k] / scale
            u = x_over_s + zero
            q = np.rint(min(max(u, qmin), qmax))
            cotangent = g[i, k]
            inside = (u >= qmin) & (u <= qmax)
            g_x[i, k] = cotangent if inside else cotangent * 0
            d_s = (q - zero) - (x_over_s if inside else outside_term)
            total_s += np.float64(cotangent * d_s)
            total_zero_point += 0.0 if inside else np.float64(cotangent * outside_zero_point)
        row_s[i] = total_s
        row_zp[i] = total_zero_point


def adaquant_fake_quantize_forward(x, range, zero_point, *, num_bits, signed=False):
    qmin, qmax = _grid(num_bits, signed)
    s, r_z, zero_point_free, range_free = _channel_parameters(range, zero_point, qmin, qmax)
    work = np.ascontiguousarray(x)
    x_hat = np.empty_like(work)
    dtype = x.dtype.type
    channel = _channels(work.shape[0], s.shape[0])
    _fake_quantize_rows(work, channel, s, r_z, dtype(qmin), dtype(qmax), x_hat)
    zero_over_s = np.where(zero_point_free, zero_point / s, 0).astype(x.dtype)
    return x_hat, (work, s, r_z, zero_over_s, zero_point_free.astype(x.dtype), range_free, qmin, qmax)


def adaquant_fake_quantize_backward(residuals, g_x_hat):
    work, s, r_z, zero_over_s, zero_free, range_free, qmin, qmax = residuals
    dtype = work.dtype
    rows = work.shape[0]
    g_x = np.empty_like(work)
    row_s = np.empty(rows, dtype=np.float64)
    row_zero_point = np.empty(rows, dtype=np.float64)
    _fake_quantize_backward_rows(
        np.ascontiguousarray(g_x_hat),
        work,
        _channels(rows, s.shape[0]),
        s,
        r_z,
        zero_over_s,
        zero_free,
        dtype.type(qmin),
        dtype.type(qmax),
        g_x,
        row_s,
        row_zero_point,
    )
    if s.shape[0] == 1:  # one (range, zero point) for the tensor: every row adds to it
        row_s, row_zero_point = row_s.sum(keepdims=True), row_zero_point.sum(keepdims=True)
    g_range = np.where(range_free, row_s / (qmax - qmin), 0.0)
    return g_x, g_range.astype(dtype), row_zero_point.astype(dtype)


IMPLS = {"adaquant_fake_quantize": Impl(adaquant_fake_quantize_forward, adaquant_fake_quantize_backward)}
