"""OLinear's OrthoTrans transform and NormLin on CuPy: cuBLAS products, fused elementwise kernels.

Mirrors ``refimpl/layers/olinear.py`` (``orthotrans_basis`` is a one-off construction and stays
reference-only). ``orthotrans_transform``: ``y = x Qᵀ + δ`` is one ``matmul`` plus the offset;
δ̄ a column sum. ``normlin``: one fused kernel for ``softplus(W)``, the row sums, ``A = S/r``;
``Y = A V`` and the backward's ``V̄ = Aᵀ G``, ``G_A = G Vᵀ`` are ``matmul`` over the batch;
one fused kernel for ``W̄ = (G_A − ⟨G_A, A⟩_row)/r ⊙ sigmoid(W)``.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of

ROW_NORM_EPS = 1e-12  # torch.nn.functional.normalize's clamp, as the reference


def _kernels(xp, fuse):
    @fuse
    def softplus(u):
        return xp.maximum(u, 0) + xp.log1p(xp.exp(-abs(u)))

    @fuse
    def weight_grad(w, g_a, inner, r):
        e = xp.exp(-abs(w))
        slope = xp.where(w >= 0, 1 / (1 + e), e / (1 + e))
        return (g_a - inner) / r * slope

    return SimpleNamespace(softplus=softplus, weight_grad=weight_grad)


kernels_for = kernel_set(_kernels)


def orthotrans_transform_forward(x, q, offset, *, inverse=False):
    xp = xp_of(x)
    y = xp.matmul(x, q if inverse else q.T) + offset
    return y, (q, inverse, x.shape)


def orthotrans_transform_backward(residuals, g_y):
    q, inverse, shape = residuals
    xp = xp_of(g_y)
    g_x = xp.matmul(g_y, q.T if inverse else q)
    return g_x, g_y.reshape(-1, shape[-1]).sum(axis=0)


def normlin_forward(w, v):
    xp = xp_of(w)
    s = kernels_for(w).softplus(w)
    r = xp.maximum(s.sum(axis=1, keepdims=True), ROW_NORM_EPS)
    a = s / r
    return xp.matmul(a, v), (w, a, r, v)


def normlin_backward(residuals, g_y):
    w, a, r, v = residuals
    xp = xp_of(w)
    n, d = a.shape[0], v.shape[-1]
    g_v = xp.matmul(a.T, g_y)
    g_a = xp.matmul(g_y.reshape(-1, n, d), xp.swapaxes(v.reshape(-1, n, d), 1, 2)).sum(axis=0)
    inner = xp.where(r > ROW_NORM_EPS, (g_a * a).sum(axis=1, keepdims=True), 0)
    return kernels_for(w).weight_grad(w, g_a, inner, r), g_v


IMPLS = {
    "orthotrans_transform": Impl(orthotrans_transform_forward, orthotrans_transform_backward),
    "normlin": Impl(normlin_forward, normlin_backward),
}
