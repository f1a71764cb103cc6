"""Loss-based sample weights: one Numba kernel, three passes over the losses.

Mirrors ``refimpl/reweighting/loss_based.py``: pass 1 finds ℓmin and ℓmax, pass 2 writes
the strategy's score f (from ℓ̃ = δ((ℓ − ℓmin) − (ℓmax − ℓ))/D, the cancellation-free
form) and its maximum, pass 3 the shifted exponentials and their sum, accumulated in
float64 (a float32 running sum would lose ~n·eps; the reference sums pairwise). The
arithmetic stays in the input dtype: every constant is converted to it first (a bare
literal ``1`` would promote float32 to float64 in Numba).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from refimpl.authoring import Impl
from refimpl.reweighting.loss_based import SPREAD_GUARD

STRATEGY_CODES = {"linupper": 0, "quadratic": 1, "extremes": 2, "identity": 3}


@njit(cache=True)
def _weights(losses, strategy, delta, r, guard, out):
    n = losses.shape[0]
    one = out.dtype.type(1)
    l_min = losses[0]
    l_max = losses[0]
    for i in range(1, n):
        l_min = min(l_min, losses[i])
        l_max = max(l_max, losses[i])
    spread = max(l_max - l_min, guard)  # D, guarded for (nearly) equal losses
    f_max = out.dtype.type(0)
    for i in range(n):
        l_tilde = delta * ((losses[i] - l_min) - (l_max - losses[i])) / spread
        if strategy == 0:  # linupper
            f = min(l_tilde + delta, delta)
        elif strategy == 1:  # quadratic
            f = one - l_tilde * l_tilde / (delta * delta)
        elif strategy == 2:  # extremes
            f = abs(l_tilde)
        else:  # identity
            f = l_tilde
        out[i] = f
        f_max = f if i == 0 else max(f_max, f)
    total = 0.0
    for i in range(n):
        # subtract the max score: every exponent is <= 0, so exp cannot overflow
        e = np.exp((out[i] - f_max) / r)
        out[i] = e
        total += e
    total_in_dtype = out.dtype.type(total)
    for i in range(n):
        out[i] = out[i] / total_in_dtype


def loss_based_sample_weights_forward(losses, *, strategy, r, delta=1.0):
    dtype = losses.dtype.type
    n = losses.shape[0]
    if strategy == "uniform":
        return np.full(n, 1 / n, dtype=losses.dtype), None
    weights = np.empty_like(losses)
    _weights(
        np.ascontiguousarray(losses),
        STRATEGY_CODES[strategy],
        dtype(delta),
        dtype(r),
        dtype(SPREAD_GUARD),
        weights,
    )
    return weights, None


@njit(cache=True)
def _weighted_sum(losses, weights):
    total = 0.0  # float64 accumulation: a float32 running sum would lose ~n·eps
    for i in range(losses.shape[0]):
        total += weights[i] * losses[i]
    return total


def loss_weighted_objective_forward(losses, weights, *, world_size=1):
    """``W·Σ w_i ℓ_i``: one pass, accumulated in float64, rounded once to the input dtype."""
    total = _weighted_sum(np.ascontiguousarray(losses), np.ascontiguousarray(weights))
    return np.asarray(world_size * total, dtype=losses.dtype), (weights, world_size)


def loss_weighted_objective_backward(residuals, g_objective):
    weights, world_size = residuals
    return (g_objective * (weights.dtype.type(world_size) * weights),)


IMPLS = {
    "loss_based_sample_weights": Impl(loss_based_sample_weights_forward),
    "loss_weighted_objective": Impl(loss_weighted_objective_forward, loss_weighted_objective_backward),
}
