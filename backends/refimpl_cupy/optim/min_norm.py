"""MGDA min-norm direction on CuPy: the two products on the device, the M × M solve on the host.

Mirrors ``refimpl/optim/min_norm.py``: ``K = GGᵀ`` with ``cupy.matmul`` in float64, K (M × M)
copied to the host for the reference's Frank–Wolfe ``solve_simplex``, then ``d = −αᵀG`` on
the device. On the host the same code runs as NumPy.
"""

from __future__ import annotations

import numpy as np

from refimpl.authoring import Impl
from refimpl.optim.min_norm import MAX_ITER, STOP_CRIT, solve_simplex

from .._fuse import xp_of


def min_norm_gradient_combination_forward(grads, *, max_iter=MAX_ITER, tol=STOP_CRIT):
    xp = xp_of(grads)
    g64 = grads.astype(xp.float64)
    gram = xp.matmul(g64, g64.T)
    alpha, iterations, gap = solve_simplex(np.asarray(gram.get() if xp is not np else gram), max_iter, tol)
    direction = -xp.matmul(xp.asarray(alpha), g64)
    dtype = grads.dtype
    return (
        xp.asarray(alpha.astype(dtype)),
        direction.astype(dtype),
        xp.asarray(iterations, xp.int64),
        xp.asarray(gap, dtype),
    ), None


IMPLS = {"min_norm_gradient_combination": Impl(min_norm_gradient_combination_forward)}
