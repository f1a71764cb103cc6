"""aTLAS: a Numba kernel for the blockwise task-vector composition.

Mirrors ``refimpl/merging/atlas.py``. The forward is one pass over the flattened block,
parallel over elements: ``Σ_t λ_t τ_{t,j}`` accumulated in the input dtype in the
reference's order (t = 1, 2, …), then θ₀ added. The backward ``λ̄_t = ⟨θ̄, τ_t⟩`` is the
learned soup's parallel float64 inner products (``column_dots``).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel
from .model_soups import column_dots


@parallel_kernel()
def _compose(theta0, taus, lam, theta):
    n, count = taus.shape
    for j in prange(n):
        combined = taus[j, 0] * lam[0]  # Σ_t first, in the input dtype
        for t in range(1, count):
            combined = combined + taus[j, t] * lam[t]
        theta[j] = combined + theta0[j]


def atlas_composition_forward(theta0, task_vectors, lam):
    count = task_vectors.shape[-1]
    taus = np.ascontiguousarray(task_vectors).reshape(-1, count)
    theta = np.empty(taus.shape[0], dtype=theta0.dtype)
    _compose(np.ascontiguousarray(theta0).reshape(-1), taus, np.ascontiguousarray(lam), theta)
    return theta.reshape(theta0.shape), (taus,)


def atlas_composition_backward(residuals, g_theta):
    (taus,) = residuals
    g_lam = column_dots(np.ascontiguousarray(g_theta).reshape(-1), taus)  # λ̄_t = ⟨θ̄, τ_t⟩
    return (g_lam.astype(taus.dtype),)


IMPLS = {"atlas_composition": Impl(atlas_composition_forward, atlas_composition_backward)}
