"""Dataset Quantization's GraphCut bins: the greedy in one Numba kernel, candidates in parallel.

Mirrors ``refimpl/data_selection/dataset_quantization.py`` operation for operation: unit rows
``u = f/‖f‖`` (squared norm summed over the features in order), per bin the pool sum
``m = Σ_{j∈R} u_j`` in ascending order, and per step the gain of every candidate

    gain(x | S) = (λ|R|/2 − |S|) + ⟨λm/2 − t, u_x⟩,   t = Σ_{s∈S} u_s

with the dot product over the features in order, so the gains (and the picks, ties to the
lowest index) equal the reference's bit for bit. The candidates of one step are independent:
``prange`` over them; the argmax is a sequential scan (strict ``>``: the lowest index wins).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@parallel_kernel()
def _unit_rows(f, u):
    count, features = f.shape
    for i in prange(count):
        squared = 0.0
        for k in range(features):
            value = np.float64(f[i, k])
            squared += value * value
        norm = math.sqrt(squared)
        for k in range(features):
            u[i, k] = np.float64(f[i, k]) / norm


@parallel_kernel()
def _step_gains(u, pool, taken, w, offset, gain):
    for a in prange(pool.shape[0]):
        if taken[a]:
            gain[a] = -np.inf
            continue
        x = pool[a]
        dot = 0.0
        for k in range(u.shape[1]):
            dot += u[x, k] * w[k]
        gain[a] = offset + dot


def graphcut_bins_forward(f, *, k=10, lam=1.0):
    count, features = f.shape
    u = np.empty((count, features), dtype=np.float64)
    _unit_rows(np.ascontiguousarray(f), u)
    budget = count // k
    half_lam = 0.5 * float(lam)
    available = np.ones(count, dtype=np.bool_)
    bins = np.empty((k, budget), dtype=np.int64)
    gains = np.empty((k, budget), dtype=np.float64)
    for b in range(k):
        pool = np.flatnonzero(available).astype(np.int64)
        m = np.zeros(features)
        for j in pool:  # Σ_{j∈R} u_j in ascending order
            m += u[j]
        t = np.zeros(features)
        taken = np.zeros(pool.shape[0], dtype=np.bool_)
        gain = np.empty(pool.shape[0])
        for step in range(budget):
            w = half_lam * m - t
            _step_gains(u, pool, taken, w, half_lam * pool.shape[0] - step, gain)
            x = int(np.argmax(gain))  # ties: the lowest index
            taken[x] = True
            t += u[pool[x]]
            bins[b, step] = pool[x]
            gains[b, step] = gain[x]
        available[bins[b]] = False
    return (bins, gains.astype(f.dtype)), None


IMPLS = {"graphcut_bins": Impl(graphcut_bins_forward)}
