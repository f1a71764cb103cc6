"""KL-regularized DRO weights, value and compositional weights: Numba kernels.

Mirrors ``refimpl/reweighting/kl_dro.py``. Each op is a few passes over the n losses:
the max, the shifted exponentials of ``(ℓ − ℓmax)/r`` (sums accumulated in float64),
then the normalization. The value uses ``log1p(mean expm1(x))`` like the reference, so the
r → ∞ limit (the mean) keeps its digits. Outputs are rounded once to the input dtype.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from refimpl.authoring import Impl


@njit(cache=True)
def _softmax_of_gaps(losses, r, weights):
    """weights = softmax((ℓ − ℓmax)/r); returns (ℓmax, Σ expm1((ℓ − ℓmax)/r)) in float64."""
    n = losses.shape[0]
    top = losses[0]
    for i in range(1, n):
        top = max(top, losses[i])
    total = 0.0
    total_expm1 = 0.0
    for i in range(n):
        gap = (np.float64(losses[i]) - np.float64(top)) / r  # <= 0: exp cannot overflow
        total += np.exp(gap)
        total_expm1 += np.expm1(gap)
    for i in range(n):
        gap = (np.float64(losses[i]) - np.float64(top)) / r
        weights[i] = np.exp(gap) / total
    return np.float64(top), total_expm1


def kl_dro_weights_forward(losses, *, r):
    weights = np.empty_like(losses)
    _softmax_of_gaps(np.ascontiguousarray(losses), float(r), weights)
    return weights, (weights, r)


@njit(cache=True)
def _softmax_backward(weights, g_weights, r, g_losses):
    dot = 0.0
    for i in range(weights.shape[0]):
        dot += np.float64(weights[i]) * np.float64(g_weights[i])
    for i in range(weights.shape[0]):
        g_losses[i] = weights[i] * (np.float64(g_weights[i]) - dot) / r


def kl_dro_weights_backward(residuals, g_weights):
    weights, r = residuals
    g_losses = np.empty_like(weights)
    _softmax_backward(weights, np.ascontiguousarray(g_weights), float(r), g_losses)
    return (g_losses,)


def kl_dro_value_forward(losses, *, r):
    weights = np.empty_like(losses)
    top, total_expm1 = _softmax_of_gaps(np.ascontiguousarray(losses), float(r), weights)
    value = top + r * np.log1p(total_expm1 / losses.shape[0])  # ℓmax + r·log1p(mean expm1 x)
    return np.asarray(value, dtype=losses.dtype), (weights,)


def kl_dro_value_backward(residuals, g_value):
    (weights,) = residuals
    return (g_value * weights,)


@njit(cache=True)
def _compositional(losses, r, log_u, log_keep, log_beta, log_n_train, weights):
    n = losses.shape[0]
    top = np.float64(losses[0]) / r
    for i in range(1, n):
        top = max(top, np.float64(losses[i]) / r)
    total = 0.0
    for i in range(n):
        total += np.exp(np.float64(losses[i]) / r - top)
    log_batch_mean = top + np.log(total) - np.log(n)
    log_u_new = np.logaddexp(log_keep + log_u, log_beta + log_batch_mean)
    for i in range(n):
        # exponent <= log(B/(β n)): cannot overflow
        weights[i] = np.exp(np.float64(losses[i]) / r - log_u_new - log_n_train)
    return log_u_new


def kl_dro_compositional_weights_forward(losses, log_u, *, r, beta, n_train):
    weights = np.empty_like(losses)
    with np.errstate(divide="ignore"):  # log(1 − β) = −inf at β = 1: the history is dropped
        log_keep = float(np.log1p(-beta))
    log_u_new = _compositional(
        np.ascontiguousarray(losses),
        float(r),
        float(log_u),
        log_keep,
        float(np.log(beta)),
        float(np.log(n_train)),
        weights,
    )
    return (weights, np.asarray(log_u_new, dtype=losses.dtype)), None


IMPLS = {
    "kl_dro_weights": Impl(kl_dro_weights_forward, kl_dro_weights_backward),
    "kl_dro_value": Impl(kl_dro_value_forward, kl_dro_value_backward),
    "kl_dro_compositional_weights": Impl(kl_dro_compositional_weights_forward),
}
