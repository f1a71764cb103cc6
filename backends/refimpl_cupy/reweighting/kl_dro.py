"""KL-regularized DRO weights, value and compositional weights on CuPy.

Mirrors ``refimpl/reweighting/kl_dro.py``: the scaled gaps ``(ℓ − ℓmax)/r`` and their
exponentials are fused kernels, the max and the sums CuPy reductions that stay on the
device (0-d arrays); the value uses ``log1p(mean expm1(x))`` like the reference.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def exp_of_gaps(losses, top, r):
        # (ℓ − ℓmax)/r <= 0: exp cannot overflow, and ℓ/r itself is never formed; divided,
        # not multiplied by 1/r, which overflows for a denormal r
        return xp.exp((losses - top) / r)

    @fuse
    def expm1_of_gaps(losses, top, r):
        return xp.expm1((losses - top) / r)

    @fuse
    def softmax_grad(weights, g_weights, w_dot_g, r):
        return weights * (g_weights - w_dot_g) / r

    @fuse
    def compositional(losses, r, log_u_new, log_n_train):
        # exponent <= log(B/(β n)): cannot overflow
        return xp.exp(losses / r - log_u_new - log_n_train)

    return SimpleNamespace(
        exp_of_gaps=exp_of_gaps,
        expm1_of_gaps=expm1_of_gaps,
        softmax_grad=softmax_grad,
        compositional=compositional,
    )


kernels_for = kernel_set(_kernels)


def _weights(k, losses, r):
    e = k.exp_of_gaps(losses, losses.max(), r)
    return e / e.sum()


def kl_dro_weights_forward(losses, *, r):
    weights = _weights(kernels_for(losses), losses, losses.dtype.type(r))
    return weights, (weights, r)


def kl_dro_weights_backward(residuals, g_weights):
    weights, r = residuals
    k = kernels_for(weights)
    w_dot_g = (weights * g_weights).sum()
    return (k.softmax_grad(weights, g_weights, w_dot_g, weights.dtype.type(r)),)


def kl_dro_value_forward(losses, *, r):
    xp = xp_of(losses)
    k = kernels_for(losses)
    dtype = losses.dtype.type
    top = losses.max()
    log_mean_exp = xp.log1p(k.expm1_of_gaps(losses, top, dtype(r)).mean())
    value = top + dtype(r) * log_mean_exp  # ℓmax + r·log1p(mean expm1 x)
    return xp.asarray(value, dtype=losses.dtype), (_weights(k, losses, dtype(r)),)


def kl_dro_value_backward(residuals, g_value):
    (weights,) = residuals
    return (g_value * weights,)


def kl_dro_compositional_weights_forward(losses, log_u, *, r, beta, n_train):
    xp = xp_of(losses)
    k = kernels_for(losses)
    dtype = losses.dtype.type
    top = losses.max()
    log_batch_mean = (
        top / dtype(r) + xp.log(k.exp_of_gaps(losses, top, dtype(r)).sum()) - dtype(np.log(losses.shape[0]))
    )
    with np.errstate(divide="ignore"):  # log(1 − β) = −inf at β = 1: the history is dropped
        log_keep = dtype(np.log1p(-beta))
    log_u_new = xp.logaddexp(log_keep + log_u, dtype(np.log(beta)) + log_batch_mean)
    weights = k.compositional(losses, dtype(r), log_u_new, dtype(np.log(n_train)))
    return (weights, xp.asarray(log_u_new, dtype=losses.dtype)), None


IMPLS = {
    "kl_dro_weights": Impl(kl_dro_weights_forward, kl_dro_weights_backward),
    "kl_dro_value": Impl(kl_dro_value_forward, kl_dro_value_backward),
    "kl_dro_compositional_weights": Impl(kl_dro_compositional_weights_forward),
}
