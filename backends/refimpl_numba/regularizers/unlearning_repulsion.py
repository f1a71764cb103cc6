"""Adapt-then-Unlearn repulsion regularizer: Numba kernels, parallel over the matched tensors.

Mirrors ``refimpl/regularizers/unlearning_repulsion.py``. Forward: per tensor p,
``Σ_N Σ_j (θ_j − θ_N,j)²/n_p`` in float64, then ``d = c·Σ_p`` and ``R(d)``; backward: one
elementwise pass, ``θ̄_j = ḡ R'(d) (2c/n_p) Σ_N (θ_j − θ_N,j)``.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl
from refimpl.regularizers.unlearning_repulsion import _repulsion, _scale
from refimpl.regularizers.wdr import segment_offsets

from .._jit import parallel_kernel


@parallel_kernel(fastmath={"reassoc"})
def _mse_per_tensor(theta, theta_adapted, offsets, mse):
    for p in prange(offsets.shape[0] - 1):
        start, stop = offsets[p], offsets[p + 1]
        total = 0.0
        for m in range(theta_adapted.shape[0]):
            for j in range(start, stop):
                difference = np.float64(theta[j]) - np.float64(theta_adapted[m, j])
                total += difference * difference
        mse[p] = total / (stop - start)


@parallel_kernel(fastmath={"reassoc"})
def _repulsion_grad(theta, theta_adapted, offsets, factor, g_theta):
    n_models = theta_adapted.shape[0]
    for p in prange(offsets.shape[0] - 1):
        start, stop = offsets[p], offsets[p + 1]
        scale = factor / (stop - start)
        for j in range(start, stop):
            total = 0.0
            for m in range(n_models):
                total += np.float64(theta[j]) - np.float64(theta_adapted[m, j])
            g_theta[j] = scale * total


def unlearning_repulsion_regularizer_forward(
    theta, theta_adapted, sizes, *, form, gamma=1.0, official_scaling=True
):
    work, adapted = np.ascontiguousarray(theta), np.ascontiguousarray(theta_adapted)
    offsets = segment_offsets(sizes)
    mse = np.empty(offsets.shape[0] - 1, dtype=np.float64)
    _mse_per_tensor(work, adapted, offsets, mse)
    c = _scale(adapted.shape[0], mse.shape[0], official_scaling)
    d = c * float(mse.sum())
    loss, slope = _repulsion(np.float64(d), np.float64(gamma), form)
    return np.asarray(loss, dtype=theta.dtype), (work, adapted, offsets, c, float(slope))


def unlearning_repulsion_regularizer_backward(residuals, g_loss):
    work, adapted, offsets, c, slope = residuals
    g_theta = np.empty(work.shape, dtype=work.dtype)
    _repulsion_grad(work, adapted, offsets, float(g_loss) * slope * 2.0 * c, g_theta)
    return (g_theta,)


IMPLS = {
    "unlearning_repulsion_regularizer": Impl(
        unlearning_repulsion_regularizer_forward, unlearning_repulsion_regularizer_backward
    )
}
