"""Poincaré ResNet layers (HNN++ FC layer, convolution, tangent ReLU, residual): Numba kernels.

Mirrors ``refimpl/layers/poincare_fc.py``. The three matrix products of the FC layer
(``P = x ẑ``, ``Ā Zᵀ``, ``xᵀ Ā``) go to BLAS in the input dtype, as in the reference; the
rest is one fused kernel per direction, parallel over rows, with every per-row and
per-coordinate quantity computed in float64 (also for float32 inputs):

* forward, per row: ``β, λ, λ − 1``; then per output ``u_k``, ``asinh u_k``, ``1/√(1 + u_k²)``,
  ``s_k = 2ζ_k asinh u_k`` and the row's ``M = max|s_k|``; then the scaled
  ``t_k = e^{−M} sinh s_k`` and ``e^{−M} cosh s_k``, ``Q``, ``e^{−M} + Q`` and ``y``. It keeps
  ``e^{−M} cosh s``, ``asinh u`` and ``1/√(1 + u²)`` per coordinate (in the input dtype).
* backward, per row, the reference's products in the reference's order:
  ``v̄ = (ō/D − c⟨ō, y⟩ y/q)·e^{−M} cosh s``, ``ū``, ``ā``, ``λ̄``; the column sums ``r̄`` and
  ``ζ̄`` are accumulated per block of rows (no two threads write the same accumulator) and
  added up afterwards. Near the boundary ``x̄ = Zā + λ̄cλ²x`` cancels two terms ~λ times larger
  than x̄ (λ ≈ 1e7 at ``1 − 1e-7`` of the radius), so any other rounding moves x̄ by ~1e-9.

Transcendentals: float64 inputs use libm's ``asinh``, ``hypot``, ``expm1`` and ``exp`` in the
reference's forms. For float32 inputs, where those dominate the cost (12–27 ns each here),
``asinh u`` and ``1/√(1 + u²)`` share one square root (``log1p``/``log`` forms, see
:func:`_asinh_and_inverse_hypot`), ``expm1`` is used only where ``e^v − 1`` would cancel, and
``e^{−M} cosh s = e^{|s|−M}(2 + expm1(−2|s|))/2`` reuses it: a few float64 ulps, far inside
float32. Elements are converted with ``np.float64(·)``: Numba's ``float(·)`` of a float32
stays float32.

Timing note: OpenBLAS's threads (and Numba's OpenMP threads) spin for a while after each
parallel region and compete for the cores: with 2 cores the FC forward+backward at
4096 × 256 → 256 float32 takes ~57 ms with OpenBLAS's default threads and ~37 ms with
``OPENBLAS_NUM_THREADS=1``.

The tangent ReLU takes its per-row factors of ``log_0``/``exp_0`` from the reference's own
vectorized functions (B numbers, not B·n): where ``1 − c‖x‖²`` is ~1e-14 the VJP amplifies a
one-ulp difference of libm's ``tanh`` beyond the float64 tolerance. The convolution reuses
the FC kernels after a ``log_0`` per pixel, the unfold (strided slices, as in the reference)
and an ``exp_0`` per neighbourhood.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from refimpl.authoring import Impl
from refimpl.layers.poincare import expmap0_factors, logmap0_factors
from refimpl.layers.poincare_fc import beta_concat_ratio

from .._jit import parallel_kernel
from .poincare import (
    _below_one,
    _expmap0_rows,
    _logmap0_rows,
    _mobius_add_backward_rows,
    _mobius_add_rows,
    _rows,
    _scaled_map_backward_rows,
)

_BLOCKS = 64
"""Row blocks of the backward's column sums (one float64 accumulator row per block)."""


# -- the fully connected layer ------------------------------------------------------------
_LN2 = math.log(2.0)


@njit(cache=True, inline="always")
def _asinh_and_inverse_hypot(u):
    """``asinh u`` and ``1/√(1 + u²)`` sharing one square root (libm's asinh and hypot are slow).

    ``asinh|u| = log1p(|u| + u²/(1 + √(1 + u²)))`` below 0.5 (no cancellation near 0),
    ``log(|u| + √(1 + u²))`` above, ``log|u| + log 2`` where ``u²`` would overflow.
    """
    a = abs(u)
    if a > 1e150:
        return math.copysign(math.log(a) + _LN2, u), 1.0 / a
    root = math.sqrt(1.0 + a * a)
    if a < 0.5:
        asinh_a = math.log1p(a + a * a / (1.0 + root))
    else:
        asinh_a = math.log(a + root)
    return math.copysign(asinh_a, u), 1.0 / root


@njit(cache=True, inline="always")
def _expm1_negative(v):
    """``e^v − 1`` for ``v ≤ 0``: ``expm1`` only where ``e^v − 1`` would cancel (|v| < 0.7)."""
    if v > -0.7:
        return math.expm1(v)
    return math.exp(v) - 1.0  # e^v < 0.5: the subtraction loses nothing


@parallel_kernel()
def _fc_forward_rows(
    x, p, zeta, cosh_r, sinh_r, c, below_one, fast, y, cosh_scaled, asinh, inverse_hypot, rows
):
    n_rows, n = x.shape
    m = p.shape[1]
    sqrt_c = math.sqrt(c)
    for i in prange(n_rows):
        x2 = 0.0
        for j in range(n):
            xj = np.float64(x[i, j])
            x2 += xj * xj
        beta = 1.0 - min(c * x2, below_one)
        lam = 2.0 / beta
        lam_minus_one = (2.0 - beta) / beta
        work = np.empty((3, m))  # asinh u, 1/√(1 + u²), e^{−M} sinh s of this row, in float64
        big = 0.0
        for k in range(m):
            u = sqrt_c * lam * np.float64(p[i, k]) * cosh_r[k] - lam_minus_one * sinh_r[k]
            if fast:
                work[0, k], work[1, k] = _asinh_and_inverse_hypot(u)
            else:
                work[0, k] = math.asinh(u)
                work[1, k] = 1.0 / math.hypot(1.0, u)
            big = max(big, abs(2.0 * zeta[k] * work[0, k]))
        tt = 0.0
        for k in range(m):
            s = 2.0 * zeta[k] * work[0, k]
            abs_s = abs(s)
            decay = math.exp(abs_s - big)  # e^{|s| − M} ≤ 1
            if fast:
                em1 = _expm1_negative(-2.0 * abs_s)
                cosh_scaled[i, k] = decay * (2.0 + em1) / 2.0  # e^{−M} cosh s
            else:
                em1 = math.expm1(-2.0 * abs_s)
                cosh_scaled[i, k] = decay * (1.0 + math.exp(-2.0 * abs_s)) / 2.0
            t = -decay * em1 / 2.0  # e^{−M} sinh|s|
            if s < 0.0:
                t = -t
            work[2, k] = t
            tt += t * t
            asinh[i, k] = work[0, k]
            inverse_hypot[i, k] = work[1, k]
        scale = math.exp(-big)
        big_q = math.sqrt(scale * scale + tt)  # e^{−M} sqrt(1 + c‖w‖²)
        denominator = scale + big_q  # e^{−M} (1 + q)
        for k in range(m):
            y[i, k] = work[2, k] / (sqrt_c * denominator)
        rows[i, 0] = lam
        rows[i, 1] = lam_minus_one
        rows[i, 2] = denominator
        rows[i, 3] = big_q


@parallel_kernel()
def _fc_backward_rows(
    g_y,
    p,
    y,
    cosh_scaled,
    asinh,
    inverse_hypot,
    rows,
    zeta,
    cosh_r,
    sinh_r,
    c,
    g_a,
    g_lam_rows,
    g_r_blocks,
    g_zeta_blocks,
):
    """The reference's VJP, term by term and in its order of operations (see the module docstring)."""
    n_rows, m = p.shape
    sqrt_c = math.sqrt(c)
    two_c = 2.0 * c
    two_sqrt_c = 2.0 * sqrt_c
    two_over_sqrt_c = 2.0 / sqrt_c
    blocks = g_r_blocks.shape[0]
    for block in prange(blocks):
        start = block * n_rows // blocks
        stop = (block + 1) * n_rows // blocks
        for k in range(m):
            g_r_blocks[block, k] = 0.0
            g_zeta_blocks[block, k] = 0.0
        for i in range(start, stop):
            lam = rows[i, 0]
            lam_minus_one = rows[i, 1]
            denominator = rows[i, 2]
            big_q = rows[i, 3]
            g_dot_y = 0.0
            for k in range(m):
                g_dot_y += np.float64(g_y[i, k]) * np.float64(y[i, k])
            c_g_dot_y = c * g_dot_y
            g_lam = 0.0
            for k in range(m):
                pk = np.float64(p[i, k])
                ik = np.float64(inverse_hypot[i, k])
                g_v = (np.float64(g_y[i, k]) / denominator - c_g_dot_y * np.float64(y[i, k]) / big_q) * (
                    np.float64(cosh_scaled[i, k])
                )
                g_u = g_v * (2.0 * zeta[k] / sqrt_c) * ik
                g_ak = g_v * 2.0 * lam * cosh_r[k] * ik
                g_lam += g_u * (sqrt_c * pk * cosh_r[k] - sinh_r[k])
                g_r_blocks[block, k] += g_u * (
                    two_c * lam * pk * sinh_r[k] - two_sqrt_c * lam_minus_one * cosh_r[k]
                )
                g_zeta_blocks[block, k] += g_v * two_over_sqrt_c * np.float64(asinh[i, k]) - g_ak * pk
                g_a[i, k] = g_ak
            g_lam_rows[i] = g_lam * c * lam * lam


@parallel_kernel()
def _add_row_multiple(g_x, coefficient, x):
    """``g_x[i] += coefficient[i] · x[i]`` per row (in place)."""
    for i in prange(x.shape[0]):
        a = coefficient[i]
        for j in range(x.shape[1]):
            g_x[i, j] = g_x[i, j] + a * np.float64(x[i, j])


def _fc_forward(x_rows, Z, r, c):
    """``poincare_fc`` on a (rows, n) array; float64 per-row work, input-dtype matrix products."""
    dtype = x_rows.dtype
    Z64 = Z.astype(np.float64)
    zeta = np.sqrt(np.sum(Z64 * Z64, axis=0))
    z_hat = Z64 / np.where(zeta > 0, zeta, 1.0)  # only ζ = 0 is replaced (see the reference)
    p = x_rows @ z_hat.astype(dtype)  # ⟨x, z_k⟩/ζ_k
    two_sqrt_c_r = 2.0 * math.sqrt(c) * r.astype(np.float64)
    cosh_r, sinh_r = np.cosh(two_sqrt_c_r), np.sinh(two_sqrt_c_r)
    n_rows, m = p.shape
    y = np.empty((n_rows, m), dtype=dtype)
    per_element = tuple(np.empty((n_rows, m), dtype=dtype) for _ in range(3))  # stored in the input dtype
    rows = np.empty((n_rows, 4))
    fast = dtype == np.float32  # see the module docstring
    _fc_forward_rows(x_rows, p, zeta, cosh_r, sinh_r, c, _below_one(dtype), fast, y, *per_element, rows)
    return y, (x_rows, Z, z_hat, zeta, p, cosh_r, sinh_r, y, per_element, rows, c)


def _fc_backward(residuals, g_y_rows):
    x_rows, Z, z_hat, zeta, p, cosh_r, sinh_r, y, per_element, rows, c = residuals
    dtype = x_rows.dtype
    n_rows, m = p.shape
    blocks = max(1, min(_BLOCKS, n_rows))
    g_a = np.empty((n_rows, m), dtype=dtype)
    g_lam = np.empty(n_rows)
    g_r_blocks = np.empty((blocks, m))
    g_zeta_blocks = np.empty((blocks, m))
    _fc_backward_rows(
        np.ascontiguousarray(g_y_rows),
        p,
        y,
        *per_element,
        rows,
        zeta,
        cosh_r,
        sinh_r,
        c,
        g_a,
        g_lam,
        g_r_blocks,
        g_zeta_blocks,
    )
    g_x = g_a @ Z.T
    _add_row_multiple(g_x, g_lam, x_rows)  # + λ̄ c λ² x
    g_Z = x_rows.T @ g_a + (z_hat * g_zeta_blocks.sum(axis=0)).astype(dtype)
    g_r = g_r_blocks.sum(axis=0).astype(dtype)
    return g_x, g_Z, g_r


def poincare_fc_forward(x, Z, r, *, c=1.0):
    y, residuals = _fc_forward(_rows(x), Z, r, float(c))
    return y.reshape(*x.shape[:-1], Z.shape[1]), (residuals, x.shape)


def poincare_fc_backward(residuals, g_y):
    fc_residuals, shape = residuals
    g_x, g_Z, g_r = _fc_backward(fc_residuals, _rows(g_y))
    return g_x.reshape(shape), g_Z, g_r


# -- convolution --------------------------------------------------------------------------
def _output_size(size, kernel_size, stride, padding):
    return (size + 2 * padding - kernel_size) // stride + 1


def poincare_conv2d_forward(x, Z, r, *, c=1.0, kernel_size, stride=1, padding=0):
    c = float(c)
    k, s, pad = int(kernel_size), int(stride), int(padding)
    batch, height, width, n = x.shape
    out_height = _output_size(height, k, s, pad)
    out_width = _output_size(width, k, s, pad)
    rho = beta_concat_ratio(n, k * k * n)
    x_rows = _rows(x)
    v = np.empty_like(x_rows)
    f_log = np.empty(x_rows.shape[0])
    h_log = np.empty(x_rows.shape[0])
    _logmap0_rows(x_rows, c, _below_one(x.dtype), v, f_log, h_log)
    v_pad = np.zeros((batch, height + 2 * pad, width + 2 * pad, n), dtype=x.dtype)
    v_pad[:, pad : pad + height, pad : pad + width] = v.reshape(x.shape)
    windows = np.empty((batch, out_height, out_width, k, k, n), dtype=x.dtype)
    for di in range(k):
        for dj in range(k):
            windows[:, :, :, di, dj] = v_pad[:, di : di + s * out_height : s, dj : dj + s * out_width : s]
    tangent = (rho * windows).reshape(-1, k * k * n)  # a Python float: the dtype is kept
    points = np.empty_like(tangent)
    f_exp = np.empty(tangent.shape[0])
    h_exp = np.empty(tangent.shape[0])
    _expmap0_rows(tangent, c, points, f_exp, h_exp)
    y, fc_residuals = _fc_forward(points, Z, r, c)
    residuals = (x_rows, f_log, h_log, tangent, f_exp, h_exp, fc_residuals, rho, k, s, pad, c, x.shape)
    return y.reshape(batch, out_height, out_width, Z.shape[1]), residuals


def poincare_conv2d_backward(residuals, g_y):
    x_rows, f_log, h_log, tangent, f_exp, h_exp, fc_residuals, rho, k, s, pad, c, shape = residuals
    batch, height, width, n = shape
    _, out_height, out_width, _ = g_y.shape
    g_points, g_Z, g_r = _fc_backward(fc_residuals, _rows(g_y))
    g_tangent = np.empty_like(tangent)
    _scaled_map_backward_rows(tangent, f_exp, h_exp, c, g_points, g_tangent)
    g_windows = (rho * g_tangent).reshape(batch, out_height, out_width, k, k, n)
    g_v_pad = np.zeros((batch, height + 2 * pad, width + 2 * pad, n), dtype=x_rows.dtype)
    for di in range(k):
        for dj in range(k):
            g_v_pad[:, di : di + s * out_height : s, dj : dj + s * out_width : s] += g_windows[
                :, :, :, di, dj
            ]
    g_v = _rows(g_v_pad[:, pad : pad + height, pad : pad + width])
    g_x = np.empty_like(x_rows)
    _scaled_map_backward_rows(x_rows, f_log, h_log, c, g_v, g_x)
    return g_x.reshape(shape), g_Z, g_r


# -- tangent ReLU and the residual connection -------------------------------------------------
@parallel_kernel()
def _squared_norm_rows(x, out):
    for i in prange(x.shape[0]):
        total = 0.0
        for j in range(x.shape[1]):
            xj = np.float64(x[i, j])
            total += xj * xj
        out[i] = total


@parallel_kernel()
def _relu_squared_norm_rows(x, f_log, out):
    """``‖max(f_log x, 0)‖²`` per row."""
    for i in prange(x.shape[0]):
        total = 0.0
        for j in range(x.shape[1]):
            aj = max(f_log[i] * np.float64(x[i, j]), 0.0)
            total += aj * aj
        out[i] = total


@parallel_kernel()
def _relu_out_rows(x, f_log, f_exp, o):
    for i in prange(x.shape[0]):
        for j in range(x.shape[1]):
            o[i, j] = f_exp[i] * max(f_log[i] * np.float64(x[i, j]), 0.0)


@parallel_kernel()
def _relu_backward_rows(x, factors, c, g_o, g_x):
    n_rows, n = x.shape
    for i in prange(n_rows):
        f_log = factors[i, 0]
        h_log = factors[i, 1]
        f_exp = factors[i, 2]
        h_exp = factors[i, 3]
        g_dot_a = 0.0
        for j in range(n):
            g_dot_a += np.float64(g_o[i, j]) * max(f_log * np.float64(x[i, j]), 0.0)
        scale_a = c * h_exp * g_dot_a
        g_v_dot_x = 0.0
        for j in range(n):
            xj = np.float64(x[i, j])
            v = f_log * xj
            g_v = f_exp * np.float64(g_o[i, j]) + scale_a * v if v > 0.0 else 0.0
            g_v_dot_x += g_v * xj
        scale_x = c * h_log * g_v_dot_x
        for j in range(n):
            xj = np.float64(x[i, j])
            v = f_log * xj
            g_v = f_exp * np.float64(g_o[i, j]) + scale_a * v if v > 0.0 else 0.0
            g_x[i, j] = f_log * g_v + scale_x * xj


def _relu_forward(x_rows, c):
    """Three passes over x: ‖x‖², ‖a‖², o. The per-row factors of ``log_0``/``exp_0`` come from
    the reference's own (vectorized, B-element) functions: where ``1 − c‖x‖²`` is ~1e-14 the
    VJP amplifies a one-ulp difference in libm's ``tanh`` beyond the float64 tolerance."""
    n_rows = x_rows.shape[0]
    factors = np.empty((n_rows, 4))
    squared = np.empty(n_rows)
    _squared_norm_rows(x_rows, squared)
    factors[:, 0], factors[:, 1] = logmap0_factors(np.minimum(c * squared, _below_one(x_rows.dtype)))
    _relu_squared_norm_rows(x_rows, factors[:, 0].copy(), squared)
    factors[:, 2], factors[:, 3] = expmap0_factors(c * squared)
    o = np.empty_like(x_rows)
    _relu_out_rows(x_rows, factors[:, 0].copy(), factors[:, 2].copy(), o)
    return o, (x_rows, factors, c)


def _relu_backward(residuals, g_o_rows):
    x_rows, factors, c = residuals
    g_x = np.empty_like(x_rows)
    _relu_backward_rows(x_rows, factors, c, np.ascontiguousarray(g_o_rows), g_x)
    return g_x


def poincare_relu_forward(x, *, c=1.0):
    o, residuals = _relu_forward(_rows(x), float(c))
    return o.reshape(x.shape), (residuals, x.shape)


def poincare_relu_backward(residuals, g_o):
    relu_residuals, shape = residuals
    return (_relu_backward(relu_residuals, _rows(g_o)).reshape(shape),)


def poincare_residual_forward(fx, x, *, c=1.0, activation="tangent_relu"):
    c = float(c)
    fx_rows, x_rows = _rows(fx), _rows(x)
    n_rows = fx_rows.shape[0]
    h = np.empty_like(fx_rows)
    add_factors = (np.empty(n_rows), np.empty(n_rows), np.empty(n_rows))
    _mobius_add_rows(fx_rows, x_rows, c, _below_one(x.dtype), h, *add_factors)
    add_residuals = (fx_rows, x_rows, *add_factors, c)
    if activation == "none":
        return h.reshape(x.shape), (add_residuals, None, x.shape)
    o, relu_residuals = _relu_forward(h, c)
    return o.reshape(x.shape), (add_residuals, relu_residuals, x.shape)


def poincare_residual_backward(residuals, g_o):
    (fx_rows, x_rows, beta_x, beta_y, q, c), relu_residuals, shape = residuals
    g_h = _rows(g_o) if relu_residuals is None else _relu_backward(relu_residuals, _rows(g_o))
    g_fx = np.empty_like(fx_rows)
    g_x = np.empty_like(x_rows)
    _mobius_add_backward_rows(fx_rows, x_rows, beta_x, beta_y, q, c, np.ascontiguousarray(g_h), g_fx, g_x)
    return g_fx.reshape(shape), g_x.reshape(shape)


IMPLS = {
    "poincare_fc": Impl(poincare_fc_forward, poincare_fc_backward),
    "poincare_conv2d": Impl(poincare_conv2d_forward, poincare_conv2d_backward),
    "poincare_relu": Impl(poincare_relu_forward, poincare_relu_backward),
    "poincare_residual": Impl(poincare_residual_forward, poincare_residual_backward),
}
