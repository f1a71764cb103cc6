"""Poincaré-ball operations (Möbius addition, exp/log maps at the origin): Numba kernels, parallel over rows.

Mirrors ``refimpl/layers/poincare.py`` and uses its cancellation-free forms
(``D = β_x β_y + c‖x + y‖²``, ``N = β_x σ + q x``) and its series below ``u = 1e-3``.
Each row is read once for its norms and once for the output; every per-row quantity
(norms, factors, dot products) is computed in float64, also for float32 inputs, and the
backward recomputes σ = x + y and o instead of storing them. Elements are read as
``np.float64(a[i, j])``: Numba's ``float(·)`` of a float32 element stays float32. The
division by D and the order of the backward's sums (``⟨ō/D, x⟩``) are the reference's: near
the boundary the VJP is ill-conditioned and a different rounding moves it by ~1e-9.

The series/direct choice is an ``if`` on a per-row scalar, outside the inner loops: only the
taken branch is evaluated, so neither can produce a NaN, and the inner loops stay
branch-free.

The domain check ran in the input dtype (``c‖x‖² < 1`` summed by NumPy); a float32 point
within an ulp of the boundary can still give ``c‖x‖² ≥ 1`` when summed in float64 here.
``c‖x‖²`` is therefore capped at the largest input-dtype number below 1 — a no-op for every
other point (and for all float64 inputs) — so ``1 − c‖x‖² > 0`` always.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from refimpl.authoring import Impl
from refimpl.layers.poincare import SERIES_BELOW

from .._jit import parallel_kernel


def _below_one(dtype) -> float:
    """The largest number below 1 in ``dtype``, as a Python float."""
    dtype = np.dtype(dtype)
    return float(np.nextafter(dtype.type(1), dtype.type(0)))


def _rows(a):
    return np.ascontiguousarray(a).reshape(-1, a.shape[-1])


@njit(cache=True, inline="always")
def _expmap0_factors(u2):
    """``f = tanh(u)/u`` and ``h = f'(u)/u`` from ``u² = c‖v‖²`` (series below the switch)."""
    u = np.sqrt(u2)
    if u < SERIES_BELOW:
        return 1.0 - u2 / 3.0 + 2.0 * u2 * u2 / 15.0, -2.0 / 3.0 + 8.0 * u2 / 15.0
    tanh_u = np.tanh(u)
    f = tanh_u / u
    return f, (1.0 - tanh_u * tanh_u - f) / u2


@njit(cache=True, inline="always")
def _logmap0_factors(u2):
    """``f = artanh(u)/u`` and ``h = f'(u)/u`` from ``u² = c‖y‖² < 1``."""
    u = np.sqrt(u2)
    if u < SERIES_BELOW:
        return 1.0 + u2 / 3.0 + u2 * u2 / 5.0, 2.0 / 3.0 + 4.0 * u2 / 5.0
    artanh_u = np.log1p(u) - 0.5 * np.log1p(-u2)  # finite for u² < 1 (see the reference)
    f = artanh_u / u
    return f, (1.0 / (1.0 - u2) - f) / u2


@parallel_kernel()
def _mobius_add_rows(x, y, c, below_one, o, beta_x_rows, beta_y_rows, q_rows):
    n, d = x.shape
    for i in prange(n):
        x2 = 0.0
        y2 = 0.0
        sigma2 = 0.0
        for j in range(d):
            xj = np.float64(x[i, j])
            yj = np.float64(y[i, j])
            sigma = xj + yj
            x2 += xj * xj
            y2 += yj * yj
            sigma2 += sigma * sigma
        beta_x = 1.0 - min(c * x2, below_one)
        beta_y = 1.0 - min(c * y2, below_one)
        q = c * sigma2
        denominator = beta_x * beta_y + q  # D ≥ β_x β_y > 0
        for j in range(d):
            xj = np.float64(x[i, j])
            o[i, j] = (beta_x * (xj + np.float64(y[i, j])) + q * xj) / denominator  # as the reference rounds
        beta_x_rows[i] = beta_x
        beta_y_rows[i] = beta_y
        q_rows[i] = q


@parallel_kernel()
def _mobius_add_backward_rows(x, y, beta_x_rows, beta_y_rows, q_rows, c, g_o, g_x, g_y):
    n, d = x.shape
    two_c = 2.0 * c
    for i in prange(n):
        beta_x = beta_x_rows[i]
        beta_y = beta_y_rows[i]
        q = q_rows[i]
        alpha = beta_x + q
        inverse_denominator = 1.0 / (beta_x * beta_y + q)
        g_dot_o = 0.0
        g_dot_x = 0.0
        g_dot_sigma = 0.0
        for j in range(d):
            xj = np.float64(x[i, j])
            sigma = xj + np.float64(y[i, j])
            oj = (beta_x * sigma + q * xj) / (beta_x * beta_y + q)
            gj = np.float64(g_o[i, j])
            g_dot_o += gj * oj
            g_dot_x += gj / (beta_x * beta_y + q) * xj  # ⟨ō/D, x⟩: the reference's rounding
            g_dot_sigma += gj / (beta_x * beta_y + q) * sigma
        s_x = g_dot_x
        s_sigma = g_dot_sigma
        d_bar = -g_dot_o * inverse_denominator
        for j in range(d):
            xj = np.float64(x[i, j])
            yj = np.float64(y[i, j])
            sigma = xj + yj
            g = np.float64(g_o[i, j]) * inverse_denominator
            g_x[i, j] = (
                alpha * g + two_c * (s_x * sigma - s_sigma * xj) + two_c * d_bar * (sigma - beta_y * xj)
            )
            g_y[i, j] = beta_x * g + two_c * s_x * sigma + two_c * d_bar * (sigma - beta_x * yj)


@parallel_kernel()
def _expmap0_rows(v, c, o, f_rows, h_rows):
    n, d = v.shape
    for i in prange(n):
        v2 = 0.0
        for j in range(d):
            vj = np.float64(v[i, j])
            v2 += vj * vj
        f, h = _expmap0_factors(c * v2)
        for j in range(d):
            o[i, j] = f * np.float64(v[i, j])
        f_rows[i] = f
        h_rows[i] = h


@parallel_kernel()
def _logmap0_rows(y, c, below_one, v, f_rows, h_rows):
    n, d = y.shape
    for i in prange(n):
        y2 = 0.0
        for j in range(d):
            yj = np.float64(y[i, j])
            y2 += yj * yj
        f, h = _logmap0_factors(min(c * y2, below_one))
        for j in range(d):
            v[i, j] = f * np.float64(y[i, j])
        f_rows[i] = f
        h_rows[i] = h


@parallel_kernel()
def _scaled_map_backward_rows(a, f_rows, h_rows, c, g_o, g_a):
    """``ā = f ō + c h ⟨ō, a⟩ a``: the VJP of ``o = f(√c‖a‖) a`` (both maps at the origin)."""
    n, d = a.shape
    for i in prange(n):
        g_dot_a = 0.0
        for j in range(d):
            g_dot_a += np.float64(g_o[i, j]) * np.float64(a[i, j])
        f = f_rows[i]
        scale = c * h_rows[i] * g_dot_a
        for j in range(d):
            g_a[i, j] = f * np.float64(g_o[i, j]) + scale * np.float64(a[i, j])


def mobius_add_forward(x, y, *, c=1.0):
    x_rows, y_rows = _rows(x), _rows(y)
    o = np.empty_like(x_rows)
    beta_x = np.empty(x_rows.shape[0])
    beta_y = np.empty(x_rows.shape[0])
    q = np.empty(x_rows.shape[0])
    _mobius_add_rows(x_rows, y_rows, float(c), _below_one(x.dtype), o, beta_x, beta_y, q)
    return o.reshape(x.shape), (x_rows, y_rows, beta_x, beta_y, q, float(c), x.shape)


def mobius_add_backward(residuals, g_o):
    x_rows, y_rows, beta_x, beta_y, q, c, shape = residuals
    g_x = np.empty_like(x_rows)
    g_y = np.empty_like(y_rows)
    _mobius_add_backward_rows(x_rows, y_rows, beta_x, beta_y, q, c, _rows(g_o), g_x, g_y)
    return g_x.reshape(shape), g_y.reshape(shape)


def poincare_expmap0_forward(v, *, c=1.0):
    v_rows = _rows(v)
    o = np.empty_like(v_rows)
    f = np.empty(v_rows.shape[0])
    h = np.empty(v_rows.shape[0])
    _expmap0_rows(v_rows, float(c), o, f, h)
    return o.reshape(v.shape), (v_rows, f, h, float(c), v.shape)


def poincare_logmap0_forward(y, *, c=1.0):
    y_rows = _rows(y)
    v = np.empty_like(y_rows)
    f = np.empty(y_rows.shape[0])
    h = np.empty(y_rows.shape[0])
    _logmap0_rows(y_rows, float(c), _below_one(y.dtype), v, f, h)
    return v.reshape(y.shape), (y_rows, f, h, float(c), y.shape)


def scaled_map_backward(residuals, g_o):
    """Shared VJP of ``poincare_expmap0`` and ``poincare_logmap0`` (same form, other f, h)."""
    a_rows, f, h, c, shape = residuals
    g_a = np.empty_like(a_rows)
    _scaled_map_backward_rows(a_rows, f, h, c, _rows(g_o), g_a)
    return (g_a.reshape(shape),)


IMPLS = {
    "mobius_add": Impl(mobius_add_forward, mobius_add_backward),
    "poincare_expmap0": Impl(poincare_expmap0_forward, scaled_map_backward),
    "poincare_logmap0": Impl(poincare_logmap0_forward, scaled_map_backward),
}
