"""MGDA min-norm direction: the Gram matrix and the direction through NumPy's BLAS.

Mirrors ``refimpl/optim/min_norm.py``. The work is two matrix products (``K = GGᵀ`` and
``d = −αᵀG``, through ``np.dot``); the Frank–Wolfe loop runs on the M × M Gram matrix and is
the reference's own ``solve_simplex`` (M is the number of objectives, a handful).
"""

from __future__ import annotations

import numpy as np

from refimpl.authoring import Impl
from refimpl.optim.min_norm import MAX_ITER, STOP_CRIT, solve_simplex


def min_norm_gradient_combination_forward(grads, *, max_iter=MAX_ITER, tol=STOP_CRIT):
    g64 = np.ascontiguousarray(grads, dtype=np.float64)
    alpha, iterations, gap = solve_simplex(np.dot(g64, g64.T), max_iter, tol)
    direction = -np.dot(alpha, g64)
    dtype = grads.dtype
    return (
        alpha.astype(dtype),
        direction.astype(dtype),
        np.asarray(iterations, np.int64),
        np.asarray(gap, dtype),
    ), None


IMPLS = {"min_norm_gradient_combination": Impl(min_norm_gradient_combination_forward)}
