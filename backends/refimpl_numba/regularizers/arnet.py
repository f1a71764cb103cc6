"""AR-Net sparsity regularizer: Numba kernels over the flattened weights.

Mirrors ``refimpl/regularizers/arnet.py``: the forward sums ``tanh(c1 u/2) = −expm1(−y)/(1 +
e^{−y})`` (``y = c1 u``, ``u = (ε + |θ|)^{1/c2}``) in a float64 reduction over the weights; the
backward recomputes ``u`` and ``e`` per weight (no residual arrays) and writes
``θ̄ = w·c1·2e/(1 + e)²·u/(c2(ε + |θ|))·sign(θ)``, 0 at θ = 0.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@parallel_kernel(fastmath={"reassoc"})
def _arnet_sum(theta, c1, inverse_c2, eps):
    total = 0.0
    for i in prange(theta.shape[0]):
        y = c1 * math.pow(eps + abs(np.float64(theta[i])), inverse_c2)
        total += -math.expm1(-y) / (1.0 + math.exp(-y))  # tanh(y/2)
    return total


@parallel_kernel()
def _arnet_backward(theta, c1, inverse_c2, eps, weight, g_theta):
    for i in prange(theta.shape[0]):
        value = np.float64(theta[i])
        if value == 0.0:
            g_theta[i] = 0.0  # sign(0) = 0
            continue
        shifted = eps + abs(value)
        root = math.pow(shifted, inverse_c2)
        decay = math.exp(-c1 * root)
        slope = c1 * 2.0 * decay / ((1.0 + decay) * (1.0 + decay))
        gradient = weight * slope * root * inverse_c2 / shifted
        g_theta[i] = gradient if value > 0 else -gradient


def _scale(sparsity):
    return 1.0 if sparsity is None else 0.02 * (1.0 / sparsity - 1.0)


def arnet_sparsity_regularizer_forward(theta, *, c1=3.0, c2=3.0, eps=1e-12, sparsity=None):
    flat = np.ascontiguousarray(theta).reshape(-1)
    scale = _scale(sparsity)
    total = _arnet_sum(flat, float(c1), 1.0 / float(c2), float(eps))
    penalty = np.asarray(scale * total / flat.size, dtype=theta.dtype)
    return penalty, (flat, theta.shape, float(c1), 1.0 / float(c2), float(eps), scale)


def arnet_sparsity_regularizer_backward(residuals, g_penalty):
    flat, shape, c1, inverse_c2, eps, scale = residuals
    weight = float(g_penalty) * scale / flat.size
    g_theta = np.empty(flat.shape, dtype=flat.dtype)
    _arnet_backward(flat, c1, inverse_c2, eps, weight, g_theta)
    return (g_theta.reshape(shape),)


IMPLS = {
    "arnet_sparsity_regularizer": Impl(
        arnet_sparsity_regularizer_forward, arnet_sparsity_regularizer_backward
    ),
}
