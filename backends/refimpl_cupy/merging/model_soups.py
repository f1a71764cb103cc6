"""Model soups on CuPy: a float64 mean over the stacked models, a fused multiply-add per model.

Mirrors ``refimpl/merging/model_soups.py``. The uniform soup sums the K models of every
element in float64 (one reduction over the trailing axis) and divides once. The learned soup
accumulates ``Σ_k p_k θ_k`` with one fused multiply-add kernel per model, in the input dtype
and the reference's order; its backward ``p̄ = θ̄ᵀ·[θ_1 … θ_K]`` is one matrix-vector product,
then softmax's VJP (the shared block). Everything stays on the device; the greedy soup stays
in the reference.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl, softmax, softmax_backward

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def multiply_add(accumulated, theta, weight):
        return accumulated + theta * weight

    return SimpleNamespace(multiply_add=multiply_add)


kernels_for = kernel_set(_kernels)


def weighted_sum(stacked, weights):
    """``Σ_k weights_k·stacked[..., k]`` accumulated k = 1, 2, … in the dtype (fused per k)."""
    k = kernels_for(stacked)
    total = stacked[..., 0] * weights[0]
    for index in range(1, stacked.shape[-1]):
        total = k.multiply_add(total, stacked[..., index], weights[index])
    return total


def uniform_soup_forward(thetas):
    xp = xp_of(thetas)
    mean = thetas.sum(axis=-1, dtype=xp.float64) / thetas.shape[-1]  # float64 sum, one division
    return mean.astype(thetas.dtype), None


def learned_soup_forward(thetas, alpha):
    xp = xp_of(thetas)
    p = softmax(alpha)
    return xp.asarray(weighted_sum(thetas, p), dtype=thetas.dtype), (thetas, p)


def learned_soup_backward(residuals, g_theta):
    thetas, p = residuals
    count = thetas.shape[-1]
    g_p = g_theta.reshape(-1) @ thetas.reshape(-1, count)  # p̄_k = ⟨θ̄, θ_k⟩
    return (softmax_backward(p, g_p),)


IMPLS = {
    "uniform_soup": Impl(uniform_soup_forward),
    "learned_soup": Impl(learned_soup_forward, learned_soup_backward),
}
