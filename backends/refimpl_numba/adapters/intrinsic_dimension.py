"""The Walsh–Hadamard transform and the Fastfood projection: Numba kernels, float64 butterflies.

Mirrors ``refimpl/adapters/intrinsic_dimension.py`` (``fwht``, ``fastfood_projection``, forward
and backward). Like the reference, every butterfly runs in float64 whatever the input dtype
and the result is rounded once to it (the error of each output stays below
``log₂L·2⁻⁵³·Σ|x|``; see ``fwht``'s docstring).

The transform of a length-L row is done in two phases:

* the stages of half-width ``h < BLOCK`` one block of BLOCK consecutive entries at a time
  (16 KiB of float64: every stage of the block stays in L1), the blocks in parallel; this
  phase also converts the input to float64 in its first read;
* the remaining stages (``h >= BLOCK``): seen as a (L/BLOCK, BLOCK) matrix, the row needs the
  transform of length L/BLOCK down every column; each parallel task copies WIDTH adjacent
  columns into a contiguous tile, runs all those stages on it (radix 4, two stages per sweep,
  the columns as the vectorized inner loop) and writes it back. The strided stages thus cost
  one pass over the row instead of one per stage (L = 2²⁰: 92 → 48 ms on the shared 2 cores).

The Fastfood projection chains them with fused gather/scatter kernels: ``H B pad(x)``, the
gather ``v[Π]·G``, ``H``, then the truncation and ``1/c``; its backward is the true adjoint
``B·H·Πᵀ(G·H(pad(ḡ/c)))`` with the scatter ``u[Π_i] = w_i`` (Π is a permutation, so the
parallel scatter writes every entry once).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel

BLOCK = 2048  # float64 entries per in-cache block of the first phase
WIDTH = 8  # adjacent columns per tile of the strided stages (one 64-byte line of float64)


@njit(cache=True)
def _radix4_in_block(segment, half):
    """The stages h and 2h on a contiguous segment (its length a multiple of 4h)."""
    for base in range(0, segment.shape[0], 4 * half):
        for i in range(base, base + half):  # contiguous: four streams h apart, vectorized
            x0 = segment[i]
            x1 = segment[i + half]
            x2 = segment[i + 2 * half]
            x3 = segment[i + 3 * half]
            s0 = x0 + x1
            d0 = x0 - x1
            s1 = x2 + x3
            d1 = x2 - x3
            segment[i] = s0 + s1
            segment[i + half] = d0 + d1
            segment[i + 2 * half] = s0 - s1
            segment[i + 3 * half] = d0 - d1


@njit(cache=True)
def _radix2_in_block(segment, half):
    """The stage h alone on a contiguous segment (its length a multiple of 2h)."""
    for base in range(0, segment.shape[0], 2 * half):
        for i in range(base, base + half):
            a = segment[i]
            b = segment[i + half]
            segment[i] = a + b
            segment[i + half] = a - b


@parallel_kernel()
def _blocked_stages(source, work, block):
    """``work[r, block b] = the stages h < block of source[r, block b]``, in float64.

    The stages h = 1 and 2 run in registers on each group of four entries as they are read
    (and converted to float64); the next ones as radix-4 sweeps over the block (in L1).
    """
    rows, length = work.shape
    blocks = length // block
    for task in prange(rows * blocks):
        r = task // blocks
        start = (task % blocks) * block
        segment = work[r, start : start + block]
        if block >= 4:
            for i in range(start, start + block, 4):
                x0 = np.float64(source[r, i])
                x1 = np.float64(source[r, i + 1])
                x2 = np.float64(source[r, i + 2])
                x3 = np.float64(source[r, i + 3])
                s0 = x0 + x1
                d0 = x0 - x1
                s1 = x2 + x3
                d1 = x2 - x3
                segment[i - start] = s0 + s1
                segment[i - start + 1] = d0 + d1
                segment[i - start + 2] = s0 - s1
                segment[i - start + 3] = d0 - d1
            half = 4
        else:
            for i in range(block):
                segment[i] = source[r, start + i]
            half = 1
        while half < block:
            if 4 * half <= block:
                _radix4_in_block(segment, half)
                half *= 4
            else:
                _radix2_in_block(segment, half)
                half *= 2


@parallel_kernel()
def _strided_stages(work, block, width):
    """The stages h >= block: with the row seen as a (L/block, block) matrix, they are the
    transform of length L/block down each column. Each task copies ``width`` adjacent columns
    (one cache line of float64 per matrix row) into a contiguous tile, runs every remaining
    stage on it with the columns as the vectorized inner loop, and writes it back: one pass
    over the row for all the strided stages."""
    rows, length = work.shape
    count = length // block
    tiles = block // width
    for task in prange(rows * tiles):
        r = task // tiles
        first = (task % tiles) * width
        tile = np.empty((count, width))
        for j in range(count):
            for c in range(width):
                tile[j, c] = work[r, j * block + first + c]
        half = 1
        while half < count:
            if 4 * half <= count:
                for base in range(0, count, 4 * half):
                    for j in range(base, base + half):
                        for c in range(width):
                            x0 = tile[j, c]
                            x1 = tile[j + half, c]
                            x2 = tile[j + 2 * half, c]
                            x3 = tile[j + 3 * half, c]
                            s0 = x0 + x1
                            d0 = x0 - x1
                            s1 = x2 + x3
                            d1 = x2 - x3
                            tile[j, c] = s0 + s1
                            tile[j + half, c] = d0 + d1
                            tile[j + 2 * half, c] = s0 - s1
                            tile[j + 3 * half, c] = d0 - d1
                half *= 4
            else:
                for base in range(0, count, 2 * half):
                    for j in range(base, base + half):
                        for c in range(width):
                            a = tile[j, c]
                            b = tile[j + half, c]
                            tile[j, c] = a + b
                            tile[j + half, c] = a - b
                half *= 2
        for j in range(count):
            for c in range(width):
                work[r, j * block + first + c] = tile[j, c]


@parallel_kernel()
def _round_into(work, out):
    """``out = work`` rounded to out's dtype (one parallel pass)."""
    rows, length = work.shape
    for r in prange(rows):
        for i in range(length):
            out[r, i] = work[r, i]


def _hadamard_rows(source, work):
    """``work = H source`` row by row (float64 ``work``; ``source`` any float dtype, or work itself)."""
    length = work.shape[1]
    block = min(length, BLOCK)
    _blocked_stages(source, work, block)
    if block < length:
        _strided_stages(work, block, min(block, WIDTH))
    return work


def _fwht(x):
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    if rows.dtype == np.float64:
        return _hadamard_rows(rows, np.empty_like(rows)).reshape(x.shape)
    work = _hadamard_rows(rows, np.empty(rows.shape))
    out = np.empty(rows.shape, dtype=rows.dtype)
    _round_into(work, out)
    return out.reshape(x.shape)


def fwht_forward(x):
    return _fwht(x), None


def fwht_backward(residuals, g_y):
    return (_fwht(g_y),)  # x̄ = H ȳ (H symmetric)


# -- fastfood_projection -------------------------------------------------------------------------
@parallel_kernel()
def _gather_scale(v, Pi, G, out):  # noqa: N803
    """``out[0, i] = v[0, Π_i]·G_i`` (the gather of the forward)."""
    for i in prange(Pi.shape[0]):
        out[0, i] = v[0, Pi[i]] * G[i]


@parallel_kernel()
def _scale_scatter(v, Pi, G, out):  # noqa: N803
    """``out[0, Π_i] = v[0, i]·G_i`` (Πᵀ G: the scatter of the adjoint; Π is a permutation)."""
    for i in prange(Pi.shape[0]):
        out[0, Pi[i]] = v[0, i] * G[i]


def _scale(G, D):  # noqa: N803
    length = G.shape[0]
    G64 = G.astype(np.float64)  # noqa: N806
    return math.sqrt(length * float(np.dot(G64, G64))) * math.sqrt(D / length)


def fastfood_projection_forward(x, B, Pi, G, *, D):  # noqa: N803
    length, d = B.shape[0], x.shape[0]
    padded = np.zeros((1, length))
    padded[0, :d] = x * B[:d]  # B pad_L(x)
    mixed = _hadamard_rows(padded, padded)
    gathered = np.empty((1, length))
    _gather_scale(mixed, Pi, G, gathered)
    y = _hadamard_rows(gathered, gathered)[0, :D] / _scale(G, D)
    return y.astype(x.dtype, copy=False), (B, Pi, G, d, x.dtype)


def fastfood_projection_backward(residuals, g_y):
    B, Pi, G, d, dtype = residuals  # noqa: N806
    length, D = B.shape[0], g_y.shape[0]  # noqa: N806
    padded = np.zeros((1, length))
    padded[0, :D] = g_y.astype(np.float64) / _scale(G, D)  # Sᵀ(ḡ/c)
    mixed = _hadamard_rows(padded, padded)
    scattered = np.empty((1, length))
    _scale_scatter(mixed, Pi, G, scattered)  # Πᵀ G H
    g_x = _hadamard_rows(scattered, scattered)[0, :d] * B[:d]
    return (g_x.astype(dtype, copy=False),)


IMPLS = {
    "fwht": Impl(fwht_forward, fwht_backward),
    "fastfood_projection": Impl(fastfood_projection_forward, fastfood_projection_backward),
}
