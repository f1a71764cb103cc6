"""Composable sparse fine-tunings: a Numba kernel.

Mirrors ``refimpl/merging/sparse_ft.py``: one pass over the flattened parameter, parallel
over elements, adding the S differences of an element (one row of the (n, S) stack) to
θ₀ one after the other in the input dtype, the reference's order.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@parallel_kernel()
def _compose(theta0, phis, theta):
    n, count = phis.shape
    for j in prange(n):
        total = theta0[j]
        for s in range(count):
            total = total + phis[j, s]  # in the dtype, s = 1, 2, … as the reference
        theta[j] = total


def sparse_ft_compose_forward(theta0, phis):
    flat0 = np.ascontiguousarray(theta0).reshape(-1)
    rows = np.ascontiguousarray(phis).reshape(-1, phis.shape[-1])
    theta = np.empty(flat0.shape, dtype=theta0.dtype)
    _compose(flat0, rows, theta)
    return theta.reshape(theta0.shape), None


IMPLS = {"sparse_ft_compose": Impl(sparse_ft_compose_forward)}
