"""PiSSA initialization: LAPACK SVD and the factor construction in one Numba function.

Mirrors ``refimpl/adapters/pissa.py``, sign rule included: the largest-magnitude entry of
each kept left singular vector is made positive (the first such entry on a tie), flipping
the matching right vector with it. ``np.linalg.svd`` inside ``@njit`` calls LAPACK's
``gesdd`` (through SciPy) in the input dtype, like the reference. The thin SVD dominates the
cost; the sign flip, the ``√(S_r/s)`` scaling of both factors and ``W_res = W − s·B A``
follow in the same compiled function without intermediate Python arrays.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from refimpl.authoring import Impl


@njit(cache=True)
def _pissa(W, rank, scale):
    V, S, Uh = np.linalg.svd(W, full_matrices=False)
    out_features, in_features = W.shape
    A = np.empty((rank, in_features), dtype=W.dtype)
    B = np.empty((out_features, rank), dtype=W.dtype)
    for i in range(rank):
        # the sign rule: the largest |V[o, i]| (first on ties) becomes positive
        pivot = 0
        for o in range(1, out_features):
            if abs(V[o, i]) > abs(V[pivot, i]):
                pivot = o
        sign = 1.0 if V[pivot, i] > 0 else -1.0
        root = np.sqrt(S[i] / scale)  # √S'_i, S'_i = S_i/s
        signed_root = sign * root
        for o in range(out_features):
            B[o, i] = V[o, i] * signed_root
        for j in range(in_features):
            A[i, j] = Uh[i, j] * signed_root
    principal = np.dot(B, A)
    W_res = np.empty_like(W)
    for o in range(out_features):
        for j in range(in_features):
            W_res[o, j] = W[o, j] - scale * principal[o, j]
    return A, B, W_res


def pissa_init_forward(W, r, *, scale=1.0):
    W = np.ascontiguousarray(W)
    # s in the dtype of W, so float32 input stays float32 throughout (the reference's
    # Python float s is rounded to float32 by NumPy's arithmetic the same way)
    A, B, W_res = _pissa(W, int(r), W.dtype.type(scale))
    return (A, B, W_res), None


IMPLS = {"pissa_init": Impl(pissa_init_forward)}
