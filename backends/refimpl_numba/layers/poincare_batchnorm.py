"""Poincaré midpoint and midpoint batch normalization: Numba kernels, composed as in the reference.

Mirrors ``refimpl/layers/poincare_batchnorm.py``, including its cancellation-free midpoint
``m = N/(2W − B + √(B² + 4cWV))`` (``w_i = 1/(1 − c‖x_i‖²)``, ``W = Σ w_i``,
``V = Σ w_i‖x_i − x̄‖²``). The per-row work (``w_i``, ``‖e_i‖²``, the whole backward row) is
in parallel kernels; the sums over the batch and the few n-vector steps are NumPy in
float64. Batch normalization chains this backend's kernels for ``exp_0``, the midpoint,
``log_μ``, the distance, parallel transport and ``exp_b`` in the reference's order, passing
input-dtype arrays between the steps as the reference does.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl
from refimpl.layers.poincare_batchnorm import (
    BatchNormParts,
    chain_batch_norm_backward,
    chain_batch_norm_forward,
)

from .._jit import parallel_kernel
from .poincare import _below_one, poincare_expmap0_forward, scaled_map_backward
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


@parallel_kernel()
def _weight_rows(points, c, below_one, w):
    """``w_i = λ_i/2 = 1/(1 − c‖x_i‖²)`` per row."""
    for i in prange(points.shape[0]):
        x2 = 0.0
        for j in range(points.shape[1]):
            xj = np.float64(points[i, j])
            x2 += xj * xj
        w[i] = 1.0 / (1.0 - min(c * x2, below_one))  # the cap: see refimpl_numba's poincare.py


@parallel_kernel()
def _spread_rows(points, mean, e2):
    """``‖e_i‖² = ‖x_i − x̄‖²`` per row."""
    for i in prange(points.shape[0]):
        total = 0.0
        for j in range(points.shape[1]):
            e = np.float64(points[i, j]) - mean[j]
            total += e * e
        e2[i] = total


@parallel_kernel()
def _midpoint_backward_rows(points, w, e2, mean, m, g_m, denominator, g_spread, g_w_shift, c, g_points):
    """``x̄_i = 2w_i m̄/D + 2V̄ w_i e_i + 2c w_i² w̄_i x_i``, ``w̄_i = 2⟨x_i − m, m̄⟩/D + V̄‖e_i‖² + 4cV Q̄``."""
    for i in prange(points.shape[0]):
        dot = 0.0
        for j in range(points.shape[1]):
            dot += (np.float64(points[i, j]) - m[j]) * g_m[j]
        w_i = w[i]
        g_w = 2.0 * dot / denominator + g_spread * e2[i] + g_w_shift
        a = 2.0 * w_i / denominator
        b = 2.0 * g_spread * w_i
        k = 2.0 * c * w_i * w_i * g_w
        for j in range(points.shape[1]):
            xj = np.float64(points[i, j])
            g_points[i, j] = a * g_m[j] + b * (xj - mean[j]) + k * xj


def _midpoint_forward(points, c):
    """The reference's cancellation-free form ``m = N/(2W − B + √(B² + 4cWV)``, in float64."""
    batch = points.shape[0]
    w = np.empty(batch)
    _weight_rows(points, c, _below_one(points.dtype), w)
    w_sum = np.sum(w)  # W ≥ B
    numerator = 2 * np.sum(w[:, None] * points, axis=0)  # N = Σ λ_i x_i (float64)
    mean = numerator / (2 * w_sum)  # x̄
    e2 = np.empty(batch)
    _spread_rows(points, mean, e2)
    spread = np.sum(w * e2)  # V = Σ w_i ‖e_i‖² ≥ 0
    root_q = np.sqrt(batch * batch + 4 * c * w_sum * spread)  # √Q ≥ B
    denominator = 2 * w_sum - batch + root_q  # a sum of positive terms
    m = numerator / denominator
    return m.astype(points.dtype), (points, w, w_sum, mean, e2, spread, root_q, denominator, m, c)


def _midpoint_backward(residuals, g_m):
    points, w, w_sum, mean, e2, spread, root_q, denominator, m, c = residuals
    g_m = np.asarray(g_m, dtype=np.float64)
    g_denominator = -np.sum(g_m * m) / denominator  # m = N/D
    g_q = g_denominator / (2 * root_q)  # D = 2W − B + √Q
    g_spread = 4 * c * w_sum * g_q  # Q = B² + 4cWV
    g_points = np.empty_like(points)
    _midpoint_backward_rows(
        points, w, e2, mean, m, g_m, denominator, g_spread, 4 * c * spread * g_q, c, g_points
    )
    return g_points


def poincare_midpoint_forward(points, *, c=1.0):
    return _midpoint_forward(np.ascontiguousarray(points), float(c))


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
)


def poincare_batch_norm_forward(x, gamma, beta, *, c=1.0):
    """The reference's chain (``chain_batch_norm_forward``) over this backend's kernels."""
    return chain_batch_norm_forward(np.ascontiguousarray(x), gamma, beta, float(c), PARTS)


def poincare_batch_norm_backward(residuals, g_out):
    return chain_batch_norm_backward(residuals, g_out, PARTS)


IMPLS = {
    "poincare_midpoint": Impl(poincare_midpoint_forward, poincare_midpoint_backward),
    "poincare_batch_norm": Impl(poincare_batch_norm_forward, poincare_batch_norm_backward),
}
