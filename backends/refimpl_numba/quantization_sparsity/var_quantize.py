"""VAR multi-scale VQ loss and residual quantizer: Numba kernels and NumPy's BLAS.

Mirrors ``refimpl/quantization_sparsity/var_quantize.py``.

``multiscale_vq_loss``: parallel over the (B·C·H·W) positions. The forward sums
``(f̂_k − f)²`` in float64 per position block (blocks in parallel, partial sums then added);
the backward writes ``f̂̄_k = s(f̂_k − f)`` and ``f̄ = −βs Σ_k (f̂_k − f)`` (s = 2L̄/(Kn)) in
one pass, recomputing the differences instead of storing them.

``multiscale_residual_quantize``: everything in float64, as the reference. The resizes
``A r Aᵀ`` / ``U e Uᵀ`` (the reference's ``area_matrix`` / ``bicubic_matrix``) are two GEMMs
each over all B·C planes (``np.dot``), the 3×3 convolutions φ one GEMM on the im2col matrix
(C·9, B·H·W). The nearest-codeword search is a Numba kernel parallel over the positions:
float64 distances by direct differences, the first strict minimum kept (ties: lowest
index, as the reference's ``argmin``); the cosine search (``using_znorm``) is the
reference's BLAS product and ``argmax``. One kernel per scale fuses φ's blend with the
f̂ / residual updates. The backward runs the reference's steps with the same products
(the transposed convolution as a GEMM on the im2col of s with the flipped, channel-swapped
kernel; the bicubic adjoint as the resize by Uᵀ) and a Numba scatter-add of the codeword
cotangents, in the reference's order.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from refimpl.authoring import Impl
from refimpl.quantization_sparsity.var_quantize import (
    VAR_PATCH_NUMS,
    _nearest_cosine,
    area_matrix,
    bicubic_matrix,
    phi_positions,
)

from .._jit import parallel_kernel

BLOCK = 4096


@parallel_kernel(fastmath={"reassoc"})
def _squares(f, f_hats, partial):
    scales, size = f_hats.shape
    for block in prange(partial.shape[0]):
        total = 0.0
        for k in range(scales):
            for i in range(block * BLOCK, min(size, (block + 1) * BLOCK)):
                difference = np.float64(f_hats[k, i]) - np.float64(f[i])
                total += difference * difference
        partial[block] = total


@parallel_kernel(fastmath={"reassoc"})
def _backward(f, f_hats, scale, beta_scale, g_f, g_f_hats):
    scales, size = f_hats.shape
    for i in prange(size):
        total = 0.0
        for k in range(scales):
            difference = np.float64(f_hats[k, i]) - np.float64(f[i])
            g_f_hats[k, i] = scale * difference
            total += difference
        g_f[i] = -beta_scale * total


def multiscale_vq_loss_forward(f, f_hats, *, beta=0.25):
    flat_f = np.ascontiguousarray(f).reshape(-1)
    flat_hats = np.ascontiguousarray(f_hats).reshape(f_hats.shape[0], -1)
    partial = np.empty(-(-flat_f.size // BLOCK))
    _squares(flat_f, flat_hats, partial)
    loss = (1.0 + beta) / (f_hats.shape[0] * f.size) * partial.sum()
    return np.asarray(loss, dtype=f.dtype), (flat_f, flat_hats, f_hats.shape, beta)


def multiscale_vq_loss_backward(residuals, g_loss):
    flat_f, flat_hats, shape, beta = residuals
    scale = 2.0 * float(np.asarray(g_loss)) / (flat_hats.size)
    g_f = np.empty_like(flat_f)
    g_f_hats = np.empty_like(flat_hats)
    _backward(flat_f, flat_hats, scale, beta * scale, g_f, g_f_hats)
    return g_f.reshape(shape[1:]), g_f_hats.reshape(shape)


# -- multiscale_residual_quantize --------------------------------------------------------------
@parallel_kernel(fastmath={"reassoc"})
def _nearest_rows(rows, codes, indices):
    """argmin_v Σ_c (rows[n, c] − codes[v, c])² per row, float64, the first strict minimum."""
    count, width = codes.shape
    for n in prange(rows.shape[0]):
        best = 0
        best_distance = np.inf
        for v in range(count):
            distance = 0.0
            for c in range(width):
                difference = rows[n, c] - codes[v, c]
                distance += difference * difference
            if distance < best_distance:  # strict: the lowest index keeps a tie
                best_distance = distance
                best = v
        indices[n] = best


@parallel_kernel()
def _refine(h, conv, bias, rho, f_hat, rest, f_hat_out):
    """φ(h) = (1 − ρ)h + ρ(conv + b) per (b, c) plane; f̂ += φ(h), r −= φ(h), f̂_k written."""
    batch, channels, height, width = h.shape
    for plane in prange(batch * channels):
        b, c = plane // channels, plane % channels
        for y in range(height):
            for x in range(width):
                refined = (1.0 - rho) * h[b, c, y, x] + rho * (conv[b, c, y, x] + bias[c])
                f_hat[b, c, y, x] = f_hat[b, c, y, x] + refined
                rest[b, c, y, x] = rest[b, c, y, x] - refined
                f_hat_out[b, c, y, x] = f_hat[b, c, y, x]


@njit(cache=True)
def _scatter_rows(g_codebook, indices, rows):
    """Ē[idx[n]] += rows[n], rows in order (np.add.at's order: the same sums)."""
    for n in range(rows.shape[0]):
        v = indices[n]
        for c in range(rows.shape[1]):
            g_codebook[v, c] += rows[n, c]


def _resize(x, matrix):
    """``M x Mᵀ`` over the last two axes of x (..., n, n) → (..., m, m): two GEMMs over all
    planes at once (along W on the rows (planes·n, n), then along H on (n, planes·m))."""
    lead, size_in, size_out = x.shape[:-2], matrix.shape[1], matrix.shape[0]
    along_w = np.dot(x.reshape(-1, size_in), matrix.T)  # (planes·n, m)
    along_w = along_w.reshape(-1, size_in, size_out).transpose(1, 0, 2).reshape(size_in, -1)
    out = np.dot(matrix, along_w)  # (m, planes·m)
    return out.reshape(size_out, -1, size_out).transpose(1, 0, 2).reshape(*lead, size_out, size_out)


def _columns(x):
    """im2col of a 3×3, padding-1 correlation: (B, C, H, W) → (C·9, B·H·W), rows (i, dy, dx),
    columns (b, y, x)."""
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))  # (B,C,H,W,3,3)
    return windows.transpose(1, 4, 5, 0, 2, 3).reshape(x.shape[1] * 9, -1)


def _correlate(kernel, x):
    """Σ_{i,dy,dx} kernel[o, i, dy, dx]·x[b, i, y+dy−1, x+dx−1] as one GEMM, (B, O, H, W)."""
    out = np.dot(kernel.reshape(kernel.shape[0], -1), _columns(x))  # (O, B·H·W)
    return out.reshape(kernel.shape[0], x.shape[0], *x.shape[2:]).transpose(1, 0, 2, 3)


def multiscale_residual_quantize_forward(
    f, codebook, phi_weights, phi_biases, *, patch_nums=None, quant_resi=0.5, using_znorm=False
):
    dtype = f.dtype
    batch, channels, height, _ = f.shape
    scales = VAR_PATCH_NUMS if patch_nums is None else tuple(int(n) for n in patch_nums)
    count = len(scales)
    positions = phi_positions(count, phi_weights.shape[0])
    codes = np.ascontiguousarray(codebook, dtype=np.float64)
    weights = np.ascontiguousarray(phi_weights, dtype=np.float64)
    biases = np.ascontiguousarray(phi_biases, dtype=np.float64)
    rho = float(quant_resi)
    rest = np.array(f, dtype=np.float64)  # r_0 = f (a copy: updated in place)
    f_hat = np.zeros_like(rest)
    f_hats = np.empty((count, *f.shape), dtype=dtype)
    indices, chosen, upsampled, matrices = [], [], [], []
    for k, size in enumerate(scales):
        last = k == count - 1
        z = rest if last else _resize(rest, area_matrix(height, size))  # (B, C, pn, pn)
        z_rows = np.ascontiguousarray(z.transpose(0, 2, 3, 1)).reshape(-1, channels)  # rows (b, y, x)
        if using_znorm:
            idx = _nearest_cosine(z_rows, codes)
        else:
            idx = np.empty(z_rows.shape[0], dtype=np.int64)
            _nearest_rows(z_rows, codes, idx)
        e = codes[idx].reshape(batch, size, size, channels).transpose(0, 3, 1, 2)
        matrix = None if last else bicubic_matrix(size, height)
        h = np.ascontiguousarray(e if last else _resize(e, matrix))
        p = positions[k]
        conv = np.ascontiguousarray(_correlate(weights[p], h))
        _refine(h, conv, biases[p], rho, f_hat, rest, f_hats[k])
        indices.append(idx.reshape(batch, size * size))
        chosen.append(idx)
        upsampled.append(h)
        matrices.append(matrix)
    residuals = (chosen, upsampled, matrices, positions, weights, rho, codebook.shape, dtype)
    return (np.concatenate(indices, axis=1).astype(np.int64), f_hats[-1].copy(), f_hats), residuals


def multiscale_residual_quantize_backward(residuals, cotangents):
    chosen, upsampled, matrices, positions, weights, rho, codebook_shape, dtype = residuals
    _, g_f_hat, g_f_hats = cotangents
    shape = upsampled[-1].shape
    channels = codebook_shape[1]
    g_f = np.zeros(shape) if g_f_hat is None else np.asarray(g_f_hat, dtype=np.float64)  # 1. ST
    g_codebook = np.zeros(codebook_shape)
    g_weights = np.zeros_like(weights)
    g_biases = np.zeros(weights.shape[:2])
    if g_f_hats is not None:
        # 2. s_j = Σ_{k ≥ j} f̂̄_k: reverse cumulative sum over the scales
        g_f_hats = np.asarray(g_f_hats, dtype=np.float64)
        g_refined = np.flip(np.cumsum(np.flip(g_f_hats, axis=0), axis=0), axis=0)
        # the transposed convolutions: kernels flipped in (dy, dx), channel axes swapped
        adjoint_kernels = np.ascontiguousarray(weights[:, :, :, ::-1, ::-1].transpose(0, 2, 1, 3, 4))
        for j, (s, h, p) in enumerate(zip(g_refined, upsampled, positions, strict=True)):
            # 3. φ(h) = (1 − ρ)h + ρ(conv(h; W_p) + b_p)
            s_planes = s.transpose(1, 0, 2, 3).reshape(channels, -1)  # (O, B·H·W)
            g_biases[p] += rho * s_planes.sum(axis=1)
            g_weights[p] += rho * np.dot(s_planes, _columns(h).T).reshape(weights.shape[1:])
            g_h = (1.0 - rho) * s + rho * _correlate(adjoint_kernels[p], s)
            # 4. adjoint of the bicubic upsampling Uᵀ h̄ U (identity at the last scale)
            g_e = g_h if matrices[j] is None else _resize(g_h, matrices[j].T)
            # 5. scatter-add into the chosen codewords
            rows = np.ascontiguousarray(g_e.transpose(0, 2, 3, 1)).reshape(-1, channels)
            _scatter_rows(g_codebook, chosen[j], rows)
    return tuple(g.astype(dtype, copy=False) for g in (g_f, g_codebook, g_weights, g_biases))


IMPLS = {
    "multiscale_vq_loss": Impl(multiscale_vq_loss_forward, multiscale_vq_loss_backward),
    "multiscale_residual_quantize": Impl(
        multiscale_residual_quantize_forward, multiscale_residual_quantize_backward
    ),
}
