"""DIFF2 estimator step on CuPy: float64 row norms, then one fused pass for v_r and x_{r+1}.

Mirrors ``refimpl/optim/diff2.py``: the differences, row norms and node average are formed
in float64 with CuPy's reductions; the final ``v_r = base + average + σξ`` and
``x_{r+1} = x_r − ηv_r`` run as one fused kernel. On the host the same code runs as NumPy.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def clip_factor(norms, radius):
        # 1 where ‖u_i‖ ≤ C (also u_i = 0), C/‖u_i‖ otherwise
        return xp.where(norms > radius, radius / xp.where(norms > radius, norms, 1.0), 1.0)

    @fuse
    def update(params64, base, node_average, noise64, sigma, lr):
        v = base + node_average + sigma * noise64
        return params64 - lr * v, v

    return SimpleNamespace(clip_factor=clip_factor, update=update)


kernels_for = kernel_set(_kernels)


def diff2_estimator_step_forward(
    params,
    grads,
    grads_previous,
    estimator,
    noise,
    *,
    round_index,
    period,
    clip_restart,
    clip_difference,
    sigma_restart,
    sigma_difference,
    lr,
):
    xp = xp_of(params)
    k = kernels_for(params)
    restart = round_index % period == 0
    u64 = grads.astype(xp.float64)
    if restart:
        radius, sigma, base = clip_restart, sigma_restart, xp.zeros(params.shape, xp.float64)
    else:
        u64 = u64 - grads_previous.astype(xp.float64)
        radius, sigma, base = clip_difference, sigma_difference, estimator.astype(xp.float64)
    if radius is None:
        factors = xp.ones(grads.shape[0], xp.float64)
    else:
        factors = k.clip_factor(xp.sqrt(xp.sum(u64 * u64, axis=1)), float(radius))
    node_average = xp.sum(factors[:, None] * u64, axis=0) / grads.shape[0]
    new_params, new_estimator = k.update(
        params.astype(xp.float64), base, node_average, noise.astype(xp.float64), float(sigma), float(lr)
    )
    return (new_params.astype(params.dtype), new_estimator.astype(params.dtype)), None


IMPLS = {"diff2_estimator_step": Impl(diff2_estimator_step_forward)}
