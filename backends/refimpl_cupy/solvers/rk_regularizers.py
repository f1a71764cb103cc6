"""Embedded RK 5(4) steps and the ERNODE/SRNODE regularizers on CuPy.

Mirrors ``refimpl/solvers/rk_regularizers.py``: the stages are stacked in one (7, B, D) array,
so each stage argument ``y + h Σ_{l<i} a_il k_l`` and the error ``h Σ (b_i − b̂_i) k_i`` is one
contraction over the stage axis (``tensordot``) instead of an axpy per coefficient; ``f`` and
``f_vjp`` are called once per stage as in the reference. The regularizers are fused elementwise
kernels plus row reductions (float64 sums).
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl
from refimpl.solvers.rk_regularizers import ATOL, RTOL, STABILITY_SIZE, TABLEAUS

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def scaled_error(y, y_next, y_hat, atol, rtol):
        scale = atol + rtol * xp.maximum(xp.abs(y), xp.abs(y_next))
        q = (y_next - y_hat) / scale
        return q, scale

    @fuse
    def error_gradients(y, y_next, q, scale, factor, rtol):
        g_q = factor * q
        g_difference = g_q / scale
        g_larger = -rtol * g_q * q / scale
        first = xp.abs(y) >= xp.abs(y_next)
        g_y = xp.where(first, g_larger * xp.sign(y), 0.0)
        g_y_next = g_difference + xp.where(first, 0.0, g_larger * xp.sign(y_next))
        return g_y, g_y_next, -g_difference

    return SimpleNamespace(scaled_error=scaled_error, error_gradients=error_gradients)


kernels_for = kernel_set(_kernels)


def _stiffness(difference_k, difference_u, inf_mode, xp):
    """Rows of S with ∂S/∂A, ∂S/∂U (A = k_7 − k_6, U = u − g_6), float64."""
    a = difference_k.astype(xp.float64)
    u = difference_u.astype(xp.float64)
    n = a.shape[1]
    if inf_mode:
        nonzero = u != 0
        ratios = xp.where(nonzero, xp.abs(a) / xp.where(nonzero, xp.abs(u), 1.0), -1.0)
        top = xp.argmax(ratios, axis=1)
        rows = xp.arange(a.shape[0])
        valid = nonzero.any(axis=1)
        s = xp.where(valid, ratios[rows, top], 0.0)
        a_top, u_top = a[rows, top], u[rows, top]
        safe = xp.where(valid, xp.abs(u_top), 1.0)
        g_a, g_b = xp.zeros_like(a), xp.zeros_like(u)
        g_a[rows, top] = xp.where(valid, xp.sign(a_top) / safe, 0.0)
        g_b[rows, top] = xp.where(valid, -s * xp.sign(u_top) / safe, 0.0)
        return s, g_a, g_b
    norm_a = xp.sqrt((a * a).sum(axis=1) / n)
    norm_u = xp.sqrt((u * u).sum(axis=1) / n)
    valid = (norm_a > 0) & (norm_u > 0)
    safe_a, safe_u = xp.where(valid, norm_a, 1.0), xp.where(valid, norm_u, 1.0)
    s = xp.where(valid, norm_a / safe_u, 0.0)
    g_a = xp.where(valid, 1.0 / (n * safe_a * safe_u), 0.0)[:, None] * a
    g_b = xp.where(valid, -s / (n * safe_u * safe_u), 0.0)[:, None] * u
    return s, g_a, g_b


def rk_embedded_step_forward(f, f_vjp, y, theta, *, t, h, tableau="tsit5", stiffness_norm="ratio_of_norms"):
    xp = xp_of(y)
    table = TABLEAUS[tableau]
    c, a, weights = table["c"], table["a"], table["error"]
    slopes = xp.zeros((7, *y.shape), dtype=y.dtype)
    stages = xp.empty((7, *y.shape), dtype=y.dtype)
    for i in range(7):
        coefficients = xp.asarray(h * a[i, :i], dtype=y.dtype)
        stages[i] = y + xp.tensordot(coefficients, slopes[:i], axes=1) if i else y
        slopes[i] = f(t + c[i] * h, stages[i], theta)
    error = xp.tensordot(xp.asarray(h * weights, dtype=y.dtype), slopes, axes=1)
    y_next = stages[6].copy()
    s, g_a, g_b = _stiffness(
        (slopes[6] - slopes[5]).reshape(1, -1),
        (stages[6] - stages[5]).reshape(1, -1),
        stiffness_norm == "inf_elementwise",
        xp,
    )
    outputs = (y_next, y_next - error, error, s[0].astype(y.dtype))
    return outputs, (f_vjp, theta, t, h, table, stages, g_a.reshape(y.shape), g_b.reshape(y.shape))


def rk_embedded_step_backward(residuals, cotangents):
    g_y_next, g_y_hat, g_error, g_stiffness = cotangents
    f_vjp, theta, t, h, table, stages, g_a, g_b = residuals
    xp = xp_of(stages)
    c, a, weights = table["c"], table["a"], table["error"]
    dtype = stages.dtype
    s_bar = float(g_stiffness)
    g_error = g_error.astype(xp.float64) - g_y_hat
    g_slopes = xp.asarray(h * weights)[:, None, None] * g_error[None]
    g_slopes[6] += s_bar * g_a
    g_slopes[5] -= s_bar * g_a
    g_y = xp.zeros(stages.shape[1:])
    g_theta = xp.zeros(theta.shape)
    for i in range(6, -1, -1):
        g_stage_y, g_stage_theta = f_vjp(t + c[i] * h, stages[i], theta, g_slopes[i].astype(dtype))
        g_stage = g_stage_y.astype(xp.float64)
        if i == 6:
            g_stage = g_stage + g_y_next + g_y_hat + s_bar * g_b
        elif i == 5:
            g_stage = g_stage - s_bar * g_b
        g_theta = g_theta + g_stage_theta
        g_y = g_y + g_stage
        if i:
            g_slopes[:i] += xp.asarray(h * a[i, :i])[:, None, None] * g_stage[None]
    return g_y.astype(dtype), g_theta.astype(dtype)


def solver_error_regularizer_forward(y, y_next, y_hat, h, *, atol=ATOL, rtol=RTOL, aggregate="sum"):
    xp = xp_of(y)
    k = kernels_for(y)
    q, scale = k.scaled_error(
        y.astype(xp.float64), y_next.astype(xp.float64), y_hat.astype(xp.float64), atol, rtol
    )
    errors = xp.sqrt((q * q).sum(axis=1) / y.shape[1])
    weights = xp.abs(h.astype(xp.float64)) / (h.shape[0] if aggregate == "mean" else 1)
    outputs = ((errors * weights).sum().astype(y.dtype), errors.astype(y.dtype))
    return outputs, (y, y_next, q, scale, errors, weights, rtol)


def solver_error_regularizer_backward(residuals, cotangents):
    g_regularizer, g_errors = cotangents
    y, y_next, q, scale, errors, weights, rtol = residuals
    xp = xp_of(y)
    k = kernels_for(y)
    g_rows = float(g_regularizer) * weights + g_errors.astype(xp.float64)
    positive = errors > 0
    factor = xp.where(positive, g_rows / (y.shape[1] * xp.where(positive, errors, 1.0)), 0.0)
    gradients = k.error_gradients(
        y.astype(xp.float64), y_next.astype(xp.float64), q, scale, factor[:, None], rtol
    )
    return tuple(g.astype(y.dtype) for g in gradients)


def solver_stiffness_regularizer_forward(
    k6, k7, y_next, g6, h, *, stiffness_norm="ratio_of_norms", aggregate="sum_dt", tableau="tsit5"
):
    xp = xp_of(k6)
    s, g_a, g_b = _stiffness(k7 - k6, y_next - g6, stiffness_norm == "inf_elementwise", xp)
    if aggregate == "sum_dt":
        weights = xp.abs(h.astype(xp.float64))
    else:
        weights = xp.zeros(k6.shape[0])
        weights[int(xp.argmax(s))] = 1.0 / STABILITY_SIZE[tableau]
    outputs = ((s * weights).sum().astype(k6.dtype), s.astype(k6.dtype))
    return outputs, (weights, g_a, g_b, k6.dtype)


def solver_stiffness_regularizer_backward(residuals, cotangents):
    g_regularizer, g_stiffness = cotangents
    weights, g_a, g_b, dtype = residuals
    xp = xp_of(g_a)
    s_bar = (float(g_regularizer) * weights + g_stiffness.astype(xp.float64))[:, None]
    g_k7, g_y_next = (s_bar * g_a).astype(dtype), (s_bar * g_b).astype(dtype)
    return -g_k7, g_k7, g_y_next, -g_y_next


IMPLS = {
    "rk_embedded_step": Impl(rk_embedded_step_forward, rk_embedded_step_backward),
    "solver_error_regularizer": Impl(solver_error_regularizer_forward, solver_error_regularizer_backward),
    "solver_stiffness_regularizer": Impl(
        solver_stiffness_regularizer_forward, solver_stiffness_regularizer_backward
    ),
}
