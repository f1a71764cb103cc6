"""The STN best-response layer: NumPy's BLAS for the products, Numba kernels for the gating.

Mirrors ``refimpl/layers/stn.py``. ``np.dot`` computes ``x Wᵀ``, ``x W_hᵀ``, the gates
``h Uᵀ`` and every product of the backward; one row-parallel kernel adds the bias and
combines ``s·(x Wᵀ + b) + σ_w ⊙ (x W_hᵀ) + σ_b ⊙ b_h``, another forms ``G ⊙ σ_w``, the gate
cotangent ``[G ⊙ x W_hᵀ, G ⊙ b_h]`` and the per-row float64 sums behind ``s̄`` and ``b̄_h``.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@parallel_kernel()
def _combine(linear, bias, scale, hidden, gates, hyper_bias, out):
    """In place ``linear += b``; ``out = s·linear + σ_w ⊙ hidden + σ_b ⊙ b_h``."""
    width = linear.shape[1]
    for i in prange(linear.shape[0]):
        for j in range(width):
            value = np.float64(linear[i, j]) + np.float64(bias[j])
            linear[i, j] = value
            out[i, j] = (
                scale * value
                + np.float64(gates[i, j]) * np.float64(hidden[i, j])
                + np.float64(gates[i, width + j]) * np.float64(hyper_bias[j])
            )


@parallel_kernel()
def _gate_cotangents(g_out, gates, hidden, hyper_bias, linear, g_gate_w, g_gates, row_s, partial_b_h):
    """``G ⊙ σ_w``, ``σ̄ = [G ⊙ hidden, G ⊙ b_h]``, row sums of ``G ⊙ linear`` and ``G ⊙ σ_b``."""
    rows, width = g_out.shape
    chunks = partial_b_h.shape[0]
    for c in prange(chunks):
        for i in range(c * rows // chunks, (c + 1) * rows // chunks):
            total = 0.0
            for j in range(width):
                g = np.float64(g_out[i, j])
                g_gate_w[i, j] = g * np.float64(gates[i, j])
                g_gates[i, j] = g * np.float64(hidden[i, j])
                g_gates[i, width + j] = g * np.float64(hyper_bias[j])
                total += g * np.float64(linear[i, j])
                partial_b_h[c, j] += g * np.float64(gates[i, width + j])
            row_s[i] = total


def stn_hyperlinear_forward(x, h, W, b, W_h, b_h, U, s):
    linear = np.dot(x, W.T)
    hidden = np.dot(x, W_h.T)
    gates = np.dot(h, U.T)
    out = np.empty_like(linear)
    _combine(linear, b, float(s[0]), hidden, gates, b_h, out)
    return out, (x, h, W, W_h, b_h, U, s, linear, hidden, gates)


def stn_hyperlinear_backward(residuals, g_out):
    x, h, W, W_h, b_h, U, s, linear, hidden, gates = residuals
    g_out = np.ascontiguousarray(g_out)
    rows = g_out.shape[0]
    g_gate_w = np.empty_like(g_out)
    g_gates = np.empty_like(gates)
    row_s = np.empty(rows)
    chunks = max(1, min(64, rows))
    partial_b_h = np.zeros((chunks, g_out.shape[1]))
    _gate_cotangents(g_out, gates, hidden, b_h, linear, g_gate_w, g_gates, row_s, partial_b_h)
    scale = s.dtype.type(s[0])
    g_x = np.dot(g_gate_w, W_h)
    g_x += scale * np.dot(g_out, W)
    g_h = np.dot(g_gates, U)
    g_W = scale * np.dot(g_out.T, x)
    g_b = scale * g_out.sum(axis=0)
    g_W_h = np.dot(g_gate_w.T, x)
    g_b_h = partial_b_h.sum(axis=0).astype(x.dtype)
    g_U = np.dot(g_gates.T, h)
    g_s = np.array([row_s.sum()], dtype=x.dtype)
    return g_x, g_h, g_W, g_b, g_W_h, g_b_h, g_U, g_s


IMPLS = {"stn_hyperlinear": Impl(stn_hyperlinear_forward, stn_hyperlinear_backward)}
