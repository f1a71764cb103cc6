"""Poincaré midpoint and midpoint batch normalization on CuPy, composed as in the reference.

Mirrors ``refimpl/layers/poincare_batchnorm.py``: the cancellation-free midpoint
``m = N/(2W − B + √(B² + 4cWV))`` (``w_i = 1/(1 − c‖x_i‖²)``, ``W = Σ w_i``,
``V = Σ w_i‖x_i − x̄‖²``) with its per-row steps as fused kernels and its batch sums as
reductions, and batch normalization chaining this backend's ``exp_0``, midpoint, ``log_μ``,
distance, parallel transport and ``exp_b`` in the reference's order.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl
from refimpl.layers.poincare_batchnorm import (
    BatchNormParts,
    chain_batch_norm_backward,
    chain_batch_norm_forward,
)

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


PARTS = BatchNormParts(
    expmap0_forward=poincare_expmap0_forward,
    expmap0_backward=scaled_map_backward,
    midpoint_forward=_midpoint_forward,
    midpoint_backward=_midpoint_backward,
    logmap_forward=poincare_logmap_forward,
    logmap_backward=poincare_logmap_backward,
    distance_forward=poincare_distance_forward,
    distance_backward=poincare_distance_backward,
    transport_forward=poincare_parallel_transport_forward,
    transport_backward=poincare_parallel_transport_backward,
    expmap_forward=poincare_expmap_forward,
    expmap_backward=poincare_expmap_backward,
    scalar=_scalar,
)


def poincare_batch_norm_forward(x, gamma, beta, *, c=1.0):
    """The reference's chain (``chain_batch_norm_forward``) over this backend's kernels."""
    return chain_batch_norm_forward(x, gamma, beta, float(c), PARTS)


def poincare_batch_norm_backward(residuals, g_out):
    return chain_batch_norm_backward(residuals, g_out, PARTS)


IMPLS = {
    "poincare_midpoint": Impl(poincare_midpoint_forward, poincare_midpoint_backward),
    "poincare_batch_norm": Impl(poincare_batch_norm_forward, poincare_batch_norm_backward),
}
