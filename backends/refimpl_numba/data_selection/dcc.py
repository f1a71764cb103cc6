"""DCC gradient matching: fused Numba kernels, parallel over the gradient rows.

Mirrors ``refimpl/data_selection/dcc.py``: one pass per row accumulates ``⟨a, b⟩``, ``‖a‖²``
and ``‖b‖²`` in float64 (every element widened with ``np.float64``); the distance is
``Σ_r (1 − dot_r/(‖a_r‖‖b_r‖ + ε))``. The backward is one pass per row,
``ḡ_b = ḡ[(dot‖a‖/(‖b‖den²))·b − a/den]`` (the first factor 0 where ‖b‖ = 0). DCC's class
means are accumulated in float64 in the same pass as the row terms, and its backward writes
each class's 1/C share directly.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@njit(cache=True, inline="always")
def _store_row_terms(r, products, squares_a, squares_b, eps, dot, norm_a, norm_b, denominator):
    """Row r's ⟨a, b⟩, ‖a‖, ‖b‖ and ‖a‖‖b‖ + ε from its float64 sums."""
    dot[r] = products
    norm_a[r] = math.sqrt(squares_a)
    norm_b[r] = math.sqrt(squares_b)
    denominator[r] = norm_a[r] * norm_b[r] + eps


@njit(cache=True, inline="always")
def _row_factors(r, g, dot, norm_a, norm_b, denominator):
    """Row r's cotangent is ``along_b·b + along_a·a``: (along_a, along_b)."""
    den = denominator[r]
    along_b = 0.0
    if norm_b[r] > 0:  # the zero subgradient of ‖b‖ at b = 0
        along_b = g * dot[r] * norm_a[r] / (norm_b[r] * den * den)
    return -g / den, along_b


@parallel_kernel(fastmath={"reassoc"})
def _row_terms(a, b, eps, dot, norm_a, norm_b, denominator):
    for r in prange(a.shape[0]):
        products = 0.0
        squares_a = 0.0
        squares_b = 0.0
        for k in range(a.shape[1]):
            x = np.float64(a[r, k])
            y = np.float64(b[r, k])
            products += x * y
            squares_a += x * x
            squares_b += y * y
        _store_row_terms(r, products, squares_a, squares_b, eps, dot, norm_a, norm_b, denominator)


@parallel_kernel(fastmath={"reassoc"})
def _rows_backward(a, b, g, dot, norm_a, norm_b, denominator, g_b):
    for r in prange(a.shape[0]):
        along_a, along_b = _row_factors(r, g, dot, norm_a, norm_b, denominator)
        for k in range(a.shape[1]):
            g_b[r, k] = along_b * np.float64(b[r, k]) + along_a * np.float64(a[r, k])


@parallel_kernel(fastmath={"reassoc"})
def _class_mean_row_terms(g_real, g_syn, eps, mean_real, mean_syn, dot, norm_a, norm_b, denominator):
    """DCC: the class means of each row (accumulated in float64 in the mean arrays) and the
    row terms of the means, one pass over the per-class gradients."""
    num_classes = g_real.shape[0]
    width = g_real.shape[2]
    for r in prange(g_real.shape[1]):
        for k in range(width):
            mean_real[r, k] = 0.0
            mean_syn[r, k] = 0.0
        for c in range(num_classes):
            for k in range(width):
                mean_real[r, k] += np.float64(g_real[c, r, k])
                mean_syn[r, k] += np.float64(g_syn[c, r, k])
        products = 0.0
        squares_a = 0.0
        squares_b = 0.0
        for k in range(width):
            x = mean_real[r, k] / num_classes
            y = mean_syn[r, k] / num_classes
            mean_real[r, k] = x
            mean_syn[r, k] = y
            products += x * y
            squares_a += x * x
            squares_b += y * y
        _store_row_terms(r, products, squares_a, squares_b, eps, dot, norm_a, norm_b, denominator)


@parallel_kernel(fastmath={"reassoc"})
def _class_share_backward(a, b, g, dot, norm_a, norm_b, denominator, g_syn):
    """DCC: the mean's row cotangent, divided by C (g carries the 1/C), written to every class."""
    for r in prange(a.shape[0]):
        along_a, along_b = _row_factors(r, g, dot, norm_a, norm_b, denominator)
        for c in range(g_syn.shape[0]):
            for k in range(a.shape[1]):
                g_syn[c, r, k] = along_b * b[r, k] + along_a * a[r, k]


def _distance(a, b, eps, dtype):
    rows = a.shape[0]
    dot, norm_a, norm_b, denominator = (np.empty(rows, dtype=np.float64) for _ in range(4))
    _row_terms(a, b, float(eps), dot, norm_a, norm_b, denominator)
    distance = np.asarray((1.0 - dot / denominator).sum(), dtype=dtype)
    return distance, (a, b, (dot, norm_a, norm_b, denominator))


def _backward(a, b, row_terms, g_distance, dtype):
    g_b = np.empty(a.shape, dtype=dtype)
    _rows_backward(a, b, float(np.asarray(g_distance)), *row_terms, g_b)
    return g_b


def _rows(gradient):
    return np.ascontiguousarray(gradient).reshape(gradient.shape[0], -1)


def gradient_matching_distance_forward(g_real, g_syn, *, eps=1e-6):
    dtype = g_syn.dtype
    if g_syn.ndim == 1:  # a 1-D parameter contributes 0
        return np.zeros((), dtype=dtype), (None, g_syn.shape, dtype)
    distance, terms = _distance(_rows(g_real), _rows(g_syn), eps, dtype)
    return distance, (terms, g_syn.shape, dtype)


def gradient_matching_distance_backward(residuals, g_distance):
    terms, shape, dtype = residuals
    if terms is None:
        return (np.zeros(shape, dtype=dtype),)
    return (_backward(*terms, g_distance, dtype).reshape(shape),)


def dcc_contrastive_gradient_forward(g_real, g_syn, *, contrast=True, eps=1e-6):
    dtype = g_syn.dtype
    if g_syn.ndim == 2:  # per-class 1-D parameters contribute 0
        return np.zeros((), dtype=dtype), (None, g_syn.shape, dtype, contrast)
    if contrast:  # the class means, in float64, fused with the row terms
        rows = g_real.shape[1]
        real = np.ascontiguousarray(g_real).reshape(g_real.shape[0], rows, -1)
        syn = np.ascontiguousarray(g_syn).reshape(real.shape)
        a, b = np.empty(real.shape[1:]), np.empty(real.shape[1:])
        row_terms = tuple(np.empty(rows) for _ in range(4))
        _class_mean_row_terms(real, syn, float(eps), a, b, *row_terms)
        distance = np.asarray((1.0 - row_terms[0] / row_terms[3]).sum(), dtype=dtype)
        return distance, ((a, b, row_terms), g_syn.shape, dtype, contrast)
    else:
        a = np.ascontiguousarray(g_real).reshape(g_real.shape[0] * g_real.shape[1], -1)
        b = np.ascontiguousarray(g_syn).reshape(g_syn.shape[0] * g_syn.shape[1], -1)
    distance, terms = _distance(a, b, eps, dtype)
    return distance, (terms, g_syn.shape, dtype, contrast)


def dcc_contrastive_gradient_backward(residuals, g_distance):
    terms, shape, dtype, contrast = residuals
    if terms is None:
        return (np.zeros(shape, dtype=dtype),)
    if contrast:  # every class gets (1/C) of the mean's cotangent
        a, b, row_terms = terms
        g_syn = np.empty((shape[0], *a.shape), dtype=dtype)
        _class_share_backward(a, b, float(np.asarray(g_distance)) / shape[0], *row_terms, g_syn)
        return (g_syn.reshape(shape),)
    return (_backward(*terms, g_distance, dtype).reshape(shape),)


IMPLS = {
    "gradient_matching_distance": Impl(
        gradient_matching_distance_forward, gradient_matching_distance_backward
    ),
    "dcc_contrastive_gradient": Impl(dcc_contrastive_gradient_forward, dcc_contrastive_gradient_backward),
}
