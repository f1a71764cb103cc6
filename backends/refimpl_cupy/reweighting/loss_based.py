"""Loss-based sample weights on CuPy: fused score kernels, then a max, an exp and a sum.

Mirrors ``refimpl/reweighting/loss_based.py``. Each strategy is one fused kernel from
the losses to the score f (ℓ̃ = δ((ℓ − ℓmin) − (ℓmax − ℓ))/D computed inside it, the
cancellation-free form); the shifted exponentials are one more fused kernel. ℓmin, ℓmax,
max f and Σ exp are CuPy reductions that stay on the device (0-d arrays).
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl
from refimpl.reweighting.loss_based import SPREAD_GUARD

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def linupper(losses, l_min, l_max, spread, delta):
        l_tilde = delta * ((losses - l_min) - (l_max - losses)) / spread
        return xp.minimum(l_tilde + delta, delta)

    @fuse
    def quadratic(losses, l_min, l_max, spread, delta):
        l_tilde = delta * ((losses - l_min) - (l_max - losses)) / spread
        return 1 - l_tilde * l_tilde / (delta * delta)

    @fuse
    def extremes(losses, l_min, l_max, spread, delta):
        return abs(delta * ((losses - l_min) - (l_max - losses)) / spread)

    @fuse
    def identity(losses, l_min, l_max, spread, delta):
        return delta * ((losses - l_min) - (l_max - losses)) / spread

    @fuse
    def shifted_exp(f, f_max, r):
        # subtract the max score: every exponent is <= 0, so exp cannot overflow
        return xp.exp((f - f_max) / r)

    @fuse
    def weighted_sum(losses, weights):
        return xp.sum(weights * losses)

    return SimpleNamespace(
        weighted_sum=weighted_sum,
        linupper=linupper,
        quadratic=quadratic,
        extremes=extremes,
        identity=identity,
        shifted_exp=shifted_exp,
    )


kernels_for = kernel_set(_kernels)


def loss_based_sample_weights_forward(losses, *, strategy, r, delta=1.0):
    xp = xp_of(losses)
    dtype = losses.dtype.type
    n = losses.shape[0]
    if strategy == "uniform":
        return xp.full(n, 1 / n, dtype=losses.dtype), None
    k = kernels_for(losses)
    l_min, l_max = losses.min(), losses.max()
    spread = xp.maximum(l_max - l_min, dtype(SPREAD_GUARD))  # D, guarded for (nearly) equal losses
    f = getattr(k, strategy)(losses, l_min, l_max, spread, dtype(delta))
    e = k.shifted_exp(f, f.max(), dtype(r))
    return e / e.sum(), None


def loss_weighted_objective_forward(losses, weights, *, world_size=1):
    """``W·Σ w_i ℓ_i``: one fused multiply-and-reduce kernel; the result stays on the device."""
    xp = xp_of(losses)
    total = kernels_for(losses).weighted_sum(losses, weights)
    return xp.asarray(losses.dtype.type(world_size) * total, dtype=losses.dtype), (weights, world_size)


def loss_weighted_objective_backward(residuals, g_objective):
    weights, world_size = residuals
    return (g_objective * (weights.dtype.type(world_size) * weights),)


IMPLS = {
    "loss_based_sample_weights": Impl(loss_based_sample_weights_forward),
    "loss_weighted_objective": Impl(loss_weighted_objective_forward, loss_weighted_objective_backward),
}
