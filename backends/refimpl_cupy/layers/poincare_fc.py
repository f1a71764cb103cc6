"""Poincaré ResNet layers (HNN++ FC layer, convolution, tangent ReLU, residual) on CuPy.

Mirrors ``refimpl/layers/poincare_fc.py`` term by term: the matrix products are cuBLAS
calls (``x ẑ``, ``Ā Zᵀ``, ``xᵀ Ā``), row sums and row maxima are reductions, and the
elementwise work is one fused kernel per stage (``u → asinh u, s``; the ``e^{−M}``-scaled
``sinh``/``cosh``; ``y``; the four backward products). Scalars enter the kernels as numbers
of the input dtype and every literal is an integer, so float32 stays float32. The
convolution unfolds with strided slices (as the reference) and reuses the FC functions; the
maps at the origin are the kernels of this backend's ``poincare.py``.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

from refimpl.authoring import Impl, row_norm
from refimpl.layers.poincare import SERIES_BELOW
from refimpl.layers.poincare_fc import beta_concat_ratio

from .._fuse import kernel_set, xp_of
from .poincare import _below_one, _scalar, mobius_add_backward, mobius_add_forward
from .poincare import kernels_for as map_kernels_for


def _kernels(xp, fuse):
    @fuse
    def fc_row_factors(x2, c, below_one):
        beta = 1 - xp.minimum(c * x2, below_one)
        return 2 / beta, (2 - beta) / beta

    @fuse
    def fc_pre(p, lam, lam_minus_one, cosh_r, sinh_r, zeta, sqrt_c):
        u = sqrt_c * lam * p * cosh_r - lam_minus_one * sinh_r
        asinh_u = xp.arcsinh(u)
        s = 2 * zeta * asinh_u
        return u, asinh_u, s, abs(s)

    @fuse
    def fc_scaled_sinh(s, abs_s, big):
        decay = xp.exp(abs_s - big)  # e^{|s| − M} ≤ 1
        return decay, xp.sign(s) * decay * (-xp.expm1(-2 * abs_s)) / 2  # e^{−M} sinh(s)

    @fuse
    def fc_out(t, big, tt, sqrt_c):
        scale = xp.exp(-big)
        big_q = xp.sqrt(scale * scale + tt)
        denominator = scale + big_q
        return t / (sqrt_c * denominator), big_q, denominator

    @fuse
    def fc_g_v(g_y, y, g_dot_y, denominator, big_q, decay, abs_s, c):
        cosh_scaled = decay * (1 + xp.exp(-2 * abs_s)) / 2  # e^{−M} cosh(s)
        return (g_y / denominator - c * g_dot_y * y / big_q) * cosh_scaled

    @fuse
    def fc_g_parts(g_v, u, asinh_u, p, lam, lam_minus_one, zeta, cosh_r, sinh_r, c, sqrt_c, two_over_sqrt_c):
        inverse_hypot = 1 / xp.hypot(1, u)  # asinh'(u); no u² overflow
        g_u = g_v * (2 * zeta / sqrt_c) * inverse_hypot
        g_a = g_v * 2 * lam * cosh_r * inverse_hypot
        g_lam_terms = g_u * (sqrt_c * p * cosh_r - sinh_r)
        g_r = g_u * (2 * c * lam * p * sinh_r - 2 * sqrt_c * lam_minus_one * cosh_r)
        g_zeta = g_v * two_over_sqrt_c * asinh_u - g_a * p
        return g_a, g_lam_terms, g_r, g_zeta

    @fuse
    def add_row_multiple(g_x, g_lam, c, lam, x):
        return g_x + g_lam * c * lam * lam * x

    @fuse
    def relu_pre(x, f_log):
        v = f_log * x
        return v > 0, xp.where(v > 0, v, 0)

    @fuse
    def relu_grad(g_a, active):
        return xp.where(active, g_a, 0)

    return SimpleNamespace(
        fc_row_factors=fc_row_factors,
        fc_pre=fc_pre,
        fc_scaled_sinh=fc_scaled_sinh,
        fc_out=fc_out,
        fc_g_v=fc_g_v,
        fc_g_parts=fc_g_parts,
        add_row_multiple=add_row_multiple,
        relu_pre=relu_pre,
        relu_grad=relu_grad,
    )


kernels_for = kernel_set(_kernels)


# -- the fully connected layer ------------------------------------------------------------
def _fc_forward(x, Z, r, c):
    xp, k = xp_of(x), kernels_for(x)
    sqrt_c = math.sqrt(c)
    lam, lam_minus_one = k.fc_row_factors(
        map_kernels_for(x).squared_norm(x)[..., None], _scalar(c, x), _below_one(x)
    )
    zeta = row_norm(Z.T)[:, 0]  # ‖z_k‖, also where ‖z_k‖² under- or overflows, as in the reference
    zeta_safe = xp.where(zeta > 0, zeta, xp.ones_like(zeta))  # only ζ = 0 is replaced
    z_hat = Z / zeta_safe
    p = x @ z_hat
    cosh_r = xp.cosh(2 * _scalar(sqrt_c, x) * r)
    sinh_r = xp.sinh(2 * _scalar(sqrt_c, x) * r)
    u, asinh_u, s, abs_s = k.fc_pre(p, lam, lam_minus_one, cosh_r, sinh_r, zeta, _scalar(sqrt_c, x))
    big = abs_s.max(axis=-1, keepdims=True)  # M: every exponential is scaled by e^{−M}
    decay, t = k.fc_scaled_sinh(s, abs_s, big)
    tt = (t * t).sum(axis=-1, keepdims=True)
    y, big_q, denominator = k.fc_out(t, big, tt, _scalar(sqrt_c, x))
    residuals = (x, Z, z_hat, zeta, p, lam, lam_minus_one, cosh_r, sinh_r, u, asinh_u, abs_s)
    return y, residuals + (decay, big_q, denominator, y, c)


def _fc_backward(residuals, g_y):
    x, Z, z_hat, zeta, p, lam, lam_minus_one, cosh_r, sinh_r, u, asinh_u, abs_s = residuals[:12]
    decay, big_q, denominator, y, c = residuals[12:]
    k = kernels_for(x)
    sqrt_c = math.sqrt(c)
    c_x = _scalar(c, x)
    g_dot_y = (g_y * y).sum(axis=-1, keepdims=True)
    g_v = k.fc_g_v(g_y, y, g_dot_y, denominator, big_q, decay, abs_s, c_x)
    g_a, g_lam_terms, g_r, g_zeta = k.fc_g_parts(
        g_v,
        u,
        asinh_u,
        p,
        lam,
        lam_minus_one,
        zeta,
        cosh_r,
        sinh_r,
        c_x,
        _scalar(sqrt_c, x),
        _scalar(2 / sqrt_c, x),
    )
    g_lam = g_lam_terms.sum(axis=-1, keepdims=True)
    g_x = k.add_row_multiple(g_a @ Z.T, g_lam, c_x, lam, x)
    m = Z.shape[1]
    x_rows = x.reshape(-1, x.shape[-1])
    g_Z = x_rows.T @ g_a.reshape(-1, m) + z_hat * g_zeta.reshape(-1, m).sum(axis=0)
    return g_x, g_Z, g_r.reshape(-1, m).sum(axis=0)


def poincare_fc_forward(x, Z, r, *, c=1.0):
    return _fc_forward(x, Z, r, float(c))


def poincare_fc_backward(residuals, g_y):
    return _fc_backward(residuals, g_y)


# -- convolution --------------------------------------------------------------------------
def _output_size(size, kernel_size, stride, padding):
    return (size + 2 * padding - kernel_size) // stride + 1


def poincare_conv2d_forward(x, Z, r, *, c=1.0, kernel_size, stride=1, padding=0):
    xp, maps = xp_of(x), map_kernels_for(x)
    c = float(c)
    k, s, pad = int(kernel_size), int(stride), int(padding)
    batch, height, width, n = x.shape
    out_height = _output_size(height, k, s, pad)
    out_width = _output_size(width, k, s, pad)
    rho = beta_concat_ratio(n, k * k * n)
    series_below = _scalar(SERIES_BELOW, x)
    f_log, h_log = maps.logmap0_factors(
        maps.squared_norm(x)[..., None], _scalar(c, x), series_below, _below_one(x)
    )
    v_pad = xp.zeros((batch, height + 2 * pad, width + 2 * pad, n), dtype=x.dtype)
    v_pad[:, pad : pad + height, pad : pad + width] = maps.scale_rows(x, f_log)
    windows = xp.empty((batch, out_height, out_width, k, k, n), dtype=x.dtype)
    for di in range(k):
        for dj in range(k):
            windows[:, :, :, di, dj] = v_pad[:, di : di + s * out_height : s, dj : dj + s * out_width : s]
    tangent = _scalar(rho, x) * windows.reshape(batch, out_height, out_width, k * k * n)
    f_exp, h_exp = maps.expmap0_factors(maps.squared_norm(tangent)[..., None], _scalar(c, x), series_below)
    points = maps.scale_rows(tangent, f_exp)
    y, fc_residuals = _fc_forward(points, Z, r, c)
    return y, (x, f_log, h_log, tangent, f_exp, h_exp, fc_residuals, rho, k, s, pad, c)


def poincare_conv2d_backward(residuals, g_y):
    x, f_log, h_log, tangent, f_exp, h_exp, fc_residuals, rho, k, s, pad, c = residuals
    xp, maps = xp_of(x), map_kernels_for(x)
    batch, height, width, n = x.shape
    _, out_height, out_width, _ = g_y.shape
    c_x = _scalar(c, x)
    g_points, g_Z, g_r = _fc_backward(fc_residuals, g_y)
    g_tangent = maps.scaled_map_grad(
        g_points, tangent, f_exp, h_exp, maps.row_dot(g_points, tangent)[..., None], c_x
    )
    g_windows = (_scalar(rho, x) * g_tangent).reshape(batch, out_height, out_width, k, k, n)
    g_v_pad = xp.zeros((batch, height + 2 * pad, width + 2 * pad, n), dtype=x.dtype)
    for di in range(k):
        for dj in range(k):
            g_v_pad[:, di : di + s * out_height : s, dj : dj + s * out_width : s] += g_windows[
                :, :, :, di, dj
            ]
    g_v = g_v_pad[:, pad : pad + height, pad : pad + width]
    g_x = maps.scaled_map_grad(g_v, x, f_log, h_log, maps.row_dot(g_v, x)[..., None], c_x)
    return g_x, g_Z, g_r


# -- tangent ReLU and the residual connection -------------------------------------------------
def _relu_forward(x, c):
    k, maps = kernels_for(x), map_kernels_for(x)
    series_below = _scalar(SERIES_BELOW, x)
    c_x = _scalar(c, x)
    f_log, h_log = maps.logmap0_factors(maps.squared_norm(x)[..., None], c_x, series_below, _below_one(x))
    active, a = k.relu_pre(x, f_log)
    f_exp, h_exp = maps.expmap0_factors(maps.squared_norm(a)[..., None], c_x, series_below)
    return maps.scale_rows(a, f_exp), (x, f_log, h_log, active, a, f_exp, h_exp, c_x)


def _relu_backward(residuals, g_o):
    x, f_log, h_log, active, a, f_exp, h_exp, c = residuals
    k, maps = kernels_for(x), map_kernels_for(x)
    g_a = maps.scaled_map_grad(g_o, a, f_exp, h_exp, maps.row_dot(g_o, a)[..., None], c)
    g_v = k.relu_grad(g_a, active)
    return maps.scaled_map_grad(g_v, x, f_log, h_log, maps.row_dot(g_v, x)[..., None], c)


def poincare_relu_forward(x, *, c=1.0):
    return _relu_forward(x, float(c))


def poincare_relu_backward(residuals, g_o):
    return (_relu_backward(residuals, g_o),)


def poincare_residual_forward(fx, x, *, c=1.0, activation="tangent_relu"):
    h, add_residuals = mobius_add_forward(fx, x, c=c)
    if activation == "none":
        return h, (add_residuals, None)
    o, relu_residuals = _relu_forward(h, float(c))
    return o, (add_residuals, relu_residuals)


def poincare_residual_backward(residuals, g_o):
    add_residuals, relu_residuals = residuals
    g_h = g_o if relu_residuals is None else _relu_backward(relu_residuals, g_o)
    return mobius_add_backward(add_residuals, g_h)


IMPLS = {
    "poincare_fc": Impl(poincare_fc_forward, poincare_fc_backward),
    "poincare_conv2d": Impl(poincare_conv2d_forward, poincare_conv2d_backward),
    "poincare_relu": Impl(poincare_relu_forward, poincare_relu_backward),
    "poincare_residual": Impl(poincare_residual_forward, poincare_residual_backward),
}
