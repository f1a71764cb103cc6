"""sharpDARTS Max-W mixed op: Numba kernels, parallel over mixed ops (rows).

Mirrors ``refimpl/layers/max_w.py``. Per row: the softmax of α in float64 (``_vmath.exp``
of ``α − max α ≤ 0``), the weights rounded to the input dtype to find the maximal ones (the
reference's ties), ``c_i = 1 − (m − w_i)``, and ``y = Σ_i c_i O_i`` accumulated in float64.
The backward forms ``s_i = ⟨ȳ, O_i⟩`` in float64, ``w̄ = s − t Σ s`` with the even split
``t`` over ties, the softmax VJP, and ``Ō_i = c_i ȳ``.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel
from .._vmath import exp


@parallel_kernel(fastmath={"reassoc"})
def _forward_rows(outputs, alpha, y, w, coefficients, share):
    rows, n, d = outputs.shape
    for r in prange(rows):
        top = np.float64(alpha[r, 0])
        for i in range(1, n):
            top = max(top, np.float64(alpha[r, i]))
        total = 0.0
        for i in range(n):
            e = exp(np.float64(alpha[r, i]) - top)  # ≤ 0: no overflow
            w[r, i] = e
            total += e
        m = -1.0
        for i in range(n):
            w[r, i] = np.float64(outputs.dtype.type(w[r, i] / total))  # the dtype's weight (its ties)
            m = max(m, w[r, i])
        ties = 0
        for i in range(n):
            coefficients[r, i] = 1.0 - (m - w[r, i])
            if w[r, i] == m:
                ties += 1
        for i in range(n):
            share[r, i] = 1.0 / ties if w[r, i] == m else 0.0
        acc = np.zeros(d)  # the row of y in float64, swept op by op (contiguous reads of O)
        for i in range(n):
            c = coefficients[r, i]
            for j in range(d):
                acc[j] += c * np.float64(outputs[r, i, j])
        for j in range(d):
            y[r, j] = acc[j]


@parallel_kernel(fastmath={"reassoc"})
def _backward_rows(outputs, w, coefficients, share, g_y, g_outputs, g_alpha):
    rows, n, d = outputs.shape
    for r in prange(rows):
        total_score = 0.0
        for i in range(n):
            score = 0.0
            for j in range(d):
                g = np.float64(g_y[r, j])
                score += g * np.float64(outputs[r, i, j])
                g_outputs[r, i, j] = coefficients[r, i] * g
            g_alpha[r, i] = score  # s_i for now
            total_score += score
        weighted = 0.0
        for i in range(n):
            g_w = g_alpha[r, i] - share[r, i] * total_score  # w̄_i = s_i − t_i Σ s
            g_alpha[r, i] = g_w
            weighted += w[r, i] * g_w
        for i in range(n):
            g_alpha[r, i] = w[r, i] * (g_alpha[r, i] - weighted)


def max_w_mixed_op_forward(outputs, alpha):
    n, d = outputs.shape[-2:]
    lead = outputs.shape[:-2]
    work = np.ascontiguousarray(outputs).reshape(-1, n, d)
    logits = np.ascontiguousarray(alpha).reshape(-1, n)
    rows = work.shape[0]
    y = np.empty((rows, d), dtype=outputs.dtype)
    w, coefficients, share = (np.empty((rows, n)) for _ in range(3))
    _forward_rows(work, logits, y, w, coefficients, share)
    return y.reshape(*lead, d), (work, w, coefficients, share, lead, alpha.dtype)


def max_w_mixed_op_backward(residuals, g_y):
    work, w, coefficients, share, lead, alpha_dtype = residuals
    rows, n, d = work.shape
    g_rows = np.ascontiguousarray(g_y).reshape(rows, d)
    g_outputs = np.empty(work.shape, dtype=work.dtype)
    g_alpha = np.empty((rows, n))
    _backward_rows(work, w, coefficients, share, g_rows, g_outputs, g_alpha)
    return g_outputs.reshape(*lead, n, d), g_alpha.astype(alpha_dtype).reshape(*lead, n)


IMPLS = {"max_w_mixed_op": Impl(max_w_mixed_op_forward, max_w_mixed_op_backward)}
