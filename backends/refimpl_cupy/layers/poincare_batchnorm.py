"""Poincaré midpoint and midpoint batch normalization on CuPy, composed as in the reference.

Mirrors ``refimpl/layers/poincare_batchnorm.py``: the cancellation-free midpoint
``m = N/(2W − B + √(B² + 4cWV))`` (``w_i = 1/(1 − c‖x_i‖²)``, ``W = Σ w_i``,
``V = Σ w_i‖x_i − x̄‖²``) with its per-row steps as fused kernels and its batch sums as
reductions, and batch normalization chaining this backend's ``exp_0``, midpoint, ``log_μ``,
distance, parallel transport and ``exp_b`` in the reference's order.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl import Impl
from refimpl.layers.poincare_batchnorm import VARIANCE_EPS

from .._fuse import kernel_set, xp_of
from .poincare import _scalar, poincare_expmap0_forward, scaled_map_backward
from .poincare import kernels_for as map_kernels_for
from .poincare_geometry import (
    poincare_distance_backward,
    poincare_distance_forward,
    poincare_expmap_backward,
    poincare_expmap_forward,
    poincare_logmap_backward,
    poincare_logmap_forward,
    poincare_parallel_transport_backward,
    poincare_parallel_transport_forward,
)


def _kernels(xp, fuse):
    @fuse
    def weights(x2, c):
        return 1 / (1 - c * x2)  # λ_i/2

    @fuse
    def midpoint_g_w(dot, denominator, g_spread, e2, c, spread, g_q):
        return 2 * dot / denominator + g_spread * e2 + 4 * c * spread * g_q

    @fuse
    def midpoint_grad(w, g_m, denominator, g_spread, centred, c, g_w, points):
        return 2 * w * g_m / denominator + 2 * g_spread * w * centred + 2 * c * w * w * g_w * points

    return SimpleNamespace(weights=weights, midpoint_g_w=midpoint_g_w, midpoint_grad=midpoint_grad)


kernels_for = kernel_set(_kernels)


def _midpoint_forward(points, c):
    xp, k, maps = xp_of(points), kernels_for(points), map_kernels_for(points)
    batch = points.shape[0]
    c = _scalar(c, points)
    w = k.weights(maps.squared_norm(points)[..., None], c)  # (B, 1)
    w_sum = xp.sum(w)  # W ≥ B
    numerator = 2 * xp.sum(w * points, axis=0)  # N = Σ λ_i x_i
    centred = points - numerator / (2 * w_sum)  # e_i = x_i − x̄
    e2 = maps.squared_norm(centred)[..., None]
    spread = xp.sum(w * e2)  # V ≥ 0
    root_q = xp.sqrt(batch * batch + 4 * c * w_sum * spread)  # √Q ≥ B
    denominator = 2 * w_sum - batch + root_q
    m = numerator / denominator
    return m, (points, w, w_sum, centred, e2, spread, root_q, denominator, m, c)


def _midpoint_backward(residuals, g_m):
    points, w, w_sum, centred, e2, spread, root_q, denominator, m, c = residuals
    xp, k, maps = xp_of(points), kernels_for(points), map_kernels_for(points)
    g_denominator = -xp.sum(g_m * m) / denominator  # m = N/D
    g_q = g_denominator / (2 * root_q)
    g_spread = 4 * c * w_sum * g_q
    dot = maps.row_dot(points - m, xp.broadcast_to(g_m, points.shape))[..., None]
    g_w = k.midpoint_g_w(dot, denominator, g_spread, e2, c, spread, g_q)
    return k.midpoint_grad(w, g_m, denominator, g_spread, centred, c, g_w, points)


def poincare_midpoint_forward(points, *, c=1.0):
    return _midpoint_forward(points, float(c))


def poincare_midpoint_backward(residuals, g_m):
    return (_midpoint_backward(residuals, g_m),)


def poincare_batch_norm_forward(x, gamma, beta, *, c=1.0):
    xp = xp_of(x)
    c = float(c)
    batch = x.shape[0]
    b, b_residuals = poincare_expmap0_forward(beta, c=c)
    mu, mu_residuals = _midpoint_forward(x, c)
    mu_rows = xp.broadcast_to(mu, x.shape)
    b_rows = xp.broadcast_to(b, x.shape)
    w, log_residuals = poincare_logmap_forward(mu_rows, x, c=c)
    d, distance_residuals = poincare_distance_forward(x, mu_rows, c=c)
    variance = xp.sum(d * d) / batch
    p, transport_residuals = poincare_parallel_transport_forward(mu_rows, b_rows, w, c=c)
    scale = xp.sqrt(gamma / (variance + _scalar(VARIANCE_EPS, x)))
    z = scale * p
    out, exp_residuals = poincare_expmap_forward(b_rows, z, c=c)
    residuals = (
        gamma,
        d,
        variance,
        p,
        scale,
        b_residuals,
        mu_residuals,
        log_residuals,
        distance_residuals,
        transport_residuals,
        exp_residuals,
    )
    return out, residuals


def poincare_batch_norm_backward(residuals, g_out):
    (
        gamma,
        d,
        variance,
        p,
        scale,
        b_residuals,
        mu_residuals,
        log_residuals,
        distance_residuals,
        transport_residuals,
        exp_residuals,
    ) = residuals
    xp = xp_of(g_out)
    batch = g_out.shape[0]
    g_b_rows, g_z = poincare_expmap_backward(exp_residuals, g_out)
    g_scale = xp.sum(g_z * p)
    g_p = scale * g_z
    g_gamma = g_scale * scale / (2 * gamma)
    g_variance = -g_scale * scale / (2 * (variance + _scalar(VARIANCE_EPS, g_out)))
    g_mu_rows, g_b_from_transport, g_w = poincare_parallel_transport_backward(transport_residuals, g_p)
    g_b_rows = g_b_rows + g_b_from_transport
    g_x_from_distance, g_mu_from_distance = poincare_distance_backward(
        distance_residuals, g_variance * 2 * d / batch
    )
    g_mu_from_log, g_x = poincare_logmap_backward(log_residuals, g_w)
    g_mu = xp.sum(g_mu_rows + g_mu_from_distance + g_mu_from_log, axis=0)
    g_x = g_x + g_x_from_distance + _midpoint_backward(mu_residuals, g_mu)
    (g_beta,) = scaled_map_backward(b_residuals, xp.sum(g_b_rows, axis=0))
    return g_x, xp.asarray(g_gamma, dtype=g_out.dtype), g_beta


IMPLS = {
    "poincare_midpoint": Impl(poincare_midpoint_forward, poincare_midpoint_backward),
    "poincare_batch_norm": Impl(poincare_batch_norm_forward, poincare_batch_norm_backward),
}
