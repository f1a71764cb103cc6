"""LfU consistency loss: Numba kernels, parallel over the (layer, token) rows.

Mirrors ``refimpl/regularizers/lfu.py``. Forward: each valid row's ``Σ_k (h_aux − h)²`` in
float64, summed and scaled by ``λ w/(n·D)``; backward: one pass writing
``h̄_aux = 2 ḡ λ w (h_aux − h) m/(n·D)`` and ``h̄ = −h̄_aux``.

``lfu_normalized_ascent_step``: one float64 pass for ``Σg²`` (in contiguous blocks, each
thread its own partial sum; redone scaled by ``max|g|`` where it overflows or underflows),
then one pass ``θ + (α/‖g‖)·g`` in the arrays' dtype.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@parallel_kernel(fastmath={"reassoc"})
def _row_squares(hidden, hidden_aux, valid, per_row):
    tokens = valid.shape[0]
    for r in prange(hidden.shape[0]):
        total = 0.0
        if valid[r % tokens]:
            for k in range(hidden.shape[1]):
                difference = np.float64(hidden_aux[r, k]) - np.float64(hidden[r, k])
                total += difference * difference
        per_row[r] = total


@parallel_kernel(fastmath={"reassoc"})
def _consistency_grad(hidden, hidden_aux, valid, factor, g_hidden, g_hidden_aux):
    tokens = valid.shape[0]
    for r in prange(hidden.shape[0]):
        if valid[r % tokens]:
            for k in range(hidden.shape[1]):
                g = factor * (np.float64(hidden_aux[r, k]) - np.float64(hidden[r, k]))
                g_hidden_aux[r, k] = g
                g_hidden[r, k] = -g
        else:
            for k in range(hidden.shape[1]):
                g_hidden_aux[r, k] = 0.0
                g_hidden[r, k] = 0.0


def lfu_consistency_loss_forward(hidden, hidden_aux, mask=None, *, lam, layer_reduction="sum"):
    layers, tokens, features = hidden.shape
    rows_h = np.ascontiguousarray(hidden).reshape(layers * tokens, features)
    rows_aux = np.ascontiguousarray(hidden_aux).reshape(layers * tokens, features)
    valid = np.ones(tokens, dtype=np.bool_) if mask is None else np.ascontiguousarray(mask, dtype=np.bool_)
    count = int(valid.sum())
    if count == 0:
        return np.zeros((), dtype=hidden.dtype), (rows_h, rows_aux, valid, 0.0, hidden.shape)
    scale = lam * (1.0 if layer_reduction == "sum" else 1.0 / layers) / (count * features)
    per_row = np.empty(layers * tokens, dtype=np.float64)
    _row_squares(rows_h, rows_aux, valid, per_row)
    loss = scale * float(per_row.sum())
    return np.asarray(loss, dtype=hidden.dtype), (rows_h, rows_aux, valid, scale, hidden.shape)


def lfu_consistency_loss_backward(residuals, g_loss):
    rows_h, rows_aux, valid, scale, shape = residuals
    g_hidden = np.empty(rows_h.shape, dtype=rows_h.dtype)
    g_hidden_aux = np.empty(rows_h.shape, dtype=rows_h.dtype)
    _consistency_grad(rows_h, rows_aux, valid, 2.0 * scale * float(g_loss), g_hidden, g_hidden_aux)
    return g_hidden.reshape(shape), g_hidden_aux.reshape(shape)


_BLOCK = 1 << 14


@parallel_kernel(fastmath={"reassoc"})
def _block_squares(grad, inverse_scale, partial):
    n = grad.shape[0]
    for b in prange(partial.shape[0]):
        total = 0.0
        for i in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
            value = np.float64(grad[i]) * inverse_scale
            total += value * value
        partial[b] = total


@parallel_kernel()
def _ascent(theta, grad, coefficient, out):
    for i in prange(theta.shape[0]):
        out[i] = theta[i] + coefficient * grad[i]


def _norm(grad):
    partial = np.empty((grad.shape[0] + _BLOCK - 1) // _BLOCK, dtype=np.float64)
    _block_squares(grad, 1.0, partial)
    squares = float(partial.sum())
    if math.isfinite(squares) and squares >= np.finfo(np.float64).tiny:
        return math.sqrt(squares)
    largest = float(np.abs(grad).max())  # Σg² left the float64 range: ‖g‖ = s·‖g/s‖
    _block_squares(grad, 1.0 / largest, partial)
    return largest * math.sqrt(float(partial.sum()))


def lfu_normalized_ascent_step_forward(theta_aux, grad, *, alpha=0.1):
    theta, gradient = np.ascontiguousarray(theta_aux), np.ascontiguousarray(grad)
    out = np.empty_like(theta)
    _ascent(theta, gradient, theta.dtype.type(alpha / _norm(gradient)), out)
    return out, None


IMPLS = {
    "lfu_consistency_loss": Impl(lfu_consistency_loss_forward, lfu_consistency_loss_backward),
    "lfu_normalized_ascent_step": Impl(lfu_normalized_ascent_step_forward),
}
