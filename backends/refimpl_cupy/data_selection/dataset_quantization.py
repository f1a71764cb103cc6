"""Dataset Quantization's GraphCut bins on CuPy: every step's candidate gains as array operations.

Mirrors ``refimpl/data_selection/dataset_quantization.py``: unit rows, the pool sum ``m``, and per
step ``gain(x | S) = (λ|R|/2 − |S|) + ⟨λm/2 − t, u_x⟩`` for all candidates at once. The dot
products are accumulated over the features in order with separate multiply and add kernels
(no FMA contraction, no reduction tree), so the gains and the picks (ties to the lowest index)
equal the reference's; the offset and the mask of taken candidates are one fused kernel.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def masked_gain(dots, offset, taken):
        return xp.where(taken, -xp.inf, dots + offset)

    return SimpleNamespace(masked_gain=masked_gain)


kernels_for = kernel_set(_kernels)


def _unit_rows(f):
    xp = xp_of(f)
    points = f.astype(xp.float64)
    squared = xp.zeros(points.shape[0])
    for k in range(points.shape[1]):
        column = points[:, k]
        squared += column * column
    return points / xp.sqrt(squared)[:, None]


def graphcut_bins_forward(f, *, k=10, lam=1.0):
    xp = xp_of(f)
    kernels = kernels_for(f)
    u = _unit_rows(f)
    count, features = f.shape
    budget = count // k
    half_lam = 0.5 * float(lam)
    available = np.ones(count, dtype=bool)
    bins = np.empty((k, budget), dtype=np.int64)
    gains = xp.empty((k, budget))
    for b in range(k):
        pool = np.flatnonzero(available)
        pool_u = u[xp.asarray(pool)]
        m = xp.zeros(features)
        for a in range(pool.shape[0]):  # Σ_{j∈R} u_j in ascending order
            m += pool_u[a]
        t = xp.zeros(features)
        taken = xp.zeros(pool.shape[0], dtype=bool)
        for step in range(budget):
            w = half_lam * m - t
            dots = xp.zeros(pool.shape[0])
            for d in range(features):
                dots += pool_u[:, d] * w[d]
            gain = kernels.masked_gain(dots, half_lam * pool.shape[0] - step, taken)
            x = int(xp.argmax(gain))  # ties: the lowest index
            taken[x] = True
            t += pool_u[x]
            bins[b, step] = pool[x]
            gains[b, step] = gain[x]
        available[bins[b]] = False
    return (xp.asarray(bins), gains.astype(f.dtype)), None


IMPLS = {"graphcut_bins": Impl(graphcut_bins_forward)}
