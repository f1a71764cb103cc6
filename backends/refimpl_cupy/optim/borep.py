"""BO-REP's update rules on CuPy: fused elementwise kernels and one reduction for ‖m'‖.

Mirrors ``refimpl/optim/borep.py`` in the same operation order. The linear-system step,
the hypergradient and the two halves of the normalized momentum step (m', then x') are
``cupy.fuse`` kernels; ‖m'‖ is computed in float64 scaled by max|m'ᵢ| (two reductions:
the squares can neither overflow nor underflow), read back as a scalar because the step
length s = η/(‖m'‖ + ε) is formed and rounded once on the host, as the reference forms it.
On the host the same code runs as plain NumPy (fusion off), which checks its array logic without a GPU.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def linear_system_step(z, hvp_yy, grad_y_f, nu):
        return z - nu * (hvp_yy - grad_y_f)

    @fuse
    def difference(a, b):
        return a - b

    @fuse
    def momentum_update(hypergradient, momentum, beta, one_minus_beta):
        return beta * momentum + one_minus_beta * hypergradient

    @fuse
    def scaled_step(params, new_momentum, step):
        return params - step * new_momentum

    return SimpleNamespace(
        linear_system_step=linear_system_step,
        difference=difference,
        momentum_update=momentum_update,
        scaled_step=scaled_step,
    )


kernels_for = kernel_set(_kernels)


def borep_linear_system_step_forward(z, hvp_yy, grad_y_f, *, nu):
    return kernels_for(z).linear_system_step(z, hvp_yy, grad_y_f, z.dtype.type(nu)), None


def borep_hypergradient_forward(grad_x_f, hvp_xy):
    return kernels_for(grad_x_f).difference(grad_x_f, hvp_xy), None


def _scaled_norm(xp, values):
    """‖v‖₂ in float64, scaled by max|vᵢ| as the reference computes it (no overflow, no underflow)."""
    if values.size == 0:
        return 0.0
    v = values.astype(np.float64).ravel()
    largest = float(xp.max(xp.abs(v)))
    if largest == 0.0 or not np.isfinite(largest):
        return largest
    scaled = v / largest
    return largest * float(xp.sqrt(xp.sum(scaled * scaled)))


def normalized_momentum_step_forward(params, hypergradient, momentum, *, lr, beta=0.9, eps=1e-10):
    xp = xp_of(params)
    dtype = params.dtype.type
    kernels = kernels_for(params)
    new_momentum = kernels.momentum_update(hypergradient, momentum, dtype(beta), dtype(1 - beta))
    denominator = _scaled_norm(xp, new_momentum) + eps
    step = lr / denominator if denominator > 0 else 0.0
    return (kernels.scaled_step(params, new_momentum, dtype(step)), new_momentum), None


IMPLS = {
    "borep_linear_system_step": Impl(borep_linear_system_step_forward),
    "borep_hypergradient": Impl(borep_hypergradient_forward),
    "normalized_momentum_step": Impl(normalized_momentum_step_forward),
}
