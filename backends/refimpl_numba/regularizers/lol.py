"""LoL: Numba kernels for the comparative hinge and the passage-ranking loss.

Mirrors ``refimpl/regularizers/lol.py``. The comparative term loops over the n(n − 1)/2
pairs of each row (n is small: 2 or 3 in the paper), parallel over rows; the backward
recomputes each pair's activity from L instead of storing the (Q, n, n) mask. Sums
accumulate in float64 and are rounded once to the input dtype.

The passage-ranking loss takes ``S = q Cᵀ`` and the cotangent products from NumPy's BLAS
(``@``), and fuses the rest per row: the label (lowest-scoring positive, ties to the lowest
index), the −∞ masking of the other positives, the max-shifted log-sum-exp and, in the
backward, ``S̄ = ḡ·(π − e_label)``.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl
from refimpl.regularizers.lol import PADDING

from .._jit import parallel_kernel


@parallel_kernel()
def _hinge_rows(L, margin, row_sums):
    n_queries, n = L.shape
    for q in prange(n_queries):
        total = 0.0
        for i in range(n):
            for j in range(i + 1, n):
                d = (L[q, i] - L[q, j]) + margin
                total += max(d, 0.0)
        row_sums[q] = total


@parallel_kernel()
def _hinge_rows_backward(L, margin, tie_active, scale, g_L):
    n_queries, n = L.shape
    for q in prange(n_queries):
        for k in range(n):
            g_L[q, k] = 0
        for i in range(n):
            for j in range(i + 1, n):
                d = (L[q, i] - L[q, j]) + margin
                if d > 0 or (tie_active and d == 0):
                    g_L[q, i] += scale
                    g_L[q, j] -= scale


def lol_comparative_regularization_forward(L, *, margin=0.0, tie_active=False):
    n_queries, n = L.shape
    pairs = n_queries * n * (n - 1) // 2
    L = np.ascontiguousarray(L)
    if pairs == 0:
        return np.zeros((), dtype=L.dtype), (L, margin, tie_active, 1)
    row_sums = np.empty(n_queries, dtype=np.float64)
    _hinge_rows(L, L.dtype.type(margin), row_sums)
    return np.asarray(row_sums.sum() / pairs, dtype=L.dtype), (L, margin, tie_active, pairs)


def lol_comparative_regularization_backward(residuals, g_lol):
    L, margin, tie_active, pairs = residuals
    g_L = np.empty_like(L)
    if L.shape[1] > 1:
        scale = L.dtype.type(g_lol / L.dtype.type(pairs))
        _hinge_rows_backward(L, L.dtype.type(margin), tie_active, scale, g_L)
    else:
        g_L[:] = 0
    return (g_L,)


@parallel_kernel()
def _passage_rows(scores, positives, pr, probabilities, labels):
    n_queries, n_passages = scores.shape
    slots = positives.shape[1]
    for q in prange(n_queries):
        label = -1
        for k in range(slots):  # the lowest-scoring positive, ties to the lowest index
            p = positives[q, k]
            if p == PADDING:
                continue
            if (
                label < 0
                or scores[q, p] < scores[q, label]
                or (scores[q, p] == scores[q, label] and p < label)
            ):
                label = p
        for p in range(n_passages):
            probabilities[q, p] = 1.0  # 1 = kept, 0 = masked (the other positives)
        for k in range(slots):
            p = positives[q, k]
            if p != PADDING and p != label:
                probabilities[q, p] = 0.0
        row_max = scores[q, label]
        for p in range(n_passages):
            if probabilities[q, p] != 0 and scores[q, p] > row_max:
                row_max = scores[q, p]
        total = 0.0
        for p in range(n_passages):
            if probabilities[q, p] != 0:
                e = np.exp(scores[q, p] - row_max)  # subtract the row max: exp cannot overflow
                probabilities[q, p] = e
                total += e
        for p in range(n_passages):
            probabilities[q, p] = probabilities[q, p] / total
        pr[q] = np.log(total) + row_max - scores[q, label]
        labels[q] = label


@parallel_kernel()
def _passage_rows_backward(probabilities, labels, g_pr, g_scores):
    n_queries, n_passages = probabilities.shape
    for q in prange(n_queries):
        for p in range(n_passages):
            g_scores[q, p] = g_pr[q] * probabilities[q, p]
        g_scores[q, labels[q]] -= g_pr[q]


def lol_passage_ranking_loss_forward(queries, corpus, positives):
    scores = np.ascontiguousarray(queries @ corpus.T)
    n_queries = scores.shape[0]
    pr = np.empty(n_queries, dtype=np.float64)
    probabilities = np.empty(scores.shape, dtype=np.float64)
    labels = np.empty(n_queries, dtype=np.int64)
    _passage_rows(scores, np.ascontiguousarray(positives), pr, probabilities, labels)
    return pr.astype(queries.dtype), (queries, corpus, probabilities, labels)


def lol_passage_ranking_loss_backward(residuals, g_pr):
    queries, corpus, probabilities, labels = residuals
    g_scores = np.empty(probabilities.shape, dtype=queries.dtype)
    _passage_rows_backward(probabilities, labels, np.ascontiguousarray(g_pr), g_scores)
    return g_scores @ corpus, g_scores.T @ queries


IMPLS = {
    "lol_comparative_regularization": Impl(
        lol_comparative_regularization_forward, lol_comparative_regularization_backward
    ),
    "lol_passage_ranking_loss": Impl(lol_passage_ranking_loss_forward, lol_passage_ranking_loss_backward),
}
