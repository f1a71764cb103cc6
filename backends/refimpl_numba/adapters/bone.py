"""Bone's block-affine layer and MiSS: NumPy's BLAS for the products, fused Numba epilogues.

Mirrors ``refimpl/adapters/bone.py``. The dense products (``x W'ᵀ``, ``g W'``, ``G = gᵀ x``,
the batched ``slab_a(W) B_a`` and ``slab_a(W)ᵀ slab_a(G)``; for MiSS ``x Wᵀ``, ``s B``,
``g W``, ``g Bᵀ``, ``Sᵀ g``) are NumPy matmuls (multithreaded OpenBLAS). What Numba fuses
are the elementwise passes the reference writes as several temporaries:

* Bone forward: ``W' = W + slab(W) B + B_a`` (broadcast over column-blocks) in one pass,
  in place over the product (the reference makes three (out, in) temporaries);
* Bone backward: the block sum ``Σ_j G_{a,j}`` added into ``B̄`` in one pass over G, row
  by row (the reference sums a strided 4-d view, then adds);
* MiSS forward: the fold ``s_c = Σ_j x[j·r + c]`` straight from x, no padded copy;
* MiSS backward: the fold's adjoint ``x̄[t, i] += s̄[t, i mod r]`` in place (no tiled copy).

Block sums and folds accumulate in the input dtype, as the reference's sums do. The inner
loops run over one r-wide block (contiguous, no ``i mod r`` per entry), so they vectorize; a
first version indexing ``totals[i % r]`` per entry was 4× slower than NumPy's reshaped sum.
The kernels are serial, as in ``lora.py``: on the 2 shared cores they were measured on,
``parallel=True`` lost (fold 20 vs 13 ms, block sum 8 vs 0.6 ms at (8192, 1024), r = 64),
the idle OpenMP workers waiting on the BLAS threads and on other load.

At the benchmark size (x (8192, 1024), W (1024, 1024), r = 64, float32, forward + backward)
the three (T, out, in) products are ~95% of the time: Bone 2479 ms NumPy, 3056 ms Numba,
2546 ms torch; MiSS 2611 / 2725 / 2136 ms, measured with a load average of ~8 on 2 cores,
so the differences are noise-level. The epilogues alone: fold 13 vs 14 ms (NumPy), block
sum 0.6 vs 0.4 ms, and no (T, in) padded or tiled copy.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from refimpl.authoring import Impl


@njit(cache=True)
def _merge_in_place(product, W, B):
    """``product[o, i] += W[o, i] + B[o // r, o % r, i mod r]``: W' from ``slab(W) B``."""
    out_features, in_features = W.shape
    rank = B.shape[2]
    for o in range(out_features):
        block, p = o // rank, o % rank
        for start in range(0, in_features, rank):  # column-block j: the inner loop vectorizes
            for q in range(rank):
                product[o, start + q] += W[o, start + q] + B[block, p, q]


@njit(cache=True)
def _add_block_sums(g_B, G):
    """``g_B[a, p, q] += Σ_j G[a·r + p, j·r + q]``, one row of G at a time."""
    blocks, rank, _ = g_B.shape
    in_features = G.shape[1]
    for row in range(blocks * rank):
        block, p = row // rank, row % rank
        for start in range(0, in_features, rank):
            for q in range(rank):
                g_B[block, p, q] += G[row, start + q]


@njit(cache=True)
def _fold(x, s):
    """``s[t, c] = Σ_{i mod r = c} x[t, i]``: x folded onto r coordinates (zero padding implied)."""
    rows, in_features = x.shape
    rank = s.shape[1]
    whole = in_features - in_features % rank
    for t in range(rows):
        for c in range(rank):
            s[t, c] = 0.0
        for start in range(0, whole, rank):  # whole blocks: the inner loop vectorizes
            for c in range(rank):
                s[t, c] += x[t, start + c]
        for c in range(in_features - whole):  # the ragged tail (the padded block)
            s[t, c] += x[t, whole + c]


@njit(cache=True)
def _add_tiled(g_x, g_s):
    """``g_x[t, i] += g_s[t, i mod r]``: the fold's adjoint, in place."""
    rows, in_features = g_x.shape
    rank = g_s.shape[1]
    whole = in_features - in_features % rank
    for t in range(rows):
        for start in range(0, whole, rank):
            for c in range(rank):
                g_x[t, start + c] += g_s[t, c]
        for c in range(in_features - whole):
            g_x[t, whole + c] += g_s[t, c]


def bone_block_affine_forward(x, W, B, bias=None):
    out_features, in_features = W.shape
    rank = B.shape[-1]
    W = np.ascontiguousarray(W)
    B = np.ascontiguousarray(B)
    slabs = W.reshape(out_features // rank, -1, rank)  # (out/r, r·in/r, r)
    W_merged = np.matmul(slabs, B).reshape(out_features, in_features)  # slab_a(W) B_a, fresh
    _merge_in_place(W_merged, W, B)  # += W + B_a
    x_rows = np.ascontiguousarray(x).reshape(-1, in_features)
    y = x_rows @ W_merged.T
    if bias is not None:
        y += bias
    return y.reshape(*x.shape[:-1], out_features), (x_rows, W, W_merged, rank, x.shape)


def bone_block_affine_backward(residuals, g_y):
    x_rows, W, W_merged, rank, x_shape = residuals
    out_features, in_features = W.shape
    g_rows = np.ascontiguousarray(g_y).reshape(-1, out_features)
    g_x = g_rows @ W_merged
    G = g_rows.T @ x_rows  # ∂L/∂W', C-contiguous (out, in)
    blocks = out_features // rank
    g_B = np.matmul(W.reshape(blocks, -1, rank).transpose(0, 2, 1), G.reshape(blocks, -1, rank))
    _add_block_sums(g_B, G)  # += Σ_j G_{a,j}
    return g_x.reshape(x_shape), g_B


def miss_shared_block_forward(x, W, B, bias=None):
    rank, out_features = B.shape
    in_features = W.shape[1]
    x_rows = np.ascontiguousarray(x).reshape(-1, in_features)
    s = np.empty((x_rows.shape[0], rank), dtype=x.dtype)
    _fold(x_rows, s)
    y = x_rows @ W.T
    y += s @ B
    if bias is not None:
        y += bias
    return y.reshape(*x.shape[:-1], out_features), (W, B, s, x.shape)


def miss_shared_block_backward(residuals, g_y):
    W, B, s, x_shape = residuals
    g_rows = np.ascontiguousarray(g_y).reshape(-1, B.shape[1])
    g_B = s.T @ g_rows
    g_x = g_rows @ W
    _add_tiled(g_x, g_rows @ B.T)  # += s̄[i mod r], s̄ = g Bᵀ
    return g_x.reshape(x_shape), g_B


IMPLS = {
    "bone_block_affine": Impl(bone_block_affine_forward, bone_block_affine_backward),
    "miss_shared_block": Impl(miss_shared_block_forward, miss_shared_block_backward),
}
