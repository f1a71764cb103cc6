"""Bone's block-affine layer and MiSS on CuPy: cuBLAS products and fused elementwise passes.

Mirrors ``refimpl/adapters/bone.py``. Every matrix product goes through ``xp.matmul``
(cuBLAS on a GPU; the per-row-block products ``slab_a(W) B_a`` and ``slab_a(W)ᵀ slab_a(G)``
as one batched call). The elementwise tails are one fused kernel each: the merge
``W' = W + slab(W) B + B_a`` (B broadcast over the column-blocks through the 4-d block view,
no copy), the bias add, ``B̄ = slab(W)ᵀ slab(G) + Σ_j G_{a,j}``, and for MiSS the output
``x Wᵀ + s B + b``. The MiSS fold sums the whole r-blocks of x through a reshape and adds
the ragged tail separately (no padded copy); its adjoint adds ``s̄`` broadcast over the
blocks of x̄ in place.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def add3(first, second, third):
        return first + second + third

    @fuse
    def add(left, right):
        return left + right

    return SimpleNamespace(add3=add3, add=add)


kernels_for = kernel_set(_kernels)


def _blocks4(weight, rank):
    out_features, in_features = weight.shape
    return weight.reshape(out_features // rank, rank, in_features // rank, rank)


def bone_block_affine_forward(x, W, B, bias=None):
    xp = xp_of(x)
    k = kernels_for(x)
    out_features, in_features = W.shape
    rank = B.shape[-1]
    W = xp.ascontiguousarray(W)
    product = xp.matmul(W.reshape(out_features // rank, -1, rank), B)  # slab_a(W) B_a
    W_merged = k.add3(
        _blocks4(W, rank), _blocks4(product.reshape(out_features, in_features), rank), B[:, :, None, :]
    )
    W_merged = W_merged.reshape(out_features, in_features)
    y = xp.matmul(x, W_merged.T)
    if bias is not None:
        y = k.add(y, bias)
    return y, (x, W, W_merged, rank)


def bone_block_affine_backward(residuals, g_y):
    x, W, W_merged, rank = residuals
    xp = xp_of(x)
    k = kernels_for(x)
    out_features, in_features = W.shape
    g_rows = g_y.reshape(-1, out_features)
    x_rows = x.reshape(-1, in_features)
    g_x = xp.matmul(g_rows, W_merged)
    G = xp.ascontiguousarray(xp.matmul(g_rows.T, x_rows))  # ∂L/∂W'
    blocks = out_features // rank
    product = xp.matmul(W.reshape(blocks, -1, rank).transpose(0, 2, 1), G.reshape(blocks, -1, rank))
    g_B = k.add(product, xp.sum(_blocks4(G, rank), axis=2))  # + Σ_j G_{a,j}
    return g_x.reshape(x.shape), g_B


def _fold(xp, x, rank):
    """``s[..., c] = Σ_{i mod r = c} x[..., i]``: whole blocks by a reshape, the ragged tail added."""
    in_features = x.shape[-1]
    whole = in_features - in_features % rank
    s = xp.zeros((*x.shape[:-1], rank), dtype=x.dtype)
    if whole:
        s += xp.sum(x[..., :whole].reshape(*x.shape[:-1], whole // rank, rank), axis=-2)
    if whole < in_features:
        s[..., : in_features - whole] += x[..., whole:]
    return s


def miss_shared_block_forward(x, W, B, bias=None):
    xp = xp_of(x)
    k = kernels_for(x)
    rank = B.shape[0]
    s = _fold(xp, x, rank)
    if bias is None:
        y = k.add(xp.matmul(x, W.T), xp.matmul(s, B))
    else:
        y = k.add3(xp.matmul(x, W.T), xp.matmul(s, B), bias)
    return y, (x, W, B, s)


def miss_shared_block_backward(residuals, g_y):
    x, W, B, s = residuals
    xp = xp_of(x)
    rank, out_features = B.shape
    in_features = W.shape[1]
    g_rows = g_y.reshape(-1, out_features)
    g_B = xp.matmul(s.reshape(-1, rank).T, g_rows)
    g_s = xp.matmul(g_rows, B.T)  # s̄ = g Bᵀ, (T, r)
    g_x = xp.matmul(g_rows, W)  # fresh, C-contiguous: the fold's adjoint is added in place
    whole = in_features - in_features % rank
    if whole:
        g_x[:, :whole].reshape(-1, whole // rank, rank)[...] += g_s[:, None, :]
    if whole < in_features:
        g_x[:, whole:] += g_s[:, : in_features - whole]
    return g_x.reshape(x.shape), g_B


IMPLS = {
    "bone_block_affine": Impl(bone_block_affine_forward, bone_block_affine_backward),
    "miss_shared_block": Impl(miss_shared_block_forward, miss_shared_block_backward),
}
