"""Linear self-attention and the GD++ layer: NumPy's BLAS for the products, Numba for the
residual passes.

Mirrors ``refimpl/layers/linear_self_attention.py`` (``lsa_gd_construction`` is a one-off
construction and stays reference-only).

``linear_self_attention`` is evaluated through the context's (D × D) second-moment matrix
``S = E_Nᵀ E_N`` per batch element instead of the projected tokens: since ``K = E_N W_Kᵀ`` and
``V = E_N W_Vᵀ``, ``G = Vᵀ K = W_V S W_Kᵀ``, and ``out = E + Q Gᵀ Pᵀ = E + E Mᵀ`` with
``M = P G W_Q`` (D, D). The backward reuses the same reassociation: with ``Ē`` the cotangent
and ``A = Ēᵀ E`` (D, D)::

    Ḡ = Pᵀ A W_Qᵀ,  P̄ = Σ_b A W_Qᵀ Gᵀ,  W̄_Q = Σ_b Gᵀ Pᵀ A
    W̄_K = Σ_b Ḡᵀ W_V S,  W̄_V = Σ_b Ḡ W_K S
    Ē_in = Ē + Ē M,  context rows + E_N (R + Rᵀ),  R = W_Vᵀ Ḡ W_K

(``K̄ W_K = V Ḡ W_K = E_N W_Vᵀ Ḡ W_K`` and ``V̄ W_V = K Ḡᵀ W_V = E_N Rᵀ``). The token-length
products are then ``E_Nᵀ E_N`` and ``E Mᵀ`` forward, ``Ēᵀ E``, ``Ē M`` and ``E_N (R + Rᵀ)``
backward, all batched BLAS matmuls; the rest is (D × D)-sized. A Numba row-parallel pass adds
the residual (``out += E``, ``Ē_in += Ē``).

``gd_plus_plus_layer``: ``C = E_Nᵀ E_N / N`` and ``X C`` by BLAS, then one Numba pass forms
``X − γ X C`` in place (the backward likewise ``Ȳ − γ Ȳ C``).
"""

from __future__ import annotations

from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@parallel_kernel()
def _add_scaled_rows(target, source, scale):
    """``target ← source + scale · target`` over (B, T, D), parallel over the B·T rows."""
    batch, length, width = target.shape
    s = target.dtype.type(scale)
    for index in prange(batch * length):
        b, t = index // length, index % length
        for j in range(width):
            target[b, t, j] = source[b, t, j] + s * target[b, t, j]


def _t(a):
    return a.swapaxes(-1, -2)


# -- linear self-attention ----------------------------------------------------------------
def linear_self_attention_forward(E, W_Q, W_K, W_V, P, *, num_context):
    context = E[:, :num_context]
    S = _t(context) @ context  # (B, D, D)
    G = W_V @ S @ W_K.T  # Vᵀ K
    M = P @ G @ W_Q  # out = E + E Mᵀ
    out = E @ _t(M)
    _add_scaled_rows(out, E, 1.0)
    return out, (E, W_Q, W_K, W_V, P, S, G, M, num_context)


def linear_self_attention_backward(residuals, g_out):
    E, W_Q, W_K, W_V, P, S, G, M, num_context = residuals
    context = E[:, :num_context]
    A = _t(g_out) @ E  # Ēᵀ E (B, D, D)
    A_WQt = A @ W_Q.T
    g_G = P.T @ A_WQt  # Pᵀ Ēᵀ Q
    g_P = (A_WQt @ _t(G)).sum(axis=0)
    g_W_Q = (_t(G) @ P.T @ A).sum(axis=0)
    g_W_K = (_t(g_G) @ W_V @ S).sum(axis=0)
    g_W_V = (g_G @ W_K @ S).sum(axis=0)
    R = W_V.T @ g_G @ W_K
    g_E = g_out @ M
    g_E[:, :num_context] += context @ (R + _t(R))
    _add_scaled_rows(g_E, g_out, 1.0)
    return g_E, g_W_Q, g_W_K, g_W_V, g_P


# -- GD++ ---------------------------------------------------------------------------------
def gd_plus_plus_layer_forward(X, *, gamma, num_context):
    context = X[:, :num_context]
    C = _t(context) @ context / X.dtype.type(num_context)
    out = X @ C
    _add_scaled_rows(out, X, -gamma)  # X − γ X C
    return out, (X, C, gamma, num_context)


def gd_plus_plus_layer_backward(residuals, g_out):
    X, C, gamma, num_context = residuals
    g_C = _t(X) @ g_out  # C̄ / (−γ)
    g_X = g_out @ C
    _add_scaled_rows(g_X, g_out, -gamma)  # Ȳ − γ Ȳ C
    scale = X.dtype.type(-gamma / num_context)
    g_X[:, :num_context] += X[:, :num_context] @ ((g_C + _t(g_C)) * scale)
    return (g_X,)


IMPLS = {
    "linear_self_attention": Impl(linear_self_attention_forward, linear_self_attention_backward),
    "gd_plus_plus_layer": Impl(gd_plus_plus_layer_forward, gd_plus_plus_layer_backward),
}
