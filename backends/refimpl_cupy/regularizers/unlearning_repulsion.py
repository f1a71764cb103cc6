"""Adapt-then-Unlearn repulsion regularizer on CuPy: a fused weighted sum of squares and its gradient.

Mirrors ``refimpl/regularizers/unlearning_repulsion.py``: each entry carries its tensor's
``1/n_p``; ``d = c·Σ_j (1/n_p) Σ_N (θ_j − θ_N,j)²`` and ``θ̄ = ḡ R'(d) (2c/n_p) Σ_N (θ − θ_N)``.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from refimpl.authoring import Impl
from refimpl.regularizers.unlearning_repulsion import _repulsion, _scale

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def squared_difference(theta, theta_adapted):
        difference = theta - theta_adapted
        return difference * difference

    @fuse
    def weighted_gradient(difference_sum, entry_weight, factor):
        return factor * entry_weight * difference_sum

    return SimpleNamespace(squared_difference=squared_difference, weighted_gradient=weighted_gradient)


kernels_for = kernel_set(_kernels)


def unlearning_repulsion_regularizer_forward(
    theta, theta_adapted, sizes, *, form, gamma=1.0, official_scaling=True
):
    xp = xp_of(theta)
    k = kernels_for(theta)
    dtype = theta.dtype.type
    host_sizes = np.asarray(sizes.get() if hasattr(sizes, "get") else sizes)
    c = _scale(theta_adapted.shape[0], host_sizes.shape[0], official_scaling)
    entry_weight = xp.asarray(np.repeat(1.0 / host_sizes, host_sizes).astype(theta.dtype))
    d = dtype(c) * (entry_weight * k.squared_difference(theta[None, :], theta_adapted).sum(axis=0)).sum()
    loss, slope = _repulsion(d, dtype(gamma), form)
    return xp.asarray(loss).astype(theta.dtype), (theta, theta_adapted, entry_weight, c, slope)


def unlearning_repulsion_regularizer_backward(residuals, g_loss):
    theta, theta_adapted, entry_weight, c, slope = residuals
    xp = xp_of(theta)
    factor = g_loss.astype(theta.dtype) * xp.asarray(slope).astype(theta.dtype) * theta.dtype.type(2 * c)
    difference_sum = (theta[None, :] - theta_adapted).sum(axis=0)  # differences before summing
    g_theta = kernels_for(theta).weighted_gradient(difference_sum, entry_weight, factor)
    return (g_theta.astype(theta.dtype),)


IMPLS = {
    "unlearning_repulsion_regularizer": Impl(
        unlearning_repulsion_regularizer_forward, unlearning_repulsion_regularizer_backward
    )
}
