"""NormGrad saliency on Numba: one fused pass over the channels per sample.

Mirrors ``refimpl/other/normgrad.py``. Per sample b the (C, H·W) activation and gradient are
read once, location sums kept in float64 rows of length H·W:

* identity: ``Σ_c x²`` and ``Σ_c ∇x²`` at every location, then ``√(Σx²)·√(Σ∇x²)``;
* selective: ``Σ_c max(x·∇x, 0)²``, then its square root (the product in float64);
* conv: ``Σ_c g²`` over the output channels, and ``Σ_c a²`` of the input, whose k×k window
  sums (zero padding, stride, dilation) give ``‖unfold(a)_p‖²`` without forming patches.

The samples run in parallel for large inputs (serial below 2²⁰ elements).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl
from refimpl.other.normgrad import conv_output_size

from .._jit import parallel_kernel

PARALLEL_MIN_SIZE = 1 << 20


def _channel_squares(x, out):
    """out[b, p] = Σ_c x[b, c, p]² (float64), for (B, C, P) x."""
    for b in prange(x.shape[0]):
        for p in range(x.shape[2]):
            out[b, p] = 0.0
        for c in range(x.shape[1]):
            for p in range(x.shape[2]):
                value = np.float64(x[b, c, p])
                out[b, p] += value * value


def _identity(x, g, out):
    """out[b, p] = √(Σ_c x²)·√(Σ_c g²) at every location p of (B, C, P) arrays."""
    for b in prange(x.shape[0]):
        x_squares = np.zeros(x.shape[2])
        g_squares = np.zeros(x.shape[2])
        for c in range(x.shape[1]):
            for p in range(x.shape[2]):
                xv = np.float64(x[b, c, p])
                gv = np.float64(g[b, c, p])
                x_squares[p] += xv * xv
                g_squares[p] += gv * gv
        for p in range(x.shape[2]):
            out[b, p] = math.sqrt(x_squares[p]) * math.sqrt(g_squares[p])


def _selective(x, g, out):
    """out[b, p] = ‖max(x_p ⊙ g_p, 0)‖₂ over the channels."""
    for b in prange(x.shape[0]):
        squares = np.zeros(x.shape[2])
        for c in range(x.shape[1]):
            for p in range(x.shape[2]):
                product = max(np.float64(x[b, c, p]) * np.float64(g[b, c, p]), 0.0)
                squares[p] += product * product
        for p in range(x.shape[2]):
            out[b, p] = math.sqrt(squares[p])


def _conv(a_squares, g_squares, kernel_size, stride, dilation, out):
    """out[b, h, w] = √(Σ_c g²)·√(window sum of the padded Σ_c a²) for (B, Hp, Wp) a_squares."""
    for b in prange(out.shape[0]):
        for h in range(out.shape[1]):
            for w in range(out.shape[2]):
                total = 0.0
                for i in range(kernel_size):
                    for j in range(kernel_size):
                        total += a_squares[b, h * stride + i * dilation, w * stride + j * dilation]
                out[b, h, w] = math.sqrt(g_squares[b, h * out.shape[2] + w]) * math.sqrt(total)


_channel_squares_kernel = parallel_kernel(min_elements=PARALLEL_MIN_SIZE)(_channel_squares)
_identity_kernel = parallel_kernel(min_elements=PARALLEL_MIN_SIZE)(_identity)
_selective_kernel = parallel_kernel(min_elements=PARALLEL_MIN_SIZE)(_selective)
_conv_kernel = parallel_kernel(min_elements=PARALLEL_MIN_SIZE)(_conv)


def _flat(x):
    return np.ascontiguousarray(x).reshape(x.shape[0], x.shape[1], -1)


def normgrad_saliency_forward(x, grad, *, variant="identity", kernel_size=1, stride=1, padding=0, dilation=1):
    batch = x.shape[0]
    if variant != "conv":
        out = np.empty((batch, x.shape[2] * x.shape[3]))
        kernel = _identity_kernel if variant == "identity" else _selective_kernel
        kernel(_flat(x), _flat(grad), out)
        return out.reshape(batch, 1, x.shape[2], x.shape[3]).astype(x.dtype), None
    a_squares = np.empty((batch, x.shape[2] * x.shape[3]))
    _channel_squares_kernel(_flat(x), a_squares)
    padded = np.pad(
        a_squares.reshape(batch, x.shape[2], x.shape[3]), ((0, 0), (padding, padding), (padding, padding))
    )
    g_squares = np.empty((batch, grad.shape[2] * grad.shape[3]))
    _channel_squares_kernel(_flat(grad), g_squares)
    height = conv_output_size(x.shape[2], kernel_size, stride, padding, dilation)
    width = conv_output_size(x.shape[3], kernel_size, stride, padding, dilation)
    out = np.empty((batch, height, width))
    _conv_kernel(padded, g_squares, kernel_size, stride, dilation, out)
    return out[:, None].astype(x.dtype), None


IMPLS = {"normgrad_saliency": Impl(normgrad_saliency_forward)}
