"""Poincaré-ball operations on CuPy: row-norm reductions plus fused elementwise kernels.

Mirrors ``refimpl/layers/poincare.py``: the cancellation-free Möbius forms
(``D = β_x β_y + c‖x + y‖²``, ``N = β_x σ + q x``) and the branch-free series/direct select
of ``exp_0``/``log_0`` (each branch evaluated on arguments clipped to its side of the
switch, then ``where``). Row reductions are one fused ``sum`` each; per-row factors and the
outputs are one fused elementwise kernel each. Scalars (c, the switch) enter the kernels as
input-dtype numbers and every literal is an integer, so float32 stays float32.

On the GPU the reductions run in another order than the NumPy sums the domain check used,
so ``c‖x‖²`` is capped at the largest input-dtype number below 1 (a no-op for every point
the check's own arithmetic puts inside): ``1 − c‖x‖² > 0`` always.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from refimpl.authoring import Impl
from refimpl.layers.poincare import SERIES_BELOW

from .._fuse import kernel_set


def _kernels(xp, fuse):
    @fuse
    def squared_norm(a):
        return xp.sum(a * a, axis=-1)

    @fuse
    def squared_norm_of_sum(x, y):
        return xp.sum((x + y) * (x + y), axis=-1)

    @fuse
    def row_dot(a, b):
        return xp.sum(a * b, axis=-1)

    @fuse
    def row_dot_with_sum(g, x, y):
        return xp.sum(g * (x + y), axis=-1)

    @fuse
    def mobius_factors(x2, y2, sigma2, c, below_one):
        beta_x = 1 - xp.minimum(c * x2, below_one)
        beta_y = 1 - xp.minimum(c * y2, below_one)
        q = c * sigma2
        return beta_x, beta_y, q, beta_x * beta_y + q

    @fuse
    def mobius_combine(x, y, beta_x, q, denominator):
        return (beta_x * (x + y) + q * x) / denominator

    @fuse
    def mobius_grads(g_o, x, y, beta_x, beta_y, q, denominator, s_x, s_sigma, d_bar, c):
        g = g_o / denominator
        sigma = x + y
        g_x = (beta_x + q) * g + 2 * c * (s_x * sigma - s_sigma * x) + 2 * c * d_bar * (sigma - beta_y * x)
        g_y = beta_x * g + 2 * c * s_x * sigma + 2 * c * d_bar * (sigma - beta_x * y)
        return g_x, g_y

    @fuse
    def expmap0_factors(v2, c, series_below):
        u2 = c * v2
        u = xp.sqrt(u2)
        u2_lo = xp.minimum(u2, series_below * series_below)
        u_hi = xp.maximum(u, series_below)
        u2_hi = xp.maximum(u2, series_below * series_below)
        tanh_u = xp.tanh(u_hi)
        f_direct = tanh_u / u_hi
        h_direct = (1 - tanh_u * tanh_u - f_direct) / u2_hi
        small = u < series_below
        f = xp.where(small, 1 - u2_lo / 3 + 2 * u2_lo * u2_lo / 15, f_direct)
        h = xp.where(small, (8 * u2_lo - 10) / 15, h_direct)  # −2/3 + 8u²/15
        return f, h

    @fuse
    def logmap0_factors(y2, c, series_below, below_one):
        u2 = xp.minimum(c * y2, below_one)
        u = xp.sqrt(u2)
        u2_lo = xp.minimum(u2, series_below * series_below)
        u_hi = xp.maximum(u, series_below)
        u2_hi = xp.maximum(u2, series_below * series_below)
        f_direct = (xp.log1p(u_hi) - xp.log1p(-u2_hi) / 2) / u_hi
        h_direct = (1 / (1 - u2_hi) - f_direct) / u2_hi
        small = u < series_below
        f = xp.where(small, 1 + u2_lo / 3 + u2_lo * u2_lo / 5, f_direct)
        h = xp.where(small, (10 + 12 * u2_lo) / 15, h_direct)  # 2/3 + 4u²/5
        return f, h

    @fuse
    def scale_rows(a, f):
        return f * a

    @fuse
    def scaled_map_grad(g_o, a, f, h, g_dot_a, c):
        return f * g_o + c * h * g_dot_a * a

    return SimpleNamespace(
        squared_norm=squared_norm,
        squared_norm_of_sum=squared_norm_of_sum,
        row_dot=row_dot,
        row_dot_with_sum=row_dot_with_sum,
        mobius_factors=mobius_factors,
        mobius_combine=mobius_combine,
        mobius_grads=mobius_grads,
        expmap0_factors=expmap0_factors,
        logmap0_factors=logmap0_factors,
        scale_rows=scale_rows,
        scaled_map_grad=scaled_map_grad,
    )


kernels_for = kernel_set(_kernels)


def _scalar(value, like):
    """``value`` as a number of ``like``'s dtype (a NumPy scalar: no float64 promotion)."""
    return np.dtype(like.dtype).type(value)


def _below_one(like):
    one = np.dtype(like.dtype).type(1)
    return np.nextafter(one, one * 0)


def mobius_add_forward(x, y, *, c=1.0):
    k = kernels_for(x)
    c = _scalar(c, x)
    beta_x, beta_y, q, denominator = k.mobius_factors(
        k.squared_norm(x)[..., None],
        k.squared_norm(y)[..., None],
        k.squared_norm_of_sum(x, y)[..., None],
        c,
        _below_one(x),
    )
    o = k.mobius_combine(x, y, beta_x, q, denominator)
    return o, (x, y, o, beta_x, beta_y, q, denominator, c)


def mobius_add_backward(residuals, g_o):
    x, y, o, beta_x, beta_y, q, denominator, c = residuals
    k = kernels_for(x)
    g = g_o / denominator  # the reference's order: ⟨ō/D, x⟩, not ⟨ō, x⟩/D (ill-conditioned near ∂B)
    s_x = k.row_dot(g, x)[..., None]
    s_sigma = k.row_dot_with_sum(g, x, y)[..., None]
    d_bar = -k.row_dot(g_o, o)[..., None] / denominator
    g_x, g_y = k.mobius_grads(g_o, x, y, beta_x, beta_y, q, denominator, s_x, s_sigma, d_bar, c)
    return g_x, g_y


def poincare_expmap0_forward(v, *, c=1.0):
    k = kernels_for(v)
    c = _scalar(c, v)
    f, h = k.expmap0_factors(k.squared_norm(v)[..., None], c, _scalar(SERIES_BELOW, v))
    return k.scale_rows(v, f), (v, f, h, c)


def poincare_logmap0_forward(y, *, c=1.0):
    k = kernels_for(y)
    c = _scalar(c, y)
    f, h = k.logmap0_factors(k.squared_norm(y)[..., None], c, _scalar(SERIES_BELOW, y), _below_one(y))
    return k.scale_rows(y, f), (y, f, h, c)


def scaled_map_backward(residuals, g_o):
    """Shared VJP of both maps at the origin: ``ā = f ō + c h ⟨ō, a⟩ a``."""
    a, f, h, c = residuals
    k = kernels_for(a)
    g_a = k.scaled_map_grad(g_o, a, f, h, k.row_dot(g_o, a)[..., None], c)
    return (g_a,)


IMPLS = {
    "mobius_add": Impl(mobius_add_forward, mobius_add_backward),
    "poincare_expmap0": Impl(poincare_expmap0_forward, scaled_map_backward),
    "poincare_logmap0": Impl(poincare_logmap0_forward, scaled_map_backward),
}
