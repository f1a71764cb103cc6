"""CGS's transition matrix on CuPy: a scatter into the dense (H, n, n) matrices.

Mirrors ``refimpl/solvers/cgs.py``. Degree normalization: ``clip(ℓ, 0, 1)/deg(src)`` per edge
(one fused kernel), scattered to ``A[:, src, dst]``; the backward gathers ``Ā[:, src, dst]`` and
masks it with ``0 ≤ ℓ ≤ 1``. Softmax: the logits scattered into a dense (H, n, n) array filled
with −inf, a row softmax with the row max subtracted (rows without edges stay 0), and its
VJP ``A(Ā − Σ_t AĀ)`` gathered back per edge. ``cgs_fixed_point`` stays reference-only.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def degree_values(logits, degree):
        return xp.minimum(xp.maximum(logits, 0), 1) / degree

    @fuse
    def degree_grad(logits, g_values, degree):
        return xp.where((logits >= 0) & (logits <= 1), g_values / degree, 0)

    return SimpleNamespace(degree_values=degree_values, degree_grad=degree_grad)


kernels_for = kernel_set(_kernels)


def cgs_transition_matrix_forward(edge_logits, src, dst, *, num_nodes, normalization="degree"):
    xp = xp_of(edge_logits)
    dtype = edge_logits.dtype
    heads = edge_logits.shape[1]
    if normalization == "degree":
        degree = xp.bincount(src, minlength=num_nodes).astype(dtype)[src][:, None]
        a = xp.zeros((heads, num_nodes, num_nodes), dtype=dtype)
        a[:, src, dst] = kernels_for(edge_logits).degree_values(edge_logits, degree).T
        return a, ("degree", edge_logits, src, dst, degree)
    dense = xp.full((heads, num_nodes, num_nodes), -xp.inf, dtype=dtype)
    dense[:, src, dst] = edge_logits.T
    largest = dense.max(axis=2, keepdims=True)
    largest = xp.where(xp.isfinite(largest), largest, 0)  # rows without edges: exp(−inf) = 0
    e = xp.exp(dense - largest)
    sums = e.sum(axis=2, keepdims=True)
    a = e / xp.where(sums > 0, sums, 1)
    return a.astype(dtype, copy=False), ("softmax", a, src, dst, None)


def cgs_transition_matrix_backward(residuals, g_a):
    kind, saved, src, dst, degree = residuals
    if kind == "degree":
        g_values = g_a[:, src, dst].T.astype(saved.dtype, copy=False)
        return (kernels_for(saved).degree_grad(saved, g_values, degree).astype(saved.dtype, copy=False),)
    a = saved
    g_dense = a * (g_a - (a * g_a).sum(axis=2, keepdims=True))
    return (g_dense[:, src, dst].T.astype(a.dtype, copy=False),)


IMPLS = {"cgs_transition_matrix": Impl(cgs_transition_matrix_forward, cgs_transition_matrix_backward)}
