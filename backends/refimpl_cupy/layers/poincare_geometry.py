"""Poincaré-ball geometry beyond ⊕ and the maps at 0, on CuPy: row reductions + fused kernels.

Mirrors ``refimpl/layers/poincare.py`` term by term: Möbius scalar multiplication and
matrix-vector product as ``exp_0(r log_0 x)`` / ``exp_0(M log_0 x)`` (the maps' kernels of
this backend's ``poincare.py``, cuBLAS for ``M``), ``exp_x``/``log_x`` through Möbius
addition, the distance in its ``arcosh(1 + δ)`` form, the gyration's closed form, parallel
transport and the projection. The cancellation-free forms are the reference's
(``D = β_xβ_y + q``, ``u² = q/D``, ``1 − u² = β_xβ_y/D``). Row sums are reductions; the
elementwise steps are fused kernels. Scalars enter as input-dtype numbers and literals are
integers, so float32 stays float32.

``exp_x`` adds ``x ⊕ exp_0(v/β_x)`` without capping ``c‖exp_0(·)‖²`` below 1: that point may
round onto the boundary, and the reference keeps ``1 − c‖e‖²`` as computed.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from refimpl.authoring import Impl, row_norm
from refimpl.layers.poincare import PROJECT_EPS, SERIES_BELOW

from .._fuse import kernel_set
from .poincare import (
    _scalar,
    mobius_add_backward,
    poincare_expmap0_forward,
    poincare_logmap0_forward,
    scaled_map_backward,
)
from .poincare import kernels_for as map_kernels_for


def _kernels(xp, fuse):
    @fuse
    def artanh_factors(u2, one_minus_u2, series_below):
        u = xp.sqrt(u2)
        small = u < series_below
        u2_lo = xp.minimum(u2, series_below * series_below)
        u_hi = xp.maximum(u, series_below)
        u2_hi = xp.maximum(u2, series_below * series_below)
        one_minus_hi = xp.minimum(one_minus_u2, 1 - series_below * series_below)
        f_direct = (xp.log1p(u_hi) - xp.log(one_minus_hi) / 2) / u_hi
        h_direct = (1 / one_minus_hi - f_direct) / u2_hi
        f = xp.where(small, 1 + u2_lo / 3 + u2_lo * u2_lo / 5, f_direct)
        h = xp.where(small, (10 + 12 * u2_lo) / 15, h_direct)  # 2/3 + 4u²/5
        return f, h

    @fuse
    def one_minus(a2, c):
        return 1 - c * a2

    @fuse
    def logmap_norms(x2, y2, diff2, c):
        beta_x = 1 - c * x2
        beta_y = 1 - c * y2
        q = c * diff2
        denominator = beta_x * beta_y + q
        return beta_x, q / denominator, beta_x * beta_y / denominator

    @fuse
    def mobius_factors(x2, y2, sigma2, c):
        beta_x = 1 - c * x2
        beta_y = 1 - c * y2
        q = c * sigma2
        return beta_x, beta_y, q, beta_x * beta_y + q

    @fuse
    def mobius_combine(x, y, beta_x, q, denominator):
        return (beta_x * (x + y) + q * x) / denominator

    @fuse
    def expmap_grad_x(g_x, g_s_dot_s, beta_x, x, c):
        return g_x + 2 * c * g_s_dot_s / beta_x * x

    @fuse
    def logmap_grad_x(g_minus_x, g_beta, x, c):
        return -g_minus_x - 2 * c * g_beta * x

    @fuse
    def distance(x2, y2, diff2, c, sqrt_c):
        beta_x = 1 - c * x2
        beta_y = 1 - c * y2
        q = c * diff2
        delta = 2 * q / (beta_x * beta_y)
        return xp.log1p(delta + xp.sqrt(delta * (delta + 2))) / sqrt_c, beta_x, beta_y, q

    @fuse
    def distance_grads(g_d, x, y, beta_x, beta_y, q, c):
        distance_xy = xp.sqrt(q / c)  # ‖x − y‖
        unit = (x - y) / xp.where(distance_xy > 0, distance_xy, 1)  # 0 at y = x: a subgradient
        scale = g_d * 2 / xp.sqrt(beta_x * beta_y + q)
        return scale * (unit + c * distance_xy * x / beta_x), scale * (-unit + c * distance_xy * y / beta_y)

    @fuse
    def gyration_scalars(ab, av, bv, a2, b2, sum2, c):
        c2 = c * c
        big_a = -c2 * av * b2 + c * bv + 2 * c2 * ab * bv
        big_b = -c2 * bv * a2 - c * av
        denominator = (1 - c * a2) * (1 - c * b2) + c * sum2
        return big_a, big_b, denominator

    @fuse
    def gyration_out(v, a, b, big_a, big_b, denominator):
        return v + 2 * (big_a * a + big_b * b) / denominator

    @fuse
    def gyration_back_scalars(g_dot_a, g_dot_b, ab, av, bv, a2, b2, big_a, big_b, denominator, c):
        c2 = c * c
        s = 2 / denominator
        g_big_a = s * g_dot_a
        g_big_b = s * g_dot_b
        g_denominator = -(big_a * g_dot_a + big_b * g_dot_b) * s / denominator
        g_av = -c2 * b2 * g_big_a - c * g_big_b
        g_bv = (c + 2 * c2 * ab) * g_big_a - c2 * a2 * g_big_b
        g_ab = 2 * c2 * bv * g_big_a + 2 * c * g_denominator
        g_a2 = -c2 * bv * g_big_b + c2 * b2 * g_denominator
        g_b2 = -c2 * av * g_big_a + c2 * a2 * g_denominator
        return s, g_av, g_bv, g_ab, g_a2, g_b2

    @fuse
    def gyration_grads(g_o, a, b, v, s, big_a, big_b, g_av, g_bv, g_ab, g_a2, g_b2):
        g_a = s * big_a * g_o + g_av * v + g_ab * b + 2 * g_a2 * a
        g_b = s * big_b * g_o + g_bv * v + g_ab * a + 2 * g_b2 * b
        g_v = g_o + g_av * a + g_bv * b
        return g_a, g_b, g_v

    @fuse
    def transport_grads(g_y, g_minus_x, g_ratio, beta_x, beta_y, ratio, x, y, c):
        g_beta_y = g_ratio / beta_x
        g_beta_x = -g_ratio * ratio / beta_x
        return -g_minus_x - 2 * c * g_beta_x * x, g_y - 2 * c * g_beta_y * y

    @fuse
    def project(x, norm, max_norm):
        outside = norm > max_norm
        scale = max_norm / xp.where(outside, norm, 1)
        return xp.where(outside, x * scale, x)

    kernels = {name: value for name, value in locals().items() if name not in ("xp", "fuse")}
    return SimpleNamespace(**kernels)


kernels_for = kernel_set(_kernels)


def _squared_norm(a):
    return map_kernels_for(a).squared_norm(a)[..., None]


def _row_dot(a, b):
    return map_kernels_for(a).row_dot(a, b)[..., None]


def _logmap0(y, c):
    return poincare_logmap0_forward(y, c=c)


def _expmap0(v, c):
    return poincare_expmap0_forward(v, c=c)


def _scaled_map_backward(residuals, g_o):
    (g_a,) = scaled_map_backward(residuals, g_o)
    return g_a


def _mobius_add(x, y, c):
    """``x ⊕ y`` as the reference's ``mobius_add.forward`` (no cap on ``c‖·‖²``)."""
    k = kernels_for(x)
    beta_x, beta_y, q, denominator = k.mobius_factors(
        _squared_norm(x), _squared_norm(y), map_kernels_for(x).squared_norm_of_sum(x, y)[..., None], c
    )
    o = k.mobius_combine(x, y, beta_x, q, denominator)
    return o, (x, y, o, beta_x, beta_y, q, denominator, c)


# -- Möbius scalar multiplication and matrix-vector product --------------------------------------
def mobius_scalar_mul_forward(r, x, *, c=1.0):
    c = _scalar(c, x)
    w, log_residuals = _logmap0(x, c)
    o, exp_residuals = _expmap0(r[..., None] * w, c)
    return o, (r, w, log_residuals, exp_residuals)


def mobius_scalar_mul_backward(residuals, g_o):
    r, w, log_residuals, exp_residuals = residuals
    g_p = _scaled_map_backward(exp_residuals, g_o)
    g_r = (g_p * w).sum(axis=-1)
    return g_r, _scaled_map_backward(log_residuals, r[..., None] * g_p)


def mobius_matvec_forward(M, x, *, c=1.0):
    c = _scalar(c, x)
    w, log_residuals = _logmap0(x, c)
    o, exp_residuals = _expmap0(w @ M.T, c)
    return o, (M, w, log_residuals, exp_residuals)


def mobius_matvec_backward(residuals, g_o):
    M, w, log_residuals, exp_residuals = residuals
    g_p = _scaled_map_backward(exp_residuals, g_o)
    g_M = g_p.reshape(-1, M.shape[0]).T @ w.reshape(-1, M.shape[1])
    return g_M, _scaled_map_backward(log_residuals, g_p @ M)


# -- exp and log maps at any point, distance ----------------------------------------------------
def poincare_expmap_forward(x, v, *, c=1.0):
    k = kernels_for(x)
    c = _scalar(c, x)
    beta_x = k.one_minus(_squared_norm(x), c)
    s = v / beta_x
    e, exp_residuals = _expmap0(s, c)
    o, add_residuals = _mobius_add(x, e, c)
    return o, (x, s, beta_x, c, exp_residuals, add_residuals)


def poincare_expmap_backward(residuals, g_o):
    x, s, beta_x, c, exp_residuals, add_residuals = residuals
    g_x, g_e = mobius_add_backward(add_residuals, g_o)
    g_s = _scaled_map_backward(exp_residuals, g_e)
    return kernels_for(x).expmap_grad_x(g_x, _row_dot(g_s, s), beta_x, x, c), g_s / beta_x


def poincare_logmap_forward(x, y, *, c=1.0):
    k = kernels_for(x)
    c = _scalar(c, x)
    beta_x, u2, one_minus_u2 = k.logmap_norms(_squared_norm(x), _squared_norm(y), _squared_norm(y - x), c)
    w, add_residuals = _mobius_add(-x, y, c)
    f, h = k.artanh_factors(u2, one_minus_u2, _scalar(SERIES_BELOW, x))
    log_w = f * w
    return beta_x * log_w, (x, beta_x, log_w, (w, f, h, c), add_residuals, c)


def poincare_logmap_backward(residuals, g_v):
    x, beta_x, log_w, log_residuals, add_residuals, c = residuals
    g_beta = _row_dot(g_v, log_w)
    g_w = _scaled_map_backward(log_residuals, beta_x * g_v)
    g_minus_x, g_y = mobius_add_backward(add_residuals, g_w)
    return kernels_for(x).logmap_grad_x(g_minus_x, g_beta, x, c), g_y


def poincare_distance_forward(x, y, *, c=1.0):
    k = kernels_for(x)
    c_x = _scalar(c, x)
    d, beta_x, beta_y, q = k.distance(
        _squared_norm(x), _squared_norm(y), _squared_norm(x - y), c_x, _scalar(math.sqrt(float(c)), x)
    )
    return d[..., 0], (x, y, beta_x, beta_y, q, c_x)


def poincare_distance_backward(residuals, g_d):
    x, y, beta_x, beta_y, q, c = residuals
    return kernels_for(x).distance_grads(g_d[..., None], x, y, beta_x, beta_y, q, c)


# -- gyration and parallel transport ------------------------------------------------------------
def _gyration_forward(a, b, v, c):
    k = kernels_for(a)
    ab, av, bv = _row_dot(a, b), _row_dot(a, v), _row_dot(b, v)
    a2, b2 = _squared_norm(a), _squared_norm(b)
    big_a, big_b, denominator = k.gyration_scalars(ab, av, bv, a2, b2, _squared_norm(a + b), c)
    o = k.gyration_out(v, a, b, big_a, big_b, denominator)
    return o, (a, b, v, ab, av, bv, a2, b2, big_a, big_b, denominator, c)


def _gyration_backward(residuals, g_o):
    a, b, v, ab, av, bv, a2, b2, big_a, big_b, denominator, c = residuals
    k = kernels_for(a)
    s, g_av, g_bv, g_ab, g_a2, g_b2 = k.gyration_back_scalars(
        _row_dot(g_o, a), _row_dot(g_o, b), ab, av, bv, a2, b2, big_a, big_b, denominator, c
    )
    return k.gyration_grads(g_o, a, b, v, s, big_a, big_b, g_av, g_bv, g_ab, g_a2, g_b2)


def poincare_gyration_forward(a, b, v, *, c=1.0):
    return _gyration_forward(a, b, v, _scalar(c, a))


def poincare_gyration_backward(residuals, g_o):
    return _gyration_backward(residuals, g_o)


def poincare_parallel_transport_forward(x, y, v, *, c=1.0):
    k = kernels_for(x)
    c = _scalar(c, x)
    beta_x = k.one_minus(_squared_norm(x), c)
    beta_y = k.one_minus(_squared_norm(y), c)
    g, gyration_residuals = _gyration_forward(y, -x, v, c)
    ratio = beta_y / beta_x
    return ratio * g, (x, y, g, beta_x, beta_y, ratio, gyration_residuals, c)


def poincare_parallel_transport_backward(residuals, g_o):
    x, y, g, beta_x, beta_y, ratio, gyration_residuals, c = residuals
    g_ratio = _row_dot(g_o, g)
    g_y, g_minus_x, g_v = _gyration_backward(gyration_residuals, ratio * g_o)
    g_x, g_y = kernels_for(x).transport_grads(g_y, g_minus_x, g_ratio, beta_x, beta_y, ratio, x, y, c)
    return g_x, g_y, g_v


# -- projection ----------------------------------------------------------------------------------
def poincare_project_forward(x, *, c=1.0, eps=None):
    eps = PROJECT_EPS[np.dtype(x.dtype)] if eps is None else float(eps)
    max_norm = _scalar((1 - eps) / math.sqrt(float(c)), x)
    norm = row_norm(x)  # ‖x‖ even where ‖x‖² overflows, as in the reference
    return kernels_for(x).project(x, norm, max_norm), None


IMPLS = {
    "mobius_scalar_mul": Impl(mobius_scalar_mul_forward, mobius_scalar_mul_backward),
    "mobius_matvec": Impl(mobius_matvec_forward, mobius_matvec_backward),
    "poincare_expmap": Impl(poincare_expmap_forward, poincare_expmap_backward),
    "poincare_logmap": Impl(poincare_logmap_forward, poincare_logmap_backward),
    "poincare_distance": Impl(poincare_distance_forward, poincare_distance_backward),
    "poincare_gyration": Impl(poincare_gyration_forward, poincare_gyration_backward),
    "poincare_parallel_transport": Impl(
        poincare_parallel_transport_forward, poincare_parallel_transport_backward
    ),
    "poincare_project": Impl(poincare_project_forward),
}
