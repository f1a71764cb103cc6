"""Embedded RK 5(4) steps and the ERNODE/SRNODE regularizers: Numba row kernels.

Mirrors ``refimpl/solvers/rk_regularizers.py``. ``rk_embedded_step`` calls the right-hand side
``f`` (and ``f_vjp`` in the backward) from Python once per stage, as the reference; what the
kernels fuse is the per-step work around those calls: each stage argument
``Y_i = y + h Σ_{l<i} a_il k_l`` and the error ``h Σ (b_i − b̂_i) k_i`` in one pass over the
state (instead of one NumPy axpy per nonzero coefficient), the stiffness quotient, and in the
backward the scatter ``k̄_l += h a_il Ȳ_i``. The regularizers are one row-parallel pass over the
steps each (RMS of the scaled error; the stiffness quotient and its gradient). Float64
accumulators throughout.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl
from refimpl.solvers.rk_regularizers import ATOL, RTOL, STABILITY_SIZE, TABLEAUS

from .._jit import parallel_kernel


@parallel_kernel(fastmath={"reassoc"})
def _combine(y, use_y, slopes, weights, count, out):
    """out = [y] + Σ_{l<count} weights[l] slopes[l]  (rows in parallel)."""
    for i in prange(out.shape[0]):
        for d in range(out.shape[1]):
            total = np.float64(y[i, d]) if use_y else 0.0
            for l in range(count):
                if weights[l] != 0.0:
                    total += weights[l] * np.float64(slopes[l, i, d])
            out[i, d] = total


@parallel_kernel(fastmath={"reassoc"})
def _scatter(g_stage, weights, count, g_slopes):
    """g_slopes[l] += weights[l] g_stage for l < count."""
    for i in prange(g_stage.shape[0]):
        for d in range(g_stage.shape[1]):
            value = g_stage[i, d]
            for l in range(count):
                if weights[l] != 0.0:
                    g_slopes[l, i, d] += weights[l] * value


@parallel_kernel(fastmath={"reassoc"})
def _stiffness_rows(k6, k7, y_next, g6, inf_mode, stiffness, g_a, g_b):
    """Per row j: S_j from A = k7 − k6 and U = y_next − g6, with ∂S/∂A and ∂S/∂U."""
    n = k6.shape[1]
    for j in prange(k6.shape[0]):
        for i in range(n):
            g_a[j, i] = 0.0
            g_b[j, i] = 0.0
        stiffness[j] = 0.0
        if inf_mode:
            top = -1
            best = -1.0
            any_nonzero = False
            for i in range(n):
                u = np.float64(y_next[j, i]) - np.float64(g6[j, i])
                if u != 0.0:
                    any_nonzero = True
                    ratio = abs(np.float64(k7[j, i]) - np.float64(k6[j, i])) / abs(u)
                    if ratio > best:
                        best = ratio
                        top = i
            if any_nonzero:
                a = np.float64(k7[j, top]) - np.float64(k6[j, top])
                u = np.float64(y_next[j, top]) - np.float64(g6[j, top])
                stiffness[j] = best
                g_a[j, top] = np.sign(a) / abs(u)
                g_b[j, top] = -best * np.sign(u) / abs(u)
        else:
            squares_a = 0.0
            squares_u = 0.0
            for i in range(n):
                a = np.float64(k7[j, i]) - np.float64(k6[j, i])
                u = np.float64(y_next[j, i]) - np.float64(g6[j, i])
                squares_a += a * a
                squares_u += u * u
            norm_a = math.sqrt(squares_a / n)
            norm_u = math.sqrt(squares_u / n)
            if norm_a > 0.0 and norm_u > 0.0:
                s = norm_a / norm_u
                stiffness[j] = s
                for i in range(n):
                    g_a[j, i] = (np.float64(k7[j, i]) - np.float64(k6[j, i])) / (n * norm_a * norm_u)
                    g_b[j, i] = -s * (np.float64(y_next[j, i]) - np.float64(g6[j, i])) / (n * norm_u * norm_u)


# ---------------------------------------------------------------- rk_embedded_step


def rk_embedded_step_forward(f, f_vjp, y, theta, *, t, h, tableau="tsit5", stiffness_norm="ratio_of_norms"):
    table = TABLEAUS[tableau]
    c, a, weights = table["c"], table["a"], table["error"]
    y = np.ascontiguousarray(y)
    slopes = np.empty((7, *y.shape), dtype=y.dtype)
    stages = np.empty((7, *y.shape), dtype=y.dtype)
    for i in range(7):
        _combine(y, True, slopes, h * a[i], i, stages[i])
        slopes[i] = f(t + c[i] * h, stages[i], theta)
    error = np.empty_like(y)
    _combine(y, False, slopes, h * weights, 7, error)
    y_next = stages[6].copy()
    y_hat = y_next - error
    stiffness = np.empty(1)
    g_a = np.empty((1, y.size))
    g_b = np.empty((1, y.size))
    _stiffness_rows(
        slopes[5].reshape(1, -1),
        slopes[6].reshape(1, -1),
        stages[6].reshape(1, -1),
        stages[5].reshape(1, -1),
        stiffness_norm == "inf_elementwise",
        stiffness,
        g_a,
        g_b,
    )
    outputs = (y_next, y_hat, error, np.asarray(stiffness[0], dtype=y.dtype))
    return outputs, (f_vjp, theta, t, h, table, stages, g_a.reshape(y.shape), g_b.reshape(y.shape))


def rk_embedded_step_backward(residuals, cotangents):
    g_y_next, g_y_hat, g_error, g_stiffness = cotangents
    f_vjp, theta, t, h, table, stages, g_a, g_b = residuals
    c, a, weights = table["c"], table["a"], table["error"]
    dtype = stages.dtype
    s_bar = float(g_stiffness)
    g_error = np.asarray(g_error, dtype=np.float64) - g_y_hat
    g_slopes = np.zeros((7, *stages.shape[1:]))
    _scatter(np.ascontiguousarray(g_error), h * weights, 7, g_slopes)
    g_slopes[6] += s_bar * g_a
    g_slopes[5] -= s_bar * g_a
    g_last = np.asarray(g_y_next, dtype=np.float64) + g_y_hat + s_bar * g_b
    g_y = np.zeros(stages.shape[1:])
    g_theta = np.zeros(theta.shape)
    for i in range(6, -1, -1):
        g_stage_y, g_stage_theta = f_vjp(t + c[i] * h, stages[i], theta, g_slopes[i].astype(dtype))
        g_stage = np.asarray(g_stage_y, dtype=np.float64)
        if i == 6:
            g_stage = g_stage + g_last
        elif i == 5:
            g_stage = g_stage - s_bar * g_b
        g_theta += g_stage_theta
        g_y += g_stage
        _scatter(g_stage, h * a[i], i, g_slopes)
    return g_y.astype(dtype), g_theta.astype(dtype)


# ---------------------------------------------------------------- solver_error_regularizer


@parallel_kernel(fastmath={"reassoc"})
def _error_rows(y, y_next, y_hat, atol, rtol, errors):
    n = y.shape[1]
    for j in prange(y.shape[0]):
        total = 0.0
        for i in range(n):
            scale = atol + rtol * max(abs(np.float64(y[j, i])), abs(np.float64(y_next[j, i])))
            q = (np.float64(y_next[j, i]) - np.float64(y_hat[j, i])) / scale
            total += q * q
        errors[j] = math.sqrt(total / n)


@parallel_kernel(fastmath={"reassoc"})
def _error_backward_rows(y, y_next, y_hat, atol, rtol, errors, g_rows, g_y, g_y_next, g_y_hat):
    n = y.shape[1]
    for j in prange(y.shape[0]):
        factor = g_rows[j] / (n * errors[j]) if errors[j] > 0.0 else 0.0
        for i in range(n):
            u, v = np.float64(y[j, i]), np.float64(y_next[j, i])
            scale = atol + rtol * max(abs(u), abs(v))
            q = (v - np.float64(y_hat[j, i])) / scale
            g_q = factor * q
            g_difference = g_q / scale
            g_larger = -rtol * g_q * q / scale
            if abs(u) >= abs(v):
                g_y[j, i] = g_larger * np.sign(u)
                g_y_next[j, i] = g_difference
            else:
                g_y[j, i] = 0.0
                g_y_next[j, i] = g_difference + g_larger * np.sign(v)
            g_y_hat[j, i] = -g_difference


def solver_error_regularizer_forward(y, y_next, y_hat, h, *, atol=ATOL, rtol=RTOL, aggregate="sum"):
    arrays = tuple(np.ascontiguousarray(v) for v in (y, y_next, y_hat))
    errors = np.empty(y.shape[0])
    _error_rows(*arrays, float(atol), float(rtol), errors)
    weights = np.abs(h.astype(np.float64)) / (h.shape[0] if aggregate == "mean" else 1)
    outputs = (np.asarray(np.sum(errors * weights), dtype=y.dtype), errors.astype(y.dtype))
    return outputs, (arrays, float(atol), float(rtol), errors, weights)


def solver_error_regularizer_backward(residuals, cotangents):
    g_regularizer, g_errors = cotangents
    arrays, atol, rtol, errors, weights = residuals
    g_rows = float(g_regularizer) * weights + np.asarray(g_errors, dtype=np.float64)
    gradients = tuple(np.empty(arrays[0].shape, dtype=arrays[0].dtype) for _ in range(3))
    _error_backward_rows(*arrays, atol, rtol, errors, g_rows, *gradients)
    return gradients


# ---------------------------------------------------------------- solver_stiffness_regularizer


@parallel_kernel(fastmath={"reassoc"})
def _stiffness_backward_rows(s_bar, g_a, g_b, g_k6, g_k7, g_y_next, g_g6):
    for j in prange(g_a.shape[0]):
        for i in range(g_a.shape[1]):
            ga = s_bar[j] * g_a[j, i]
            gb = s_bar[j] * g_b[j, i]
            g_k7[j, i] = ga
            g_k6[j, i] = -ga
            g_y_next[j, i] = gb
            g_g6[j, i] = -gb


def solver_stiffness_regularizer_forward(
    k6, k7, y_next, g6, h, *, stiffness_norm="ratio_of_norms", aggregate="sum_dt", tableau="tsit5"
):
    steps = k6.shape[0]
    stiffness = np.empty(steps)
    g_a, g_b = np.empty(k6.shape), np.empty(k6.shape)
    arrays = tuple(np.ascontiguousarray(v) for v in (k6, k7, y_next, g6))
    _stiffness_rows(*arrays, stiffness_norm == "inf_elementwise", stiffness, g_a, g_b)
    if aggregate == "sum_dt":
        weights = np.abs(h.astype(np.float64))
    else:
        weights = np.zeros(steps)
        weights[int(np.argmax(stiffness))] = 1.0 / STABILITY_SIZE[tableau]
    outputs = (np.asarray(np.sum(stiffness * weights), dtype=k6.dtype), stiffness.astype(k6.dtype))
    return outputs, (weights, g_a, g_b, k6.dtype)


def solver_stiffness_regularizer_backward(residuals, cotangents):
    g_regularizer, g_stiffness = cotangents
    weights, g_a, g_b, dtype = residuals
    s_bar = float(g_regularizer) * weights + np.asarray(g_stiffness, dtype=np.float64)
    gradients = tuple(np.empty(g_a.shape, dtype=dtype) for _ in range(4))
    _stiffness_backward_rows(s_bar, g_a, g_b, *gradients)
    return gradients


IMPLS = {
    "rk_embedded_step": Impl(rk_embedded_step_forward, rk_embedded_step_backward),
    "solver_error_regularizer": Impl(solver_error_regularizer_forward, solver_error_regularizer_backward),
    "solver_stiffness_regularizer": Impl(
        solver_stiffness_regularizer_forward, solver_stiffness_regularizer_backward
    ),
}
