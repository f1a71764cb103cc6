"""AdaQuant's fake quantizer on CuPy: one fused elementwise kernel forward, one backward.

Mirrors ``refimpl/quantization_sparsity/adaquant.py``: per-channel ``s`` and integer zero point
``r_z`` (a handful of values), then ``q = rint(clamp(x/s + r_z))`` and ``x̂ = s·(q − r_z)``
fused. ``rint`` rounds half to even on both paths (CUDA's ``round()`` rounds half away from
zero and is never used). The straight-through backward fuses the mask and the two per-element
derivatives; the row sums reduce them per channel (or over the tensor).
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of

RANGE_MIN, RANGE_MAX = 1e-6, 1e5  # the official clamp of the range


def _kernels(xp, fuse):
    @fuse
    def fake_quantize(x, s, r_z, qmin, qmax):
        q = xp.rint(xp.minimum(xp.maximum(x / s + r_z, qmin), qmax))  # half to even
        return s * (q - r_z)

    @fuse
    def fake_quantize_grad(g, x, s, r_z, zero_over_s, zero_free, qmin, qmax):
        x_over_s = x / s
        u = x_over_s + r_z
        q = xp.rint(xp.minimum(xp.maximum(u, qmin), qmax))
        inside = (u >= qmin) & (u <= qmax)
        zero = g * 0
        d_s = (q - r_z) - xp.where(inside, x_over_s, zero_over_s)
        return xp.where(inside, g, zero), g * d_s, xp.where(inside, zero, g * zero_free)

    return SimpleNamespace(fake_quantize=fake_quantize, fake_quantize_grad=fake_quantize_grad)


kernels_for = kernel_set(_kernels)


def adaquant_fake_quantize_forward(x, range, zero_point, *, num_bits, signed=False):
    xp = xp_of(x)
    k = kernels_for(x)
    dtype = x.dtype.type
    qmin = -(2 ** (num_bits - 1)) if signed else 0
    qmax = qmin + 2**num_bits - 1
    s = xp.clip(range, dtype(RANGE_MIN), dtype(RANGE_MAX)) / dtype(qmax - qmin)
    zero_point_grid = xp.rint(dtype(qmin) - zero_point / s)
    zero_free = (zero_point_grid >= qmin) & (zero_point_grid <= qmax)
    r_z = xp.clip(zero_point_grid, qmin, qmax)
    range_free = (range >= RANGE_MIN) & (range <= RANGE_MAX)
    s_col, r_col = s[:, None], r_z[:, None]
    x_hat = k.fake_quantize(x, s_col, r_col, dtype(qmin), dtype(qmax)).astype(x.dtype, copy=False)
    zero_over_s = xp.where(zero_free, zero_point / s, 0).astype(x.dtype)[:, None]
    return x_hat, (x, s_col, r_col, zero_over_s, zero_free.astype(x.dtype)[:, None], range_free, qmin, qmax)


def adaquant_fake_quantize_backward(residuals, g_x_hat):
    x, s_col, r_col, zero_over_s, zero_free, range_free, qmin, qmax = residuals
    xp = xp_of(x)
    k = kernels_for(x)
    dtype = x.dtype.type
    g = g_x_hat.astype(x.dtype, copy=False)
    g_x, per_element_s, per_element_zero_point = k.fake_quantize_grad(
        g, x, s_col, r_col, zero_over_s, zero_free, dtype(qmin), dtype(qmax)
    )
    if s_col.shape[0] == 1:  # one (range, zero point) for the tensor
        g_s, g_zero_point = per_element_s.sum().reshape(1), per_element_zero_point.sum().reshape(1)
    else:
        g_s, g_zero_point = per_element_s.sum(axis=1), per_element_zero_point.sum(axis=1)
    g_range = xp.where(range_free, g_s / dtype(qmax - qmin), 0)
    return (
        g_x.astype(x.dtype, copy=False),
        g_range.astype(x.dtype, copy=False),
        g_zero_point.astype(x.dtype, copy=False),
    )


IMPLS = {"adaquant_fake_quantize": Impl(adaquant_fake_quantize_forward, adaquant_fake_quantize_backward)}
