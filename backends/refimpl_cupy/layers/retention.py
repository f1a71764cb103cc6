"""Retention (parallel, recurrent, chunkwise) on CuPy: cuBLAS products and fused decay kernels.

Mirrors ``refimpl/layers/retention.py``. Every product is a batched ``xp.matmul`` over
(batch, head); the decay mask ``D_nm = γ^(n−m)`` (n ≥ m, else 0) is one fused kernel from the
distance and ``log γ`` (float64, exponent clamped to 0 above the diagonal and then selected
away: no overflow, no 0·inf), and ``(Q Kᵀ) ⊙ D`` another. The recurrent form is a loop over
tokens of batched rank-one updates of the (B, H, d_k, d_v) state; the chunkwise form a loop
over chunks of batched products, the states ``R_{c−1}`` kept as residuals.
``multiscale_retention`` composes the parallel form with a fused GroupNorm, swish gate and
their cotangents; its products are cuBLAS matmuls.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

from refimpl.authoring import Impl, row_norm

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def decay_mask(distance, log_gamma):
        causal = distance >= 0
        return xp.where(causal, xp.exp(xp.where(causal, distance, 0.0) * log_gamma), 0.0)

    @fuse
    def masked(scores, mask):
        return scores * mask

    @fuse
    def decayed_update(state, decay, update):
        return decay * state + update

    @fuse
    def add_scaled(base, scale, values):
        return base + scale * values

    @fuse
    def gated(u, o_hat):
        return u / (1 + xp.exp(-u)) * o_hat

    @fuse
    def gate_cotangents(u, o_hat, g_z):
        """(Ô̄, Ū): Z̄ ⊙ swish(u) and Z̄ ⊙ Ô ⊙ swish'(u), swish'(u) = σ(u)(1 + u(1 − σ(u)))."""
        sigma = 1 / (1 + xp.exp(-u))
        return g_z * u * sigma, g_z * o_hat * (sigma * (1 + u * (1 - sigma)))

    @fuse
    def normalize(values, mean, rstd):
        return (values - mean) * rstd

    @fuse
    def group_norm_grad(g_hat, o_hat, rstd, mean_g, mean_g_hat):
        return rstd * (g_hat - mean_g - o_hat * mean_g_hat)

    @fuse
    def score_cotangent(g_a, g_s, sign, mask):
        return (g_a + g_s * sign) * mask

    return SimpleNamespace(
        decay_mask=decay_mask,
        masked=masked,
        decayed_update=decayed_update,
        add_scaled=add_scaled,
        gated=gated,
        gate_cotangents=gate_cotangents,
        normalize=normalize,
        group_norm_grad=group_norm_grad,
        score_cotangent=score_cotangent,
    )


kernels_for = kernel_set(_kernels)


def _log_decay(xp, gamma, num_heads):
    if gamma is None:
        return xp.log1p(-(2.0 ** (-5.0 - xp.arange(num_heads, dtype=xp.float64))))
    return xp.log(gamma.astype(xp.float64))


def _mask(xp, k, log_gamma, rows, cols=None):
    """(H, rows, cols) float64 decay mask."""
    cols = rows if cols is None else cols
    distance = (xp.arange(rows)[:, None] - xp.arange(cols)[None, :]).astype(xp.float64)
    return k.decay_mask(distance[None], log_gamma[:, None, None])


def _powers(xp, log_gamma, exponents):
    """γ_h^k for float64 exponents k ≥ 0: (H, len(k), 1)."""
    return xp.exp(exponents[None, :] * log_gamma[:, None])[..., None]


def _t(a):
    return a.swapaxes(-1, -2)


# -- parallel -----------------------------------------------------------------------------
def retention_parallel_forward(Q, K, V, gamma=None):
    xp, k = xp_of(Q), kernels_for(Q)
    D = _mask(xp, k, _log_decay(xp, gamma, Q.shape[1]), Q.shape[2]).astype(Q.dtype)
    M = k.masked(xp.matmul(Q, _t(K)), D)
    return xp.matmul(M, V), (Q, K, V, D, M)


def retention_parallel_backward(residuals, g_O):
    Q, K, V, D, M = residuals
    xp, k = xp_of(Q), kernels_for(Q)
    g_V = xp.matmul(_t(M), g_O)
    g_S = k.masked(xp.matmul(g_O, _t(V)), D)
    return xp.matmul(g_S, K), xp.matmul(_t(g_S), Q), g_V


# -- recurrent ----------------------------------------------------------------------------
def retention_recurrent_forward(Q, K, V, gamma=None):
    xp, k = xp_of(Q), kernels_for(Q)
    batch, heads, length, d_k = Q.shape
    decay = xp.exp(_log_decay(xp, gamma, heads)).astype(Q.dtype)[None, :, None, None]
    state = xp.zeros((batch, heads, d_k, V.shape[-1]), dtype=Q.dtype)
    O = xp.empty(V.shape, dtype=Q.dtype)
    for n in range(length):
        state = k.decayed_update(state, decay, K[:, :, n, :, None] * V[:, :, n, None, :])
        O[:, :, n] = xp.matmul(Q[:, :, n, None, :], state)[:, :, 0]
    return O, (Q, K, V, decay)


def retention_recurrent_backward(residuals, g_O):
    Q, K, V, decay = residuals
    xp, k = xp_of(Q), kernels_for(Q)
    batch, heads, length, d_k = Q.shape
    g_Q, g_K, g_V = xp.empty_like(Q), xp.empty_like(K), xp.empty_like(V)
    state = xp.zeros((batch, heads, d_k, V.shape[-1]), dtype=Q.dtype)
    for n in range(length):  # forward scan: Q̄_n = g_n S_nᵀ
        state = k.decayed_update(state, decay, K[:, :, n, :, None] * V[:, :, n, None, :])
        g_Q[:, :, n] = xp.matmul(g_O[:, :, n, None, :], _t(state))[:, :, 0]
    g_state = xp.zeros_like(state)
    for n in range(length - 1, -1, -1):  # reverse scan: A_n = γ A_{n+1} + Q_nᵀ g_n
        g_state = k.decayed_update(g_state, decay, Q[:, :, n, :, None] * g_O[:, :, n, None, :])
        g_K[:, :, n] = xp.matmul(V[:, :, n, None, :], _t(g_state))[:, :, 0]
        g_V[:, :, n] = xp.matmul(K[:, :, n, None, :], g_state)[:, :, 0]
    return g_Q, g_K, g_V


# -- chunkwise ----------------------------------------------------------------------------
def _chunk_factors(xp, k, log_gamma, size, dtype):
    local = xp.arange(size, dtype=xp.float64)
    D = _mask(xp, k, log_gamma, size).astype(dtype)
    query_decay = _powers(xp, log_gamma, local + 1).astype(dtype)  # γ^(j+1)
    value_decay = _powers(xp, log_gamma, size - 1 - local).astype(dtype)  # γ^(L−1−j)
    chunk_decay = xp.exp(size * log_gamma).astype(dtype)[:, None, None]  # γ^L
    return D, query_decay, value_decay, chunk_decay


def _chunks(length, chunk_size):
    return [(start, min(start + chunk_size, length)) for start in range(0, length, chunk_size)]


def retention_chunkwise_forward(Q, K, V, gamma=None, *, chunk_size):
    xp, k = xp_of(Q), kernels_for(Q)
    batch, heads, length, d_k = Q.shape
    log_gamma = _log_decay(xp, gamma, heads)
    state = xp.zeros((batch, heads, d_k, V.shape[-1]), dtype=Q.dtype)
    O = xp.empty(V.shape, dtype=Q.dtype)
    states = []
    for start, stop in _chunks(length, chunk_size):
        D, query_decay, value_decay, chunk_decay = _chunk_factors(xp, k, log_gamma, stop - start, Q.dtype)
        q, key, v = Q[:, :, start:stop], K[:, :, start:stop], V[:, :, start:stop]
        inner = xp.matmul(k.masked(xp.matmul(q, _t(key)), D), v)
        O[:, :, start:stop] = k.add_scaled(inner, query_decay, xp.matmul(q, state))
        states.append(state)
        state = k.decayed_update(state, chunk_decay, xp.matmul(_t(key), value_decay * v))
    return O, (Q, K, V, log_gamma, chunk_size, states)


def retention_chunkwise_backward(residuals, g_O):
    Q, K, V, log_gamma, chunk_size, states = residuals
    xp, k = xp_of(Q), kernels_for(Q)
    g_Q, g_K, g_V = xp.empty_like(Q), xp.empty_like(K), xp.empty_like(V)
    g_state = xp.zeros_like(states[0])
    chunks = _chunks(Q.shape[2], chunk_size)
    for index in range(len(chunks) - 1, -1, -1):
        start, stop = chunks[index]
        D, query_decay, value_decay, chunk_decay = _chunk_factors(xp, k, log_gamma, stop - start, Q.dtype)
        q, key, v, g = Q[:, :, start:stop], K[:, :, start:stop], V[:, :, start:stop], g_O[:, :, start:stop]
        M = k.masked(xp.matmul(q, _t(key)), D)
        g_S = k.masked(xp.matmul(g, _t(v)), D)
        g_cross = query_decay * g
        g_Q[:, :, start:stop] = xp.matmul(g_S, key) + xp.matmul(g_cross, _t(states[index]))
        g_K[:, :, start:stop] = xp.matmul(_t(g_S), q) + xp.matmul(value_decay * v, _t(g_state))
        g_V[:, :, start:stop] = xp.matmul(_t(M), g) + value_decay * xp.matmul(key, g_state)
        g_state = k.decayed_update(g_state, chunk_decay, xp.matmul(_t(q), g_cross))
    return g_Q, g_K, g_V


# -- multiscale_retention ------------------------------------------------------------------
def _split_heads(xp, a, heads):
    batch, length, width = a.shape
    return xp.ascontiguousarray(a.reshape(batch, length, heads, width // heads).transpose(0, 2, 1, 3))


def _merge_heads(a):
    batch, heads, length, width = a.shape
    return a.transpose(0, 2, 1, 3).reshape(batch, length, heads * width)


def multiscale_retention_forward(
    x, W_Q, W_K, W_V, W_G, W_O, gamma=None, *, num_heads, eps, normalize_decay, normalize_scores
):
    xp, k = xp_of(x), kernels_for(x)
    Q, K, V = (_split_heads(xp, xp.matmul(x, W.T), num_heads) for W in (W_Q, W_K, W_V))
    U = xp.matmul(x, W_G.T)
    D = _mask(xp, k, _log_decay(xp, gamma, num_heads), x.shape[1])
    if normalize_decay:
        D = D / xp.sqrt(D.sum(axis=-1, keepdims=True))
    D = D.astype(x.dtype)
    A = k.masked(xp.matmul(Q, _t(K)), D)
    O = xp.matmul(A, V)
    s = None
    if normalize_scores:
        s = xp.maximum(xp.abs(A).sum(axis=-1, keepdims=True), x.dtype.type(1))
        O = O / s
    mean = O.mean(axis=-1, keepdims=True)
    centered = O - mean
    variance = (centered * centered).mean(axis=-1, keepdims=True)
    rstd = 1 / xp.sqrt(variance + x.dtype.type(eps))
    overflow = ~xp.isfinite(variance)  # float32 squares overflowed: σ computed scaled, as the reference
    if bool(overflow.any()):
        rstd = xp.where(overflow, math.sqrt(O.shape[-1]) / row_norm(centered), rstd).astype(x.dtype)
    O_hat = _merge_heads(k.normalize(O, mean, rstd))
    Z = k.gated(U, O_hat)
    y = xp.matmul(Z, W_O.T)
    return y, (x, W_Q, W_K, W_V, W_G, W_O, Q, K, V, U, D, A, O, s, O_hat, rstd, Z)


def multiscale_retention_backward(residuals, g_y):
    x, W_Q, W_K, W_V, W_G, W_O, Q, K, V, U, D, A, O, s, O_hat, rstd, Z = residuals
    xp, k = xp_of(x), kernels_for(x)
    heads, width = Q.shape[1], x.shape[-1]
    g_W_O = xp.matmul(g_y.reshape(-1, width).T, Z.reshape(-1, Z.shape[-1]))
    g_hat, g_U = k.gate_cotangents(U, O_hat, xp.matmul(g_y, W_O))
    g_hat, O_hat_heads = _split_heads(xp, g_hat, heads), _split_heads(xp, O_hat, heads)
    mean_g = g_hat.mean(axis=-1, keepdims=True)
    mean_g_hat = (g_hat * O_hat_heads).mean(axis=-1, keepdims=True)
    g_O = k.group_norm_grad(g_hat, O_hat_heads, rstd, mean_g, mean_g_hat)
    if s is None:
        g_P = g_O
        g_S = k.masked(xp.matmul(g_P, _t(V)), D)
    else:
        g_P = g_O / s
        g_s = -(g_O * O).sum(axis=-1, keepdims=True) / s
        g_s = xp.where(s > 1, g_s, 0).astype(x.dtype)  # the clamp max(·, 1) is active
        g_S = k.score_cotangent(xp.matmul(g_P, _t(V)), g_s, xp.sign(A), D)
    g_V = xp.matmul(_t(A), g_P)
    g_Q = xp.matmul(g_S, K)
    g_K = xp.matmul(_t(g_S), Q)
    x_rows = x.reshape(-1, width)
    g_rows = [_merge_heads(g).reshape(x_rows.shape[0], -1) for g in (g_Q, g_K, g_V)]
    g_rows.append(g_U.reshape(x_rows.shape[0], -1))
    g_x = sum(xp.matmul(g, W) for g, W in zip(g_rows, (W_Q, W_K, W_V, W_G), strict=True))
    g_weights = [xp.matmul(g.T, x_rows) for g in g_rows]
    return (g_x.reshape(x.shape), *g_weights, g_W_O)


IMPLS = {
    "retention_parallel": Impl(retention_parallel_forward, retention_parallel_backward),
    "retention_recurrent": Impl(retention_recurrent_forward, retention_recurrent_backward),
    "retention_chunkwise": Impl(retention_chunkwise_forward, retention_chunkwise_backward),
    "multiscale_retention": Impl(multiscale_retention_forward, multiscale_retention_backward),
}
