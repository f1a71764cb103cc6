"""ConTraCon's convolutional re-weighting on CuPy: k² fused shifted multiply-adds.

Mirrors ``refimpl/adapters/contracon.py``. The "same" zero-padded cross-correlation of each
head block (H, P, I) with its k × k kernel is evaluated directly (no FFT): the block is
zero-padded once, then each of the k² kernel taps adds ``K[:, a, b]·W_pad[:, a:a+P, b:b+I]``
to the output with one fused multiply-add kernel (the tap broadcast per head). The kernel
cotangent ``K̄[:, a, b] = Σ G·W_pad[:, a:a+P, b:b+I]`` is one fused product and a reduction
per tap; ``W̄`` is the same tap loop over the padded G with the flipped kernel (the
conv2d input gradient), plus ``σ(s)·G`` when official.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl, sigmoid

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def tap(out, coefficient, window):
        return out + coefficient * window

    @fuse
    def bias_and_skip(conv, bias, gate, base):
        return conv + bias + gate * base

    @fuse
    def skip(conv, gate, base):
        return conv + gate * base

    @fuse
    def gate_slope(gate):
        return gate * (1 - gate)

    return SimpleNamespace(tap=tap, bias_and_skip=bias_and_skip, skip=skip, gate_slope=gate_slope)


kernels_for = kernel_set(_kernels)


def _padded(xp, blocks, p):
    heads, rows, cols = blocks.shape
    padded = xp.zeros((heads, rows + 2 * p, cols + 2 * p), dtype=blocks.dtype)
    padded[:, p : p + rows, p : p + cols] = blocks
    return padded


def _correlate(xp, k_set, blocks, K):
    """``(blocks ⋆ K)`` per head, "same" size, zero padding (k − 1)/2."""
    k = K.shape[1]
    rows, cols = blocks.shape[1:]
    padded = _padded(xp, blocks, (k - 1) // 2)
    out = xp.zeros_like(blocks)
    for a in range(k):
        for b in range(k):
            out = k_set.tap(out, K[:, a, b, None, None], padded[:, a : a + rows, b : b + cols])
    return out


def contracon_conv_weight_forward(W, K, c, s, *, official=False):
    xp = xp_of(W)
    k_set = kernels_for(W)
    heads = K.shape[0]
    blocks = W.reshape(heads, W.shape[0] // heads, W.shape[1])
    out = _correlate(xp, k_set, blocks, K)
    gate = None
    if official:
        gate = sigmoid(s)
        out = k_set.bias_and_skip(out, c[:, None, None], gate[:, None, None], blocks)
    return out.reshape(W.shape), (blocks, K, gate, W.shape)


def contracon_conv_weight_backward(residuals, g_W_t):
    blocks, K, gate, shape = residuals
    xp = xp_of(blocks)
    k_set = kernels_for(blocks)
    G = g_W_t.reshape(blocks.shape)
    k = K.shape[1]
    rows, cols = blocks.shape[1:]
    padded = _padded(xp, blocks, (k - 1) // 2)
    g_K = xp.empty_like(K)
    for a in range(k):
        for b in range(k):
            g_K[:, a, b] = xp.sum(G * padded[:, a : a + rows, b : b + cols], axis=(1, 2))
    g_blocks = _correlate(xp, k_set, G, xp.ascontiguousarray(K[:, ::-1, ::-1]))
    if gate is None:
        g_c = xp.zeros(K.shape[0], dtype=blocks.dtype)
        g_s = xp.zeros(K.shape[0], dtype=blocks.dtype)
    else:
        g_blocks = k_set.skip(g_blocks, gate[:, None, None], G)
        g_c = G.sum(axis=(1, 2))
        g_s = k_set.gate_slope(gate) * xp.sum(G * blocks, axis=(1, 2))
    return g_blocks.reshape(shape), g_K, g_c, g_s


IMPLS = {"contracon_conv_weight": Impl(contracon_conv_weight_forward, contracon_conv_weight_backward)}
