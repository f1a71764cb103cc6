"""ShrinkMatch's shrunk-class-space loss: fused Numba kernels, parallel over rows.

Mirrors ``refimpl/losses/shrink.py``. Per row: the top-1 class and the smallest p (a
certain row, or one whose last ``conf_{C−1} = q_0/(q_0 + min p)`` is below τ, stops there:
ω = 0), then a stable descending argsort of p (merge sort: ties keep the lowest class
first), the tail sums ``T_c`` from the smallest probability
up, the first ``c`` with ``q_0/(q_0 + T_c) ≥ τ``, and the cross-entropy of the top-1 class
over the kept classes S (row max of S subtracted, ``exp`` from ``_vmath``). Certain rows
and rows that never reach τ have ω = 0 and skip the rest. The backward recomputes
``σ_S(z)`` from the saved max and sum: ``z̄ = w ρ ω (σ_S(z) − e_top)``. Row scalars are
float64.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl, reduce_rows, row_weights

from .._jit import parallel_kernel
from .._vmath import vexp


@parallel_kernel(fastmath={"reassoc"})
def _shrink_rows(p, z, tau, ratio, top, kept, factor, certain, row_max, total, per_row):
    num_classes = p.shape[1]
    for i in prange(p.shape[0]):
        # the top-1 class (the first maximum: ties, lowest index) and the smallest probability
        first = 0
        q0 = np.float64(p[i, 0])
        smallest = q0
        for k in range(1, num_classes):
            v = np.float64(p[i, k])
            if v > q0:
                q0, first = v, k
            smallest = min(smallest, v)
        top[i] = first
        certain[i] = q0 >= tau
        for k in range(num_classes):
            kept[i, k] = 0
        factor[i], row_max[i], total[i], per_row[i] = 0.0, 0.0, 1.0, 0.0
        if q0 >= tau or num_classes < 3:
            continue  # certain (FixMatch's term), or no class to remove: ω = 0
        if q0 / (q0 + smallest) < tau:
            continue  # conf_{C−1} (T_{C−1} = the smallest p) < τ: never reached, ω = 0; no sort
        keys = np.empty(num_classes, dtype=np.float64)
        for k in range(num_classes):
            keys[k] = -np.float64(p[i, k])
        order = np.argsort(keys, kind="mergesort")  # stable: tied classes keep their index order
        # T_c = Σ_{r ≥ c} q_r, summed from the smallest up (as the reference's running sum)
        tail = np.empty(num_classes, dtype=np.float64)
        running = 0.0
        for r in range(num_classes - 1, -1, -1):
            running += np.float64(p[i, order[r]])
            tail[r] = running
        cut = -1
        for c in range(2, num_classes):
            if q0 / (q0 + tail[c]) >= tau:
                cut = c
                break
        if cut < 0:
            continue  # τ never reached: ω = 0
        kept[i, first] = 1
        for r in range(cut, num_classes):
            kept[i, order[r]] = 1
        m = np.float64(z[i, first])
        for r in range(cut, num_classes):
            m = max(m, np.float64(z[i, order[r]]))
        s = 0.0
        for k in range(num_classes):
            # min(·, 0): a removed class above m must not overflow before it is masked
            s += kept[i, k] * vexp(z.dtype.type(min(np.float64(z[i, k]) - m, 0.0)))
        factor[i] = ratio * q0  # ρ ω
        row_max[i] = m
        total[i] = s
        per_row[i] = factor[i] * (math.log(s) - (np.float64(z[i, first]) - m))


@parallel_kernel(fastmath={"reassoc"})
def _shrink_backward_rows(z, top, kept, factor, row_max, total, g_z):
    for i in prange(z.shape[0]):
        f = factor[i]
        if f == 0.0:
            for k in range(z.shape[1]):
                g_z[i, k] = 0.0
            continue
        m = row_max[i]
        scale = f / total[i]
        for k in range(z.shape[1]):
            g_z[i, k] = scale * kept[i, k] * vexp(z.dtype.type(min(np.float64(z[i, k]) - m, 0.0)))
        g_z[i, top[i]] -= f


def shrink_loss_forward(p, z, *, certain_ratio, threshold=0.95, momentum=0.999, reduction="mean"):
    probabilities = np.ascontiguousarray(p)
    logits = np.ascontiguousarray(z)
    batch, num_classes = logits.shape
    tau = float(p.dtype.type(threshold))  # τ rounded to p's dtype, as the reference
    top = np.empty(batch, dtype=np.int64)
    kept = np.empty((batch, num_classes), dtype=np.uint8)
    certain = np.empty(batch, dtype=np.uint8)
    factor, row_max, total, per_row = (np.empty(batch, dtype=np.float64) for _ in range(4))
    _shrink_rows(
        probabilities, logits, tau, float(certain_ratio), top, kept, factor, certain, row_max, total, per_row
    )
    fraction = float(certain.mean()) if batch else 0.0
    ratio = momentum * certain_ratio + (1.0 - momentum) * fraction if batch else certain_ratio
    loss = reduce_rows(per_row, reduction, z.dtype)
    return (loss, np.asarray(ratio, dtype=z.dtype)), (logits, top, kept, factor, row_max, total, reduction)


def shrink_loss_backward(residuals, cotangents):
    logits, top, kept, factor, row_max, total, reduction = residuals
    g_loss, _ = cotangents  # ρ' does not depend on z
    batch = logits.shape[0]
    weight = row_weights(np.asarray(g_loss, dtype=np.float64), reduction, batch)
    g_z = np.empty(logits.shape, dtype=logits.dtype)
    _shrink_backward_rows(logits, top, kept, np.ascontiguousarray(weight * factor), row_max, total, g_z)
    return (g_z,)


IMPLS = {"shrink_loss": Impl(shrink_loss_forward, shrink_loss_backward)}
