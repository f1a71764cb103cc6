"""Linear self-attention and the GD++ layer on CuPy: cuBLAS products, fused residual kernels.

Mirrors ``refimpl/layers/linear_self_attention.py`` (``lsa_gd_construction`` is a one-off
construction and stays reference-only). The same reassociation as the Numba module: the context
enters through ``S = E_Nᵀ E_N`` (D × D), ``G = W_V S W_Kᵀ``, ``M = P G W_Q``,
``out = E + E Mᵀ``; backward with ``A = Ēᵀ E``: ``Ḡ = Pᵀ A W_Qᵀ``, ``P̄ = Σ A W_Qᵀ Gᵀ``,
``W̄_Q = Σ Gᵀ Pᵀ A``, ``W̄_K = Σ Ḡᵀ W_V S``, ``W̄_V = Σ Ḡ W_K S``,
``Ē_in = Ē + Ē M`` (+ ``E_N (R + Rᵀ)``, ``R = W_Vᵀ Ḡ W_K``, on the context rows). GD++:
``out = X − γ X C``, ``C = E_Nᵀ E_N / N``. Every product is a batched ``xp.matmul``.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def add_scaled(source, scale, values):
        return source + scale * values

    return SimpleNamespace(add_scaled=add_scaled)


kernels_for = kernel_set(_kernels)


def _t(a):
    return a.swapaxes(-1, -2)


def linear_self_attention_forward(E, W_Q, W_K, W_V, P, *, num_context):
    xp, k = xp_of(E), kernels_for(E)
    context = E[:, :num_context]
    S = xp.matmul(_t(context), context)
    G = xp.matmul(xp.matmul(W_V, S), W_K.T)
    M = xp.matmul(xp.matmul(P, G), W_Q)
    out = k.add_scaled(E, E.dtype.type(1), xp.matmul(E, _t(M)))
    return out, (E, W_Q, W_K, W_V, P, S, G, M, num_context)


def linear_self_attention_backward(residuals, g_out):
    E, W_Q, W_K, W_V, P, S, G, M, num_context = residuals
    xp, k = xp_of(E), kernels_for(E)
    context = E[:, :num_context]
    A = xp.matmul(_t(g_out), E)
    A_WQt = xp.matmul(A, W_Q.T)
    g_G = xp.matmul(P.T, A_WQt)
    g_P = xp.matmul(A_WQt, _t(G)).sum(axis=0)
    g_W_Q = xp.matmul(xp.matmul(_t(G), P.T), A).sum(axis=0)
    g_W_K = xp.matmul(xp.matmul(_t(g_G), W_V), S).sum(axis=0)
    g_W_V = xp.matmul(xp.matmul(g_G, W_K), S).sum(axis=0)
    R = xp.matmul(xp.matmul(W_V.T, g_G), W_K)
    g_E = k.add_scaled(g_out, E.dtype.type(1), xp.matmul(g_out, M))
    g_E[:, :num_context] += xp.matmul(context, R + _t(R))
    return g_E, g_W_Q, g_W_K, g_W_V, g_P


def gd_plus_plus_layer_forward(X, *, gamma, num_context):
    xp, k = xp_of(X), kernels_for(X)
    context = X[:, :num_context]
    C = xp.matmul(_t(context), context) / X.dtype.type(num_context)
    out = k.add_scaled(X, X.dtype.type(-gamma), xp.matmul(X, C))
    return out, (X, C, gamma, num_context)


def gd_plus_plus_layer_backward(residuals, g_out):
    X, C, gamma, num_context = residuals
    xp, k = xp_of(X), kernels_for(X)
    g_C = xp.matmul(_t(X), g_out)  # C̄ / (−γ)
    g_X = k.add_scaled(g_out, X.dtype.type(-gamma), xp.matmul(g_out, C))
    scale = X.dtype.type(-gamma / num_context)
    g_X[:, :num_context] += xp.matmul(X[:, :num_context], (g_C + _t(g_C)) * scale)
    return (g_X,)


IMPLS = {
    "linear_self_attention": Impl(linear_self_attention_forward, linear_self_attention_backward),
    "gd_plus_plus_layer": Impl(gd_plus_plus_layer_forward, gd_plus_plus_layer_backward),
}
