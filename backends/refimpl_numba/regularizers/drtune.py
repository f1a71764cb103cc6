"""DR-Tune's distribution regularization: NumPy BLAS for the head, a fused Numba row kernel for
the cross-entropy.

Mirrors ``refimpl/regularizers/drtune.py``. The logits of the batch and of the calibrated queue
are written by two BLAS products (``np.dot``) into the two row blocks of one (B + N) × K buffer
(no concatenated copy of the features). One kernel, parallel over rows, adds the bias, takes the
max-shifted log-sum-exp (``_vmath.row_log_sum_exp``, float64 sums), the row's cross-entropy, and
writes ``p − e_ŷ`` (the label entry as ``−Σ_{k≠ŷ} p_k``: no cancellation at confident rows). The
backward scales it by ``L̄/M`` and forms ``Gᵀ F`` (as ``(Fᵀ G)ᵀ``, block by block), ``Σ_i G_i`` and
``G_{1..B} W`` with BLAS.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel
from .._vmath import row_log_sum_exp, vexp


# the kernel runs between BLAS calls and does O(K) work per row: Numba's thread pool would then
# contend with OpenBLAS's threads for the cores (measured at 8192 × 1024, K = 100, 2 cores: 824 ms
# with the threaded build against 500 ms without), so threads only pay off for very large logits
@parallel_kernel(fastmath={"reassoc"}, min_elements=1 << 24)
def _cross_entropy_rows(logits, bias, labels, per_row, g_unit):
    classes = logits.shape[1]
    for i in prange(logits.shape[0]):
        for k in range(classes):
            logits[i, k] = logits[i, k] + bias[k]  # Z = F Wᵀ + b, in the input's precision
        largest, log_total = row_log_sum_exp(logits, i)
        lse = largest + log_total
        label = labels[i]
        per_row[i] = lse - np.float64(logits[i, label])
        for k in range(classes):
            g_unit[i, k] = vexp(logits.dtype.type(np.float64(logits[i, k]) - lse))  # p_k
        others = 0.0  # Σ_{k≠ŷ} p_k, in two branch-free runs around the label
        for k in range(label):
            others += g_unit[i, k]
        for k in range(label + 1, classes):
            others += g_unit[i, k]
        g_unit[i, label] = -others  # p_ŷ − 1 = −Σ_{k≠ŷ} p_k


def drtune_distribution_regularization_forward(
    features, labels, calibrated, queue_labels, head_weight, head_bias
):
    dtype = features.dtype
    batch, queue = features.shape[0], calibrated.shape[0]
    weight = np.ascontiguousarray(head_weight)
    queue_features = np.ascontiguousarray(calibrated, dtype=dtype)
    logits = np.empty((batch + queue, weight.shape[0]), dtype=dtype)
    np.dot(features, weight.T, out=logits[:batch])  # batch rows
    np.dot(queue_features, weight.T, out=logits[batch:])  # calibrated queue rows
    all_labels = np.concatenate([labels, queue_labels]).astype(np.int64, copy=False)
    per_row = np.empty(batch + queue, dtype=np.float64)
    g_unit = np.empty_like(logits)
    _cross_entropy_rows(logits, np.ascontiguousarray(head_bias, dtype=dtype), all_labels, per_row, g_unit)
    loss = np.asarray(per_row.sum() / (batch + queue), dtype=dtype)
    return loss, (features, queue_features, weight, g_unit)


def drtune_distribution_regularization_backward(residuals, g_loss):
    features, queue_features, weight, g_unit = residuals
    batch = features.shape[0]
    dtype = g_unit.dtype
    g_logits = g_unit * dtype.type(float(g_loss) / g_unit.shape[0])  # G = (L̄/M)(p − e_ŷ)
    # Gᵀ F block by block, formed as (Fᵀ G)ᵀ: OpenBLAS runs the (D × M)·(M × K) product with the
    # long M inner dimension several times faster than (K × M)·(M × D) at K ≪ D (measured 7x)
    g_weight = np.dot(features.T, g_logits[:batch])
    g_weight += np.dot(queue_features.T, g_logits[batch:])
    g_weight = np.ascontiguousarray(g_weight.T)
    g_bias = g_logits.sum(axis=0)
    g_features = np.dot(g_logits[:batch], weight)
    return (
        g_features.astype(dtype, copy=False),
        g_weight.astype(dtype, copy=False),
        g_bias.astype(dtype, copy=False),
    )


IMPLS = {
    "drtune_distribution_regularization": Impl(
        drtune_distribution_regularization_forward, drtune_distribution_regularization_backward
    )
}
