"""Nested dropout: Numba kernels, parallel over rows.

Mirrors ``refimpl/layers/nested_dropout.py``: each row copies its first k features and
writes zeros after them (forward), and the same for the cotangent (backward); no mask array
is formed. ``nested_dropout_prefix_probs`` (a one-off construction) stays reference-only.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@parallel_kernel()
def _prefix_rows(h, k, out):
    rows, d = h.shape
    zero = h.dtype.type(0)
    for i in prange(rows):
        for j in range(k):
            out[i, j] = h[i, j]
        for j in range(k, d):
            out[i, j] = zero


def _keep_prefix(h, k):
    rows = np.ascontiguousarray(h).reshape(-1, h.shape[-1])
    out = np.empty_like(rows)
    _prefix_rows(rows, k, out)
    return out.reshape(h.shape)


def nested_dropout_forward(h, *, k):
    return _keep_prefix(h, int(k)), int(k)


def nested_dropout_backward(k, g_h_masked):
    return (_keep_prefix(g_h_masked, k),)


IMPLS = {"nested_dropout": Impl(nested_dropout_forward, nested_dropout_backward)}
