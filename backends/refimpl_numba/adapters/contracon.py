"""ConTraCon's convolutional re-weighting: direct-loop Numba kernels, parallel over head rows.

Mirrors ``refimpl/adapters/contracon.py``. The "same" zero-padded cross-correlation of each
head block with its k × k kernel is a direct loop (no FFT, no im2col): for output row i of
head h, every kernel row a whose source row ``i + a − p`` lies inside the block adds
``K[h, a, b]·W[h, i + a − p, j + b − p]`` over the valid columns j — a contiguous inner
loop into a float64 row accumulator, so zero padding is never materialized. The inner loops
run over 1-D views indexed from 0 (Numba's negative-index wraparound test on ``j + shift``
kept LLVM from vectorizing them: 8x slower); the K̄ sums use ``fastmath={"reassoc"}``
(vectorized float64 sums, reordered by ~1e-16 relative).

* forward: ``W_t,h = W_h ⋆ K_h + c_h + σ(s_h)·W_h`` in one pass per row (c = gate = 0 when
  not official: ``x + 0 + 0·W`` is x exactly for finite W);
* ``W̄`` is the same kernel with the kernel flipped in both axes (the conv2d input
  gradient is G correlated with the flipped kernel under the same padding), plus ``σ(s)·G``;
* ``K̄[h, a, b] = Σ_{i,j} G[h, i, j]·W[h, i + a − p, j + b − p]``, parallel over (h, a, b);
* ``c̄`` and ``s̄`` (``Σ G_h``, ``σ'(s_h)⟨G_h, W_h⟩``) in one pass per head.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from refimpl.authoring import Impl, sigmoid

from .._jit import parallel_kernel


@parallel_kernel()
def _correlate_rows(W, K, bias, gate, out):
    """``out[h, i] = (W_h ⋆ K_h)[i] + bias[h] + gate[h]·W[h, i]`` for every (h, i) (zero padding)."""
    heads, rows, cols = W.shape
    k = K.shape[1]
    p = (k - 1) // 2
    for flat in prange(heads * rows):
        h = flat // rows
        i = flat - h * rows
        acc = np.zeros(cols, dtype=np.float64)
        for a in range(k):
            r = i + a - p
            if r < 0 or r >= rows:
                continue  # the tap reads the zero padding above or below the block
            source_row = W[h, r]
            for b in range(k):
                coefficient = np.float64(K[h, a, b])
                shift = b - p
                j_start = max(0, -shift)
                j_stop = min(cols, cols - shift)
                # 1-D views indexed from 0: no negative-index wraparound test, so the loop vectorizes
                source = source_row[j_start + shift : j_stop + shift]
                target = acc[j_start:j_stop]
                for t in range(j_stop - j_start):
                    target[t] += coefficient * source[t]
        c_h = np.float64(bias[h])
        gate_h = np.float64(gate[h])
        for j in range(cols):
            out[h, i, j] = acc[j] + c_h + gate_h * W[h, i, j]


@parallel_kernel(fastmath={"reassoc"})
def _kernel_cotangent(W, G, g_K):
    """``g_K[h, a, b] = Σ_{i,j} G[h, i, j]·W[h, i + a − p, j + b − p]`` (valid terms only)."""
    heads, rows, cols = W.shape
    k = g_K.shape[1]
    p = (k - 1) // 2
    for flat in prange(heads * k * k):
        h = flat // (k * k)
        a = (flat // k) % k
        b = flat % k
        shift = b - p
        j_start = max(0, -shift)
        j_stop = min(cols, cols - shift)
        total = 0.0
        for i in range(rows):
            r = i + a - p
            if r < 0 or r >= rows:
                continue
            source = W[h, r, j_start + shift : j_stop + shift]
            cotangent = G[h, i, j_start:j_stop]
            for t in range(j_stop - j_start):
                total += np.float64(cotangent[t]) * source[t]
        g_K[h, a, b] = total


@njit(cache=True)
def _bias_and_gate_cotangents(W, G, gate, g_c, g_s):
    """``g_c[h] = Σ G_h``, ``g_s[h] = σ(s_h)(1 − σ(s_h))·⟨G_h, W_h⟩``, float64 sums."""
    heads, rows, cols = W.shape
    for h in range(heads):
        total = 0.0
        inner = 0.0
        for i in range(rows):
            for j in range(cols):
                g = np.float64(G[h, i, j])
                total += g
                inner += g * W[h, i, j]
        g_c[h] = total
        gate_h = np.float64(gate[h])
        g_s[h] = gate_h * (1.0 - gate_h) * inner


def contracon_conv_weight_forward(W, K, c, s, *, official=False):
    heads = K.shape[0]
    blocks = np.ascontiguousarray(W).reshape(heads, W.shape[0] // heads, W.shape[1])
    if official:
        bias, gate = c, sigmoid(s)
    else:
        bias, gate = np.zeros_like(c), np.zeros_like(s)
    out = np.empty_like(blocks)
    _correlate_rows(blocks, K, bias, gate, out)
    return out.reshape(W.shape), (blocks, K, gate, official, W.shape)


def contracon_conv_weight_backward(residuals, g_W_t):
    blocks, K, gate, official, shape = residuals
    G = np.ascontiguousarray(g_W_t).reshape(blocks.shape)
    flipped = np.ascontiguousarray(K[:, ::-1, ::-1])  # W̄ = G ⋆ flip(K), same zero padding
    g_blocks = np.empty_like(blocks)
    _correlate_rows(G, flipped, np.zeros_like(gate), gate, g_blocks)  # + σ(s)·G (gate 0 if not official)
    g_K = np.empty_like(K)
    _kernel_cotangent(blocks, G, g_K)
    g_c = np.zeros(K.shape[0], dtype=blocks.dtype)
    g_s = np.zeros(K.shape[0], dtype=blocks.dtype)
    if official:
        _bias_and_gate_cotangents(blocks, G, gate, g_c, g_s)
    return g_blocks.reshape(shape), g_K, g_c, g_s


IMPLS = {"contracon_conv_weight": Impl(contracon_conv_weight_forward, contracon_conv_weight_backward)}
