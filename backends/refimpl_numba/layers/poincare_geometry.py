"""Poincaré-ball geometry beyond ⊕ and the maps at 0: Numba kernels, parallel over rows.

Mirrors ``refimpl/layers/poincare.py``: Möbius scalar multiplication and matrix-vector
product (``exp_0(r log_0 x)``, ``exp_0(M log_0 x)``), ``exp_x``/``log_x``, the distance
(``arcosh(1 + δ)`` form), gyration, parallel transport and the projection, with the
reference's cancellation-free forms (``D = β_xβ_y + q``, ``u² = q/D``, ``1 − u² = β_xβ_y/D``)
and its series below ``u = 1e-3``. Every per-row quantity is computed in float64 (also for
float32 inputs). Each kernel handles one row per iteration; rows that need an intermediate
vector more than once (``exp_x``, ``log_x``, transport) keep it in a float64 scratch row.
The matrix product of ``mobius_matvec`` goes to BLAS in the input dtype, as in the reference.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from refimpl.authoring import Impl
from refimpl.layers.poincare import PROJECT_EPS, SERIES_BELOW

from .._jit import parallel_kernel
from .poincare import (
    _below_one,
    _expmap0_factors,
    _expmap0_rows,
    _logmap0_factors,
    _logmap0_rows,
    _rows,
    _scaled_map_backward_rows,
)


@njit(cache=True, inline="always")
def _artanh_factors(u2, one_minus_u2):
    """``F = artanh(u)/u`` and ``F'(u)/u`` from ``u²`` and ``1 − u²`` given apart."""
    u = math.sqrt(u2)
    if u < SERIES_BELOW:
        return 1.0 + u2 / 3.0 + u2 * u2 / 5.0, 2.0 / 3.0 + 4.0 * u2 / 5.0
    one_minus = min(one_minus_u2, 1.0 - SERIES_BELOW * SERIES_BELOW)
    f = (math.log1p(u) - 0.5 * math.log(one_minus)) / u
    return f, (1.0 / one_minus - f) / u2


# -- Möbius scalar multiplication ------------------------------------------------------------
@parallel_kernel()
def _scalar_mul_rows(r, x, c, below_one, o, factors):
    n_rows, n = x.shape
    for i in prange(n_rows):
        x2 = 0.0
        for j in range(n):
            xj = np.float64(x[i, j])
            x2 += xj * xj
        f_log, h_log = _logmap0_factors(min(c * x2, below_one))
        ri = np.float64(r[i])
        k = ri * f_log  # p = k x
        p2 = 0.0
        for j in range(n):
            pj = k * np.float64(x[i, j])
            p2 += pj * pj
        f_exp, h_exp = _expmap0_factors(c * p2)
        for j in range(n):
            o[i, j] = f_exp * (k * np.float64(x[i, j]))
        factors[i, 0] = f_log
        factors[i, 1] = h_log
        factors[i, 2] = f_exp
        factors[i, 3] = h_exp


@parallel_kernel()
def _scalar_mul_backward_rows(r, x, factors, c, g_o, g_r, g_x):
    n_rows, n = x.shape
    for i in prange(n_rows):
        f_log = factors[i, 0]
        h_log = factors[i, 1]
        f_exp = factors[i, 2]
        h_exp = factors[i, 3]
        ri = np.float64(r[i])
        g_dot_p = 0.0
        for j in range(n):
            g_dot_p += np.float64(g_o[i, j]) * (ri * (f_log * np.float64(x[i, j])))
        scale_p = c * h_exp * g_dot_p
        g_dot_w = 0.0  # ⟨p̄, w⟩ = r̄
        g_w_dot_x = 0.0
        for j in range(n):
            xj = np.float64(x[i, j])
            wj = f_log * xj
            g_p = f_exp * np.float64(g_o[i, j]) + scale_p * (ri * wj)
            g_dot_w += g_p * wj
            g_w_dot_x += ri * g_p * xj
        scale_x = c * h_log * g_w_dot_x
        for j in range(n):
            xj = np.float64(x[i, j])
            g_p = f_exp * np.float64(g_o[i, j]) + scale_p * (ri * (f_log * xj))
            g_x[i, j] = f_log * (ri * g_p) + scale_x * xj
        g_r[i] = g_dot_w


def mobius_scalar_mul_forward(r, x, *, c=1.0):
    c = float(c)
    x_rows = _rows(x)
    r_rows = np.ascontiguousarray(r).reshape(-1)
    o = np.empty_like(x_rows)
    factors = np.empty((x_rows.shape[0], 4))
    _scalar_mul_rows(r_rows, x_rows, c, _below_one(x.dtype), o, factors)
    return o.reshape(x.shape), (r_rows, x_rows, factors, c, r.shape, x.shape)


def mobius_scalar_mul_backward(residuals, g_o):
    r_rows, x_rows, factors, c, r_shape, x_shape = residuals
    g_r = np.empty_like(r_rows)
    g_x = np.empty_like(x_rows)
    _scalar_mul_backward_rows(r_rows, x_rows, factors, c, _rows(g_o), g_r, g_x)
    return g_r.reshape(r_shape), g_x.reshape(x_shape)


# -- Möbius matrix-vector product --------------------------------------------------------------
def mobius_matvec_forward(M, x, *, c=1.0):
    c = float(c)
    x_rows = _rows(x)
    n_rows = x_rows.shape[0]
    w = np.empty_like(x_rows)
    f_log, h_log = np.empty(n_rows), np.empty(n_rows)
    _logmap0_rows(x_rows, c, _below_one(x.dtype), w, f_log, h_log)
    p = w @ M.T
    o = np.empty_like(p)
    f_exp, h_exp = np.empty(n_rows), np.empty(n_rows)
    _expmap0_rows(p, c, o, f_exp, h_exp)
    return o.reshape(*x.shape[:-1], M.shape[0]), (M, x_rows, w, f_log, h_log, p, f_exp, h_exp, c, x.shape)


def mobius_matvec_backward(residuals, g_o):
    M, x_rows, w, f_log, h_log, p, f_exp, h_exp, c, shape = residuals
    g_p = np.empty_like(p)
    _scaled_map_backward_rows(p, f_exp, h_exp, c, _rows(g_o), g_p)
    g_M = g_p.T @ w
    g_x = np.empty_like(x_rows)
    _scaled_map_backward_rows(x_rows, f_log, h_log, c, g_p @ M, g_x)
    return g_M, g_x.reshape(shape)


# -- exp and log maps at any point -----------------------------------------------------------
@parallel_kernel()
def _expmap_rows(x, v, c, below_one, o, factors):
    """``o = x ⊕ e``, ``e = exp_0(v/β_x)``; factors: β_x, T, h_T, β_e, q, D per row."""
    n_rows, n = x.shape
    for i in prange(n_rows):
        x2 = 0.0
        v2 = 0.0
        for j in range(n):
            xj = np.float64(x[i, j])
            vj = np.float64(v[i, j])
            x2 += xj * xj
            v2 += vj * vj
        beta_x = 1.0 - min(c * x2, below_one)
        s2 = 0.0
        for j in range(n):
            sj = np.float64(v[i, j]) / beta_x
            s2 += sj * sj
        t, h_t = _expmap0_factors(c * s2)
        e2 = 0.0
        sigma2 = 0.0
        for j in range(n):
            ej = t * (np.float64(v[i, j]) / beta_x)
            sigma = np.float64(x[i, j]) + ej
            e2 += ej * ej
            sigma2 += sigma * sigma
        beta_e = 1.0 - c * e2  # e may round onto the boundary: not capped, as in the reference
        q = c * sigma2
        denominator = beta_x * beta_e + q
        for j in range(n):
            xj = np.float64(x[i, j])
            sigma = xj + t * (np.float64(v[i, j]) / beta_x)
            o[i, j] = (beta_x * sigma + q * xj) / denominator
        factors[i, 0] = beta_x
        factors[i, 1] = t
        factors[i, 2] = h_t
        factors[i, 3] = beta_e
        factors[i, 4] = q
        factors[i, 5] = denominator


@parallel_kernel()
def _expmap_backward_rows(x, v, factors, c, g_o, g_x, g_v, scratch):
    n_rows, n = x.shape
    two_c = 2.0 * c
    for i in prange(n_rows):
        beta_x = factors[i, 0]
        t = factors[i, 1]
        h_t = factors[i, 2]
        beta_e = factors[i, 3]
        q = factors[i, 4]
        denominator = factors[i, 5]
        alpha = beta_x + q
        g_dot_o = 0.0
        g_dot_x = 0.0
        g_dot_sigma = 0.0
        for j in range(n):
            xj = np.float64(x[i, j])
            sigma = xj + t * (np.float64(v[i, j]) / beta_x)
            oj = (beta_x * sigma + q * xj) / denominator
            gj = np.float64(g_o[i, j])
            g_dot_o += gj * oj
            g_dot_x += gj * xj
            g_dot_sigma += gj * sigma
        s_x = g_dot_x / denominator
        s_sigma = g_dot_sigma / denominator
        d_bar = -g_dot_o / denominator
        # ē (the e-part of ⊕'s VJP) into scratch, x̄₁ into g_x
        g_e_dot_s = 0.0
        for j in range(n):
            xj = np.float64(x[i, j])
            sj = np.float64(v[i, j]) / beta_x
            ej = t * sj
            sigma = xj + ej
            g = np.float64(g_o[i, j]) / denominator
            g_x[i, j] = (
                alpha * g + two_c * (s_x * sigma - s_sigma * xj) + two_c * d_bar * (sigma - beta_e * xj)
            )
            g_e = beta_x * g + two_c * s_x * sigma + two_c * d_bar * (sigma - beta_x * ej)
            scratch[i, j] = g_e
            g_e_dot_s += g_e * sj
        scale_s = c * h_t * g_e_dot_s
        g_s_dot_s = 0.0
        for j in range(n):
            sj = np.float64(v[i, j]) / beta_x
            g_s = t * scratch[i, j] + scale_s * sj
            scratch[i, j] = g_s
            g_s_dot_s += g_s * sj
        scale_x = two_c * g_s_dot_s / beta_x
        for j in range(n):
            g_v[i, j] = scratch[i, j] / beta_x
            g_x[i, j] = g_x[i, j] + scale_x * np.float64(x[i, j])


def poincare_expmap_forward(x, v, *, c=1.0):
    c = float(c)
    x_rows, v_rows = _rows(x), _rows(v)
    o = np.empty_like(x_rows)
    factors = np.empty((x_rows.shape[0], 6))
    _expmap_rows(x_rows, v_rows, c, _below_one(x.dtype), o, factors)
    return o.reshape(x.shape), (x_rows, v_rows, factors, c, x.shape)


def poincare_expmap_backward(residuals, g_o):
    x_rows, v_rows, factors, c, shape = residuals
    g_x = np.empty(x_rows.shape)
    g_v = np.empty_like(v_rows)
    scratch = np.empty(x_rows.shape)
    _expmap_backward_rows(x_rows, v_rows, factors, c, _rows(g_o), g_x, g_v, scratch)
    return g_x.astype(x_rows.dtype, copy=False).reshape(shape), g_v.reshape(shape)


@parallel_kernel()
def _logmap_rows(x, y, c, below_one, o, w, factors):
    """``o = β_x F(u) w``, ``w = −x ⊕ y`` (float64, kept); factors: β_x, β_y, q, D, F, h_F."""
    n_rows, n = x.shape
    for i in prange(n_rows):
        x2 = 0.0
        y2 = 0.0
        sigma2 = 0.0
        for j in range(n):
            xj = np.float64(x[i, j])
            yj = np.float64(y[i, j])
            sigma = yj - xj
            x2 += xj * xj
            y2 += yj * yj
            sigma2 += sigma * sigma
        beta_x = 1.0 - min(c * x2, below_one)
        beta_y = 1.0 - min(c * y2, below_one)
        q = c * sigma2
        denominator = beta_x * beta_y + q
        f, h = _artanh_factors(q / denominator, beta_x * beta_y / denominator)
        for j in range(n):
            xj = np.float64(x[i, j])
            wj = (beta_x * (np.float64(y[i, j]) - xj) - q * xj) / denominator  # (−x) ⊕ y
            w[i, j] = wj
            o[i, j] = beta_x * (f * wj)
        factors[i, 0] = beta_x
        factors[i, 1] = beta_y
        factors[i, 2] = q
        factors[i, 3] = denominator
        factors[i, 4] = f
        factors[i, 5] = h


@parallel_kernel()
def _logmap_backward_rows(x, y, w, factors, c, g_o, g_x, g_y, scratch):
    n_rows, n = x.shape
    two_c = 2.0 * c
    for i in prange(n_rows):
        beta_x = factors[i, 0]
        beta_y = factors[i, 1]
        q = factors[i, 2]
        denominator = factors[i, 3]
        f = factors[i, 4]
        h = factors[i, 5]
        g_beta = 0.0  # ⟨ō, log_w⟩
        g_l_dot_w = 0.0  # ⟨l̄, w⟩, l̄ = β_x ō (summed as the reference rounds them)
        for j in range(n):
            g_beta += np.float64(g_o[i, j]) * (f * w[i, j])
            g_l_dot_w += (beta_x * np.float64(g_o[i, j])) * w[i, j]
        scale_w = c * h * g_l_dot_w
        # w̄ into scratch, and the dot products of ⊕'s VJP (m = −x, σ = y − x)
        g_dot_m = 0.0
        g_dot_sigma = 0.0
        g_w_dot_w = 0.0
        for j in range(n):
            xj = np.float64(x[i, j])
            g_w = f * (beta_x * np.float64(g_o[i, j])) + scale_w * w[i, j]
            scratch[i, j] = g_w
            g = g_w / denominator  # ⟨w̄/D, ·⟩ as the reference rounds it (ill-conditioned near ∂B)
            g_dot_m -= g * xj
            g_dot_sigma += g * (np.float64(y[i, j]) - xj)
            g_w_dot_w += g_w * w[i, j]
        s_m = g_dot_m
        s_sigma = g_dot_sigma
        d_bar = -g_w_dot_w / denominator
        alpha = beta_x + q
        for j in range(n):
            xj = np.float64(x[i, j])
            yj = np.float64(y[i, j])
            m = -xj
            sigma = yj - xj
            g = scratch[i, j] / denominator
            g_m = alpha * g + two_c * (s_m * sigma - s_sigma * m) + two_c * d_bar * (sigma - beta_y * m)
            g_y[i, j] = beta_x * g + two_c * s_m * sigma + two_c * d_bar * (sigma - beta_x * yj)
            g_x[i, j] = -g_m - two_c * g_beta * xj


def poincare_logmap_forward(x, y, *, c=1.0):
    c = float(c)
    x_rows, y_rows = _rows(x), _rows(y)
    o = np.empty_like(x_rows)
    w = np.empty(x_rows.shape)
    factors = np.empty((x_rows.shape[0], 6))
    _logmap_rows(x_rows, y_rows, c, _below_one(x.dtype), o, w, factors)
    return o.reshape(x.shape), (x_rows, y_rows, w, factors, c, x.shape)


def poincare_logmap_backward(residuals, g_o):
    x_rows, y_rows, w, factors, c, shape = residuals
    g_x = np.empty_like(x_rows)
    g_y = np.empty_like(y_rows)
    scratch = np.empty(x_rows.shape)
    _logmap_backward_rows(x_rows, y_rows, w, factors, c, _rows(g_o), g_x, g_y, scratch)
    return g_x.reshape(shape), g_y.reshape(shape)


# -- distance --------------------------------------------------------------------------------
@parallel_kernel()
def _distance_rows(x, y, c, below_one, d, factors):
    n_rows, n = x.shape
    for i in prange(n_rows):
        x2 = 0.0
        y2 = 0.0
        diff2 = 0.0
        for j in range(n):
            xj = np.float64(x[i, j])
            yj = np.float64(y[i, j])
            diff = xj - yj
            x2 += xj * xj
            y2 += yj * yj
            diff2 += diff * diff
        beta_x = 1.0 - min(c * x2, below_one)
        beta_y = 1.0 - min(c * y2, below_one)
        q = c * diff2
        delta = 2.0 * q / (beta_x * beta_y)
        d[i] = math.log1p(delta + math.sqrt(delta * (delta + 2.0))) / math.sqrt(c)
        factors[i, 0] = beta_x
        factors[i, 1] = beta_y
        factors[i, 2] = q


@parallel_kernel()
def _distance_backward_rows(x, y, factors, c, g_d, g_x, g_y):
    n_rows, n = x.shape
    for i in prange(n_rows):
        beta_x = factors[i, 0]
        beta_y = factors[i, 1]
        q = factors[i, 2]
        distance_xy = math.sqrt(q / c)  # ‖x − y‖
        inverse = 1.0 / distance_xy if distance_xy > 0.0 else 0.0  # unit = 0 at y = x: a subgradient
        scale = np.float64(g_d[i]) * 2.0 / math.sqrt(beta_x * beta_y + q)
        for j in range(n):
            xj = np.float64(x[i, j])
            yj = np.float64(y[i, j])
            unit = (xj - yj) * inverse
            g_x[i, j] = scale * (unit + c * distance_xy * xj / beta_x)
            g_y[i, j] = scale * (-unit + c * distance_xy * yj / beta_y)


def poincare_distance_forward(x, y, *, c=1.0):
    c = float(c)
    x_rows, y_rows = _rows(x), _rows(y)
    d = np.empty(x_rows.shape[0], dtype=x.dtype)
    factors = np.empty((x_rows.shape[0], 3))
    _distance_rows(x_rows, y_rows, c, _below_one(x.dtype), d, factors)
    return d.reshape(x.shape[:-1]), (x_rows, y_rows, factors, c, x.shape)


def poincare_distance_backward(residuals, g_d):
    x_rows, y_rows, factors, c, shape = residuals
    g_x = np.empty_like(x_rows)
    g_y = np.empty_like(y_rows)
    _distance_backward_rows(x_rows, y_rows, factors, c, np.ascontiguousarray(g_d).reshape(-1), g_x, g_y)
    return g_x.reshape(shape), g_y.reshape(shape)


# -- gyration and parallel transport ---------------------------------------------------------
@njit(cache=True, inline="always")
def _gyration_scalars(a, b, sign_b, v, c):
    """Per row: ⟨a,b⟩, ⟨a,v⟩, ⟨b,v⟩, ‖a‖², ‖b‖², A, B, D for ``gyr[a, sign_b·b] v``."""
    ab = 0.0
    av = 0.0
    bv = 0.0
    a2 = 0.0
    b2 = 0.0
    sum2 = 0.0
    for j in range(a.shape[0]):
        aj = np.float64(a[j])
        bj = sign_b * np.float64(b[j])
        vj = np.float64(v[j])
        ab += aj * bj
        av += aj * vj
        bv += bj * vj
        a2 += aj * aj
        b2 += bj * bj
        sum2 += (aj + bj) * (aj + bj)
    c2 = c * c
    big_a = -c2 * av * b2 + c * bv + 2.0 * c2 * ab * bv
    big_b = -c2 * bv * a2 - c * av
    denominator = (1.0 - c * a2) * (1.0 - c * b2) + c * sum2
    return ab, av, bv, a2, b2, big_a, big_b, denominator


@njit(cache=True, inline="always")
def _gyration_backward_row(a, b, sign_b, v, g_o, g_scale, c, g_a, g_b, g_v):
    """VJP of ``gyr[a, sign_b·b] v`` at ``g_scale·ō``; ``g_b`` is the cotangent of ``b``."""
    ab, av, bv, a2, b2, big_a, big_b, denominator = _gyration_scalars(a, b, sign_b, v, c)
    c2 = c * c
    s = 2.0 / denominator
    g_dot_a = 0.0
    g_dot_b = 0.0
    for j in range(a.shape[0]):
        gj = g_scale * np.float64(g_o[j])
        g_dot_a += gj * np.float64(a[j])
        g_dot_b += gj * (sign_b * np.float64(b[j]))
    g_big_a = s * g_dot_a
    g_big_b = s * g_dot_b
    g_denominator = -(big_a * g_dot_a + big_b * g_dot_b) * s / denominator
    g_av = -c2 * b2 * g_big_a - c * g_big_b
    g_bv = (c + 2.0 * c2 * ab) * g_big_a - c2 * a2 * g_big_b
    g_ab = 2.0 * c2 * bv * g_big_a + 2.0 * c * g_denominator
    g_a2 = -c2 * bv * g_big_b + c2 * b2 * g_denominator
    g_b2 = -c2 * av * g_big_a + c2 * a2 * g_denominator
    for j in range(a.shape[0]):
        gj = g_scale * np.float64(g_o[j])
        aj = np.float64(a[j])
        bj = sign_b * np.float64(b[j])
        vj = np.float64(v[j])
        g_a[j] = s * big_a * gj + g_av * vj + g_ab * bj + 2.0 * g_a2 * aj
        g_b[j] = sign_b * (s * big_b * gj + g_bv * vj + g_ab * aj + 2.0 * g_b2 * bj)
        g_v[j] = gj + g_av * aj + g_bv * bj


@parallel_kernel()
def _gyration_rows(a, b, v, c, o):
    for i in prange(a.shape[0]):
        _, _, _, _, _, big_a, big_b, denominator = _gyration_scalars(a[i], b[i], 1.0, v[i], c)
        for j in range(a.shape[1]):
            o[i, j] = (
                np.float64(v[i, j])
                + 2.0 * (big_a * np.float64(a[i, j]) + big_b * np.float64(b[i, j])) / denominator
            )


@parallel_kernel()
def _gyration_backward_rows(a, b, v, c, g_o, g_a, g_b, g_v):
    for i in prange(a.shape[0]):
        _gyration_backward_row(a[i], b[i], 1.0, v[i], g_o[i], 1.0, c, g_a[i], g_b[i], g_v[i])


def poincare_gyration_forward(a, b, v, *, c=1.0):
    c = float(c)
    a_rows, b_rows, v_rows = _rows(a), _rows(b), _rows(v)
    o = np.empty_like(v_rows)
    _gyration_rows(a_rows, b_rows, v_rows, c, o)
    return o.reshape(v.shape), (a_rows, b_rows, v_rows, c, v.shape)


def poincare_gyration_backward(residuals, g_o):
    a_rows, b_rows, v_rows, c, shape = residuals
    g_a, g_b, g_v = np.empty_like(a_rows), np.empty_like(b_rows), np.empty_like(v_rows)
    _gyration_backward_rows(a_rows, b_rows, v_rows, c, _rows(g_o), g_a, g_b, g_v)
    return g_a.reshape(shape), g_b.reshape(shape), g_v.reshape(shape)


@parallel_kernel()
def _transport_rows(x, y, v, c, below_one, o, factors):
    """``o = (β_y/β_x) gyr[y, −x] v``; factors: β_x, β_y per row."""
    for i in prange(x.shape[0]):
        x2 = 0.0
        y2 = 0.0
        for j in range(x.shape[1]):
            xj = np.float64(x[i, j])
            yj = np.float64(y[i, j])
            x2 += xj * xj
            y2 += yj * yj
        beta_x = 1.0 - min(c * x2, below_one)
        beta_y = 1.0 - min(c * y2, below_one)
        ratio = beta_y / beta_x
        _, _, _, _, _, big_a, big_b, denominator = _gyration_scalars(y[i], x[i], -1.0, v[i], c)
        for j in range(x.shape[1]):
            g = (
                np.float64(v[i, j])
                + 2.0 * (big_a * np.float64(y[i, j]) - big_b * np.float64(x[i, j])) / denominator
            )
            o[i, j] = ratio * g
        factors[i, 0] = beta_x
        factors[i, 1] = beta_y


@parallel_kernel()
def _transport_backward_rows(x, y, v, factors, c, g_o, g_x, g_y, g_v):
    for i in prange(x.shape[0]):
        beta_x = factors[i, 0]
        beta_y = factors[i, 1]
        ratio = beta_y / beta_x
        _, _, _, _, _, big_a, big_b, denominator = _gyration_scalars(y[i], x[i], -1.0, v[i], c)
        g_ratio = 0.0
        for j in range(x.shape[1]):
            g = (
                np.float64(v[i, j])
                + 2.0 * (big_a * np.float64(y[i, j]) - big_b * np.float64(x[i, j])) / denominator
            )
            g_ratio += np.float64(g_o[i, j]) * g
        # g_x receives −m̄ (the cotangent of x through b = −x)
        _gyration_backward_row(y[i], x[i], -1.0, v[i], g_o[i], ratio, c, g_y[i], g_x[i], g_v[i])
        g_beta_y = g_ratio / beta_x
        g_beta_x = -g_ratio * ratio / beta_x
        for j in range(x.shape[1]):
            g_x[i, j] = g_x[i, j] - 2.0 * c * g_beta_x * np.float64(x[i, j])
            g_y[i, j] = g_y[i, j] - 2.0 * c * g_beta_y * np.float64(y[i, j])


def poincare_parallel_transport_forward(x, y, v, *, c=1.0):
    c = float(c)
    x_rows, y_rows, v_rows = _rows(x), _rows(y), _rows(v)
    o = np.empty_like(v_rows)
    factors = np.empty((x_rows.shape[0], 2))
    _transport_rows(x_rows, y_rows, v_rows, c, _below_one(x.dtype), o, factors)
    return o.reshape(v.shape), (x_rows, y_rows, v_rows, factors, c, v.shape)


def poincare_parallel_transport_backward(residuals, g_o):
    x_rows, y_rows, v_rows, factors, c, shape = residuals
    # float64 work rows: the gyration VJP writes its pieces before the β terms are added
    g_x, g_y, g_v = (np.empty(x_rows.shape) for _ in range(3))
    _transport_backward_rows(x_rows, y_rows, v_rows, factors, c, _rows(g_o), g_x, g_y, g_v)
    dtype = x_rows.dtype
    return tuple(g.astype(dtype, copy=False).reshape(shape) for g in (g_x, g_y, g_v))


# -- projection --------------------------------------------------------------------------------
@parallel_kernel()
def _project_rows(x, max_norm, o):
    for i in prange(x.shape[0]):
        x2 = 0.0
        for j in range(x.shape[1]):
            xj = np.float64(x[i, j])
            x2 += xj * xj
        norm = math.sqrt(x2)
        if norm > max_norm:
            scale = max_norm / norm
            for j in range(x.shape[1]):
                o[i, j] = np.float64(x[i, j]) * scale
        else:
            for j in range(x.shape[1]):
                o[i, j] = x[i, j]


def poincare_project_forward(x, *, c=1.0, eps=None):
    c = float(c)
    eps = PROJECT_EPS[np.dtype(x.dtype)] if eps is None else float(eps)
    x_rows = _rows(x)
    o = np.empty_like(x_rows)
    _project_rows(x_rows, (1 - eps) / math.sqrt(c), o)
    return o.reshape(x.shape), None


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
