"""Weight matching: a Numba kernel for the interpolation between two models.

Mirrors ``refimpl/merging/weight_matching.py``. ``interpolate_params`` is one elementwise
pass, ``(1 − λ)·θ_A + λ·θ_B`` in the input dtype with both coefficients rounded once to it,
as the reference. The permutation search and its application stay in the reference (an
assignment solver and an exact re-indexing).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@parallel_kernel()
def _lerp(theta_a, theta_b, weight_a, weight_b, theta):
    for j in prange(theta.shape[0]):
        theta[j] = weight_a * theta_a[j] + weight_b * theta_b[j]


def interpolate_params_forward(theta_a, theta_b, *, lam=0.5):
    dtype = theta_a.dtype.type
    theta = np.empty(theta_a.size, dtype=theta_a.dtype)
    flat = lambda x: np.ascontiguousarray(x).reshape(-1)  # noqa: E731
    _lerp(flat(theta_a), flat(theta_b), dtype(1.0 - lam), dtype(lam), theta)
    return theta.reshape(theta_a.shape), None


IMPLS = {"interpolate_params": Impl(interpolate_params_forward)}
