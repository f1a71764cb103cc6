"""Data Diet scores (EL2N, last-layer GraNd, margin): fused Numba kernels, parallel over examples.

Mirrors ``refimpl/data_selection/data_diet.py``. One example of one run is a row of K logits;
two passes give the row max ``m`` and the runner-up logit ``m_o = max_{k≠y} z_k``, then the
label's ``w_y = exp(z_y − m)``, the other classes' ``W = Σ_{k≠y} w_k``, their largest
``w_max = exp(m_o − m)`` and the scaled sum of squares ``Σ (w_k/w_max)²`` (the squares are of
numbers in (0, 1] with one of them 1: nothing underflows); ``s = W + w_y``. Then

    ‖e‖₁ = 2W/s,   ‖e‖₂ = (w_max/s)·sqrt((W/w_max)² + Σ (w_k/w_max)²)

since ``e_y = −W/s`` and ``e_k = w_k/s`` elsewhere (no 1 − p_y cancellation). The exponentials
are taken in the dtype of z (as the reference's), every sum and row scalar is float64; the
scores are averaged over the runs in a fixed order.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@njit(cache=True, inline="always")
def _row_statistics(z_row, label):
    """``(m, s, w_y, W, w_max, Σ (w_k/w_max)²)`` of one row of logits (see the module docstring).

    With ``m_o = max_{k≠y} z_k``: ``w_max = exp(m_o − m)`` and ``w_k/w_max = exp(z_k − m_o)``, so one
    exp per entry and no division; the loops skip the label instead of testing every entry.
    """
    classes = z_row.shape[0]
    z_label = z_row[label]
    if classes == 1:  # no other class: p = 1, e = 0
        return z_label, 1.0, 1.0, 0.0, 0.0, 0.0
    # the exponents stay in the dtype of z (float32 exp for float32 logits); the sums are float64
    m_other = z_row[1] if label == 0 else z_row[0]
    for k in range(label):
        m_other = max(m_other, z_row[k])
    for k in range(label + 1, classes):
        m_other = max(m_other, z_row[k])
    m = max(m_other, z_label)  # the row max
    largest = math.exp(m_other - m)
    w_label = math.exp(z_label - m)
    scaled_sum = 0.0
    scaled_squares = 0.0
    for k in range(label):
        v = math.exp(z_row[k] - m_other)  # ≤ 1, = 1 at the runner-up
        scaled_sum += v
        scaled_squares += v * v
    for k in range(label + 1, classes):
        v = math.exp(z_row[k] - m_other)
        scaled_sum += v
        scaled_squares += v * v
    others = largest * scaled_sum
    return m, others + w_label, w_label, others, largest, scaled_squares


@njit(cache=True, inline="always")
def _error_norm(s, others, largest, ssq, order):
    if order == 1:
        return 2.0 * others / s
    if largest == 0.0:
        return 0.0
    ratio = others / largest
    return (largest / s) * math.sqrt(ratio * ratio + ssq)


@parallel_kernel()
def _el2n_rows(z, y, order, scores, maxima, sums, others_sum, norms, squares):
    runs, n = z.shape[0], z.shape[1]
    for i in prange(n):
        total = 0.0
        for r in range(runs):
            m, s, _, others, largest, ssq = _row_statistics(z[r, i], y[i])
            norm = _error_norm(s, others, largest, ssq, order)
            maxima[r, i] = m
            sums[r, i] = s
            others_sum[r, i] = others
            norms[r, i] = norm
            squares[r, i] = (largest / s) * (largest / s) * ssq  # Σ_{k≠y} p_k²
            total += norm
        scores[i] = total / runs


@parallel_kernel()
def _el2n_backward_rows(z, y, order, maxima, sums, others_sum, norms, squares, weight, g_z):
    runs, n, classes = z.shape
    for i in prange(n):
        label = y[i]
        w = weight[i] / runs
        for r in range(runs):
            m, s, norm = maxima[r, i], sums[r, i], norms[r, i]
            rest = others_sum[r, i] / s  # Σ_{k≠y} p_k = −e_y
            p_label = math.exp(z[r, i, label] - m) / s
            if order == 2:
                if norm == 0.0:
                    for k in range(classes):
                        g_z[r, i, k] = 0.0
                    continue
                inverse = 1.0 / norm
                inner = (squares[r, i] - p_label * rest) * inverse  # ⟨e/‖e‖, p⟩
                for k in range(classes):
                    p = math.exp(z[r, i, k] - m) / s
                    u = -rest * inverse if k == label else p * inverse
                    g_z[r, i, k] = w * p * (u - inner)
            else:
                label_sign = -1.0 if rest > 0.0 else 0.0
                inner = rest + label_sign * p_label  # ⟨sign(e), p⟩
                for k in range(classes):
                    p = math.exp(z[r, i, k] - m) / s
                    if k == label:
                        u = label_sign
                    else:
                        u = 1.0 if p > 0.0 else 0.0
                    g_z[r, i, k] = w * p * (u - inner)


def el2n_score_forward(z, y, *, ord=2):
    work = np.ascontiguousarray(z)
    labels = np.ascontiguousarray(y, dtype=np.int64)
    runs, n = work.shape[0], work.shape[1]
    scores = np.empty(n, dtype=np.float64)
    maxima = np.empty((runs, n), dtype=z.dtype)  # exponents in the dtype of z, as in the forward
    sums, others, norms, squares = (np.empty((runs, n), dtype=np.float64) for _ in range(4))
    _el2n_rows(work, labels, int(ord), scores, maxima, sums, others, norms, squares)
    residuals = (work, labels, int(ord), maxima, sums, others, norms, squares)
    return scores.astype(z.dtype), residuals


def el2n_score_backward(residuals, g_scores):
    work, labels, order, maxima, sums, others, norms, squares = residuals
    weight = np.ascontiguousarray(np.asarray(g_scores, dtype=np.float64))
    g_z = np.empty(work.shape, dtype=work.dtype)
    _el2n_backward_rows(work, labels, order, maxima, sums, others, norms, squares, weight, g_z)
    return (g_z,)


@njit(cache=True, inline="always")
def _feature_norm(h_row):
    """‖h‖₂ with the running rescale (no overflow of ‖h‖², no underflow)."""
    scale = 0.0
    ssq = 0.0
    for k in range(h_row.shape[0]):
        a = abs(h_row[k])
        if a > scale:
            ssq = 1.0 + ssq * (scale / a) * (scale / a)
            scale = a
        elif a > 0.0:
            ssq += (a / scale) * (a / scale)
    return scale * math.sqrt(ssq)


@parallel_kernel()
def _grand_rows(z, y, h, bias, scores):
    runs, n = z.shape[0], z.shape[1]
    for i in prange(n):
        total = 0.0
        for r in range(runs):
            _, s, _, others, largest, ssq = _row_statistics(z[r, i], y[i])
            feature = _feature_norm(h[r, i])
            if bias:
                feature = math.hypot(feature, 1.0)
            total += _error_norm(s, others, largest, ssq, 2) * feature
        scores[i] = total / runs


def grand_score_last_layer_forward(z, y, h, *, bias=True):
    scores = np.empty(z.shape[1], dtype=np.float64)
    _grand_rows(
        np.ascontiguousarray(z),
        np.ascontiguousarray(y, dtype=np.int64),
        np.ascontiguousarray(h),
        bool(bias),
        scores,
    )
    return scores.astype(z.dtype), None


@parallel_kernel()
def _margin_rows(z, y, use_max, scores):
    runs, n, classes = z.shape
    for i in prange(n):
        total = 0.0
        for r in range(runs):
            _, s, w_label, others, largest, _ = _row_statistics(z[r, i], y[i])
            if use_max:
                total += (largest - w_label) / s
            else:
                total += (others - (classes - 1) * w_label) / s
        scores[i] = total / runs


def margin_score_forward(z, y, *, kind="max"):
    scores = np.empty(z.shape[1], dtype=np.float64)
    _margin_rows(np.ascontiguousarray(z), np.ascontiguousarray(y, dtype=np.int64), kind == "max", scores)
    return scores.astype(z.dtype), None


IMPLS = {
    "el2n_score": Impl(el2n_score_forward, el2n_score_backward),
    "grand_score_last_layer": Impl(grand_score_last_layer_forward),
    "margin_score": Impl(margin_score_forward),
}
