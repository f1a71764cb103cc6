"""Median of means and winsorized mean of per-example gradients: Numba, parallel over coordinates.

Mirrors ``refimpl/optim/robust_gradient.py``. Both kernels work on blocks of 256
coordinates so each example's row slice is read contiguously:

* median of means: group sums in float64 (rows in order), divided by the group sizes,
  then per coordinate an insertion sort of the K means (K is small) and the middle value,
  or the mean of the two middle values for even K (the reference's tie rule);
* winsorized: per coordinate the m values are sorted (``np.sort`` of a float64 copy), the
  clip bounds are the (c+1)-th smallest and largest, and the clipped values summed in
  float64, in row order.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel

BLOCK = 256


@parallel_kernel()
def _median_of_means(grads, groups, counts, out):
    m, p = grads.shape
    k = counts.shape[0]
    for block in prange((p + BLOCK - 1) // BLOCK):
        start = block * BLOCK
        stop = min(p, start + BLOCK)
        sums = np.zeros((k, stop - start))
        for i in range(m):
            g = groups[i]
            for j in range(start, stop):
                sums[g, j - start] += np.float64(grads[i, j])
        column = np.empty(k)
        for j in range(stop - start):
            for a in range(k):  # insertion sort of the K group means
                value = sums[a, j] / counts[a]
                b = a
                while b > 0 and column[b - 1] > value:
                    column[b] = column[b - 1]
                    b -= 1
                column[b] = value
            half = k // 2
            out[start + j] = column[half] if k % 2 == 1 else 0.5 * (column[half - 1] + column[half])


@parallel_kernel()
def _winsorized(grads, level, out):
    m, p = grads.shape
    for block in prange((p + BLOCK - 1) // BLOCK):
        start = block * BLOCK
        stop = min(p, start + BLOCK)
        values = np.empty((stop - start, m))
        for i in range(m):
            for j in range(start, stop):
                values[j - start, i] = np.float64(grads[i, j])
        for j in range(stop - start):
            ordered = np.sort(values[j])
            lower = ordered[level]
            upper = ordered[m - 1 - level]
            total = 0.0
            for i in range(m):
                total += min(max(values[j, i], lower), upper)
            out[start + j] = total / m


def median_of_means_gradient_forward(grads, groups):
    counts = np.bincount(groups.reshape(-1)).astype(np.float64)
    out = np.empty(grads.shape[1], dtype=grads.dtype)
    _median_of_means(np.ascontiguousarray(grads), groups.astype(np.int64), counts, out)
    return out, None


def winsorized_gradient_forward(grads, *, level):
    out = np.empty(grads.shape[1], dtype=grads.dtype)
    _winsorized(np.ascontiguousarray(grads), int(level), out)
    return out, None


IMPLS = {
    "median_of_means_gradient": Impl(median_of_means_gradient_forward),
    "winsorized_gradient": Impl(winsorized_gradient_forward),
}
