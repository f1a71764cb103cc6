"""CETT: one Numba pass per token, parallel over tokens.

Mirrors ``refimpl/quantization_sparsity/sparsing_law.py``. The column norms ‖w_i‖ are taken
once (float64); one kernel compares the contribution norms ``|h_i|·‖w_i‖`` with ε and writes
h and its pruned part in float64, NumPy's BLAS forms the dense output y and the pruned part
(two float64 products), and a second kernel takes their row norms and the ratio. The threshold search
and the PPL-p% bisection stay reference-only.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@parallel_kernel(fastmath={"reassoc"})
def _masked_rows(h, column_norms, epsilon, inclusive, h64, pruned_h, sparsity):
    neurons = h.shape[1]
    for t in prange(h.shape[0]):
        count = 0
        for i in range(neurons):
            activation = np.float64(h[t, i])
            norm = abs(activation) * column_norms[i]
            pruned = norm <= epsilon if inclusive else norm < epsilon
            h64[t, i] = activation
            pruned_h[t, i] = activation if pruned else 0.0
            count += pruned
        sparsity[t] = count / neurons


@parallel_kernel(fastmath={"reassoc"})
def _ratio_rows(y, partial, values):
    for t in prange(y.shape[0]):
        norm_y = 0.0
        norm_partial = 0.0
        for d in range(y.shape[1]):
            norm_y += y[t, d] * y[t, d]
            norm_partial += partial[t, d] * partial[t, d]
        values[t] = math.sqrt(norm_partial) / math.sqrt(norm_y) if norm_y > 0.0 else 0.0


def cett_forward(h, w_down, *, epsilon, inclusive=False):
    w64 = np.asarray(w_down, dtype=np.float64)
    column_norms = np.sqrt(np.einsum("di,di->i", w64, w64))
    h = np.ascontiguousarray(h)
    h64 = np.empty(h.shape)
    pruned_h = np.empty(h.shape)
    sparsity = np.empty(h.shape[0])
    _masked_rows(h, column_norms, float(epsilon), bool(inclusive), h64, pruned_h, sparsity)
    y = np.dot(h64, w64.T)  # the dense output and the pruned part: float64 BLAS products
    partial = np.dot(pruned_h, w64.T)
    values = np.empty(h.shape[0])
    _ratio_rows(y, partial, values)
    return (values.astype(h.dtype), sparsity.astype(h.dtype)), None


IMPLS = {"cett": Impl(cett_forward)}
