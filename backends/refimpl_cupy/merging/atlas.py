"""aTLAS on CuPy: the task vectors added with one fused multiply-add each, λ̄ as one matrix-vector product.

Mirrors ``refimpl/merging/atlas.py``: ``Σ_t λ_t τ_t`` accumulated in the input dtype in the
reference's order (the learned soup's ``weighted_sum``), then θ₀ added; the backward
``λ̄ = θ̄ᵀ·[τ_1 … τ_T]`` over the flattened block. Everything stays on the device.
"""

from __future__ import annotations

from refimpl.authoring import Impl

from .._fuse import xp_of
from .model_soups import weighted_sum


def atlas_composition_forward(theta0, task_vectors, lam):
    xp = xp_of(theta0)
    theta = weighted_sum(task_vectors, lam) + theta0  # Σ_t first, then θ₀
    return xp.asarray(theta, dtype=theta0.dtype), (task_vectors,)


def atlas_composition_backward(residuals, g_theta):
    (task_vectors,) = residuals
    count = task_vectors.shape[-1]
    return (g_theta.reshape(-1) @ task_vectors.reshape(-1, count),)  # λ̄_t = ⟨θ̄, τ_t⟩


IMPLS = {"atlas_composition": Impl(atlas_composition_forward, atlas_composition_backward)}
