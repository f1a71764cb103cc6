"""Feat-Mix: Numba kernels, parallel over rows.

Mirrors ``refimpl/regularizers/feat_mix.py``. One pass per row forms the keep mask
``m_ij = 1[u_ij > λ_i]`` (compared in the input dtype, as the reference) and the label weight
``Λ_i = Σ_j I_j m_ij`` in float64; the mix and its gathered backward are MixUp's row kernels
with the per-entry mask as the weight.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel
from .mixup import mix_rows, mix_rows_backward


@parallel_kernel()
def _keep_mask_rows(u, lam, importances, keep, label_weight):
    for i in prange(u.shape[0]):
        total = 0.0
        for j in range(u.shape[1]):
            kept = 1.0 if u[i, j] > lam[i] else 0.0
            keep[i, j] = kept
            total += kept * np.float64(importances[j])
        label_weight[i] = total


def feat_mix_forward(x, perm, lam, u, importances):
    batch, features = u.shape
    keep = np.empty((batch, features), dtype=np.float64)
    label_weight = np.empty(batch, dtype=np.float64)
    _keep_mask_rows(np.ascontiguousarray(u), np.ascontiguousarray(lam), importances, keep, label_weight)
    partners = np.ascontiguousarray(perm, dtype=np.int64)
    x_mixed = mix_rows(x, keep, partners)
    return (x_mixed, label_weight.astype(x.dtype)), (keep, partners, x.dtype)


def feat_mix_backward(residuals, cotangents):
    keep, partners, dtype = residuals
    return (mix_rows_backward(keep, partners, np.asarray(cotangents[0], dtype=dtype)),)


IMPLS = {"feat_mix": Impl(feat_mix_forward, feat_mix_backward)}
