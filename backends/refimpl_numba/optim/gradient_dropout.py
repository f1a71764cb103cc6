"""R-AMT gradient dropout: one fused Numba pass over g_a, g_b and U, parallel over flat blocks.

Mirrors ``refimpl/optim/gradient_dropout.py``: each element is read once and the result
written once (the NumPy expression makes ~8 passes). Arithmetic runs in the arrays' dtype in
the reference's order (``sign(g_a)·(g_a + g_b)/(|g_a| + |g_b| + ε)``, then ``(· + 1)/2``), no
``fastmath``, so float64 results are bit-identical to the reference.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel

EPS = 1e-8  # the official guard, as in the reference


@parallel_kernel()
def _gradient_dropout_flat(g_a, g_b, u, eps, drop_factor, out):
    zero = out.dtype.type(0)
    one = out.dtype.type(1)
    two = out.dtype.type(2)
    for i in prange(g_a.shape[0]):
        a = g_a[i]
        b = g_b[i]
        sign_a = one if a > zero else (-one if a < zero else zero)
        agreement = sign_a * (a + b) / (abs(a) + abs(b) + eps)
        keep_probability = (agreement + one) / two
        out[i] = (one if keep_probability > u[i] else drop_factor) * a


def gradient_dropout_combine_forward(g_a, g_b, u, *, lam):
    dtype = g_a.dtype.type
    flat = [np.ascontiguousarray(a).reshape(-1) for a in (g_a, g_b, u)]
    out = np.empty_like(flat[0])
    _gradient_dropout_flat(*flat, dtype(EPS), dtype(1 - lam), out)
    return out.reshape(g_a.shape), None


IMPLS = {"gradient_dropout_combine": Impl(gradient_dropout_combine_forward)}
