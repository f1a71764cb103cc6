"""Retention (parallel, recurrent, chunkwise) and the multi-scale retention layer: NumPy's
BLAS for the products, Numba for the masks, the scans and the GroupNorm/gate.

Mirrors ``refimpl/layers/retention.py``.

* Parallel form: the two N × N products ``Q Kᵀ`` and ``M V`` (and the backward's ``G Vᵀ``,
  ``S̄ K``, ``S̄ᵀ Q``, ``Mᵀ G``) are NumPy's batched BLAS matmuls; Numba applies the decay mask
  in place (serially, see ``_apply_decay``), ``S_nm ← S_nm·γ^(n−m)`` below the diagonal and
  0 above, read from a per-head table of powers ``γ^k`` (k = 0..N−1) instead of an (H, N, N)
  mask array and a product temporary.
* Recurrent form: one scan per (batch, head) and thread, the (d_k × d_v) state in the input
  dtype like the reference's (a float64 state made the float32 scan ~4x slower: the state rows
  no longer vectorize 8 wide); the backward runs the forward scan again for ``Q̄_n = g_n S_nᵀ``
  and the reverse scan for ``K̄``, ``V̄`` (no stored states).
* Chunkwise form: all chunks at once. The sequence is zero-padded to a whole number of
  chunks (exact: zero keys and values add nothing, the padded outputs are cut off) and
  reshaped to (B, H, C, L, d), so the inner products ``Q_[c] K_[c]ᵀ``, ``(·) V_[c]``, the chunk
  summaries ``K_[c]ᵀ diag(γ^(L−1−j)) V_[c]`` and the cross terms ``Q_[c] R_{c−1}`` are batched
  BLAS products over every chunk; only the C-step scan of the states (forward) and of their
  cotangents (backward) is sequential, on (B, H, d_k, d_v) arrays, and Numba masks the
  (L × L) blocks in place. The same computation written as Numba loops (one (batch, head)
  per thread, float64 accumulators) took ~1.1 s against ~0.2 s for the NumPy reference in one
  ``refimpl bench`` run at the benchmark size (N = 512, L = 64, d = 64): the work is in the
  products.
* ``multiscale_retention``: the projections and the retention products are BLAS; Numba masks
  and scales the scores in place while summing ``Σ_m |A_nm|`` (one pass), fuses GroupNorm
  (float64 statistics) with the swish gate, and the gate and GroupNorm cotangents into one pass
  per token; the score cotangent ``(Ā + s̄ sign A) ⊙ D`` is one in-place pass.

The powers ``γ^k = exp(k log γ)`` are computed in float64 (exp of a non-positive number:
underflow to 0, never overflow or 0·inf), as in the reference.

Measured with ``refimpl bench`` (B = 4, H = 8, N = 512, d = 64, chunk 64; the layer at B = 4,
N = 256, d_model = 512, H = 8; float32, forward + backward, median of 5, finiteness checks off,
2 cores shared with other jobs, so differences below ~30% are noise), NumPy / this / torch
(autograd; for the three retention ops torch runs the parallel form): parallel 111 / 78 / 98 ms,
recurrent 242 / 136 / 207, chunkwise 49 / 46 / 212, multiscale_retention 107 / 121 / 564.
Under heavier load the parallel form swung to 0.6–4 s on every backend: it is bound by the
N × N products and by first-touching their freshly allocated outputs.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


def _log_decay(gamma, num_heads):
    if gamma is None:
        return np.log1p(-(2.0 ** (-5.0 - np.arange(num_heads, dtype=np.float64))))
    return np.log(gamma.astype(np.float64))


def _powers(log_gamma, count):
    """``γ_h^k`` for k = 0..count−1: (H, count), float64."""
    return np.exp(np.arange(count, dtype=np.float64)[None, :] * log_gamma[:, None])


# -- parallel -----------------------------------------------------------------------------
@njit(cache=True)
def _apply_decay(scores, powers):
    """``scores[b, h, n, m] *= γ_h^(n−m)`` for m ≤ n, ``= 0`` for m > n, in place.

    Serial: it sits between BLAS products, and a ``prange`` version was ~3x slower there
    (12 vs 3.4 ms on (4, 8, 512, 512) float32, 2 shared cores), its workers competing with the
    BLAS threads.
    """
    batch, heads, length, _ = scores.shape
    for index in range(batch * heads):
        b, h = index // heads, index % heads
        for n in range(length):
            for m in range(n + 1):
                scores[b, h, n, m] *= powers[h, n - m]
            for m in range(n + 1, length):
                scores[b, h, n, m] = 0


def retention_parallel_forward(Q, K, V, gamma=None):
    powers = _powers(_log_decay(gamma, Q.shape[1]), Q.shape[2]).astype(Q.dtype)
    M = Q @ np.swapaxes(K, -1, -2)
    _apply_decay(M, powers)
    return M @ V, (Q, K, V, M, powers)


def retention_parallel_backward(residuals, g_O):
    Q, K, V, M, powers = residuals
    g_V = np.swapaxes(M, -1, -2) @ g_O
    g_S = g_O @ np.swapaxes(V, -1, -2)
    _apply_decay(g_S, powers)
    return g_S @ K, np.swapaxes(g_S, -1, -2) @ Q, g_V


# -- recurrent ----------------------------------------------------------------------------
@parallel_kernel()
def _recurrent_forward(Q, K, V, decay, O):
    batch, heads, length, d_k = Q.shape
    d_v = V.shape[-1]
    for index in prange(batch * heads):
        b, h = index // heads, index % heads
        g = Q.dtype.type(decay[h])
        state = np.zeros((d_k, d_v), Q.dtype)
        row = np.zeros(d_v, Q.dtype)
        for n in range(length):
            v = V[b, h, n]
            for i in range(d_k):  # S_n = γ S_{n−1} + k_nᵀ v_n, row by row (contiguous)
                k_i = K[b, h, n, i]
                for j in range(d_v):
                    state[i, j] = g * state[i, j] + k_i * v[j]
            row[:] = 0
            for i in range(d_k):  # o_n = q_n S_n as a sum of state rows
                q_i = Q[b, h, n, i]
                for j in range(d_v):
                    row[j] += q_i * state[i, j]
            O[b, h, n, :] = row


@parallel_kernel()
def _recurrent_backward(Q, K, V, decay, g_O, g_Q, g_K, g_V):
    batch, heads, length, d_k = Q.shape
    d_v = V.shape[-1]
    for index in prange(batch * heads):
        b, h = index // heads, index % heads
        g = Q.dtype.type(decay[h])
        # forward scan again: Q̄_n = g_n S_nᵀ
        state = np.zeros((d_k, d_v), Q.dtype)
        for n in range(length):
            v = V[b, h, n]
            g_o = g_O[b, h, n]
            for i in range(d_k):
                k_i = K[b, h, n, i]
                total = Q.dtype.type(0)
                for j in range(d_v):
                    state[i, j] = g * state[i, j] + k_i * v[j]
                    total += g_o[j] * state[i, j]
                g_Q[b, h, n, i] = total
        # reverse scan: A_n = γ A_{n+1} + q_nᵀ g_n; K̄_n = v_n A_nᵀ, V̄_n = k_n A_n
        g_state = np.zeros((d_k, d_v), Q.dtype)
        g_v_row = np.zeros(d_v, Q.dtype)
        for n in range(length - 1, -1, -1):
            v = V[b, h, n]
            g_o = g_O[b, h, n]
            g_v_row[:] = 0
            for i in range(d_k):
                q_i = Q[b, h, n, i]
                k_i = K[b, h, n, i]
                total = Q.dtype.type(0)
                for j in range(d_v):
                    g_state[i, j] = g * g_state[i, j] + q_i * g_o[j]
                    total += v[j] * g_state[i, j]
                    g_v_row[j] += k_i * g_state[i, j]
                g_K[b, h, n, i] = total
            g_V[b, h, n, :] = g_v_row


def retention_recurrent_forward(Q, K, V, gamma=None):
    decay = np.exp(_log_decay(gamma, Q.shape[1]))
    O = np.empty(V.shape, dtype=Q.dtype)
    _recurrent_forward(Q, K, V, decay, O)
    return O, (Q, K, V, decay)


def retention_recurrent_backward(residuals, g_O):
    Q, K, V, decay = residuals
    g_Q, g_K, g_V = np.empty_like(Q), np.empty_like(K), np.empty_like(V)
    _recurrent_backward(Q, K, V, decay, np.ascontiguousarray(g_O), g_Q, g_K, g_V)
    return g_Q, g_K, g_V


# -- chunkwise ----------------------------------------------------------------------------
def _blocks(a, chunk, chunks):
    """(B, H, N, d) -> (B, H, C, L, d), zero-padded at the end to C·L tokens.

    Zero keys and values add nothing to any state or output, and the padded outputs are cut
    off, so padding the last chunk is exact (its state update, which alone would see the
    padded length, is never used).
    """
    batch, heads, length, width = a.shape
    if chunks * chunk != length:
        padded = np.zeros((batch, heads, chunks * chunk, width), dtype=a.dtype)
        padded[:, :, :length] = a
        a = padded
    return a.reshape(batch, heads, chunks, chunk, width)


def _chunk_decays(gamma, heads, chunk, chunks, dtype):
    powers = _powers(_log_decay(gamma, heads), chunk + 1)  # γ^k, k = 0..L (float64)
    mask_powers = np.repeat(powers[:, :chunk], chunks, axis=0).astype(dtype)  # per (head, chunk)
    query_decay = powers[:, 1:][None, :, None, :, None].astype(dtype)  # γ^(j+1)
    value_decay = powers[:, chunk - 1 :: -1][:, :chunk][None, :, None, :, None].astype(dtype)  # γ^(L−1−j)
    chunk_decay = powers[:, chunk][None, :, None, None].astype(dtype)  # γ^L
    return mask_powers, query_decay, value_decay, chunk_decay


def retention_chunkwise_forward(Q, K, V, gamma=None, *, chunk_size):
    batch, heads, length, _ = Q.shape
    chunk = min(chunk_size, length)
    chunks = -(-length // chunk)
    mask_powers, query_decay, value_decay, chunk_decay = _chunk_decays(gamma, heads, chunk, chunks, Q.dtype)
    q, k, v = (_blocks(a, chunk, chunks) for a in (Q, K, V))
    scores = q @ np.swapaxes(k, -1, -2)  # (B, H, C, L, L)
    _apply_decay(scores.reshape(batch, heads * chunks, chunk, chunk), mask_powers)
    summaries = np.swapaxes(k, -1, -2) @ (value_decay * v)  # K_[c]ᵀ diag(γ^(L−1−j)) V_[c]
    states = np.empty_like(summaries)  # R_{c−1}
    state = np.zeros_like(summaries[:, :, 0])
    for c in range(chunks):
        states[:, :, c] = state
        state = chunk_decay * state + summaries[:, :, c]
    O = scores @ v + query_decay * (q @ states)
    O = O.reshape(batch, heads, chunks * chunk, -1)[:, :, :length]
    residuals = (q, k, v, scores, states, mask_powers, query_decay, value_decay, chunk_decay, length)
    return np.ascontiguousarray(O), residuals


def retention_chunkwise_backward(residuals, g_O):
    q, k, v, scores, states, mask_powers, query_decay, value_decay, chunk_decay, length = residuals
    batch, heads, chunks, chunk, _ = q.shape
    g = _blocks(g_O, chunk, chunks)
    g_S = g @ np.swapaxes(v, -1, -2)
    _apply_decay(g_S.reshape(batch, heads * chunks, chunk, chunk), mask_powers)
    g_cross = query_decay * g
    # R̄_{c−1} = γ^L R̄_c + Q_[c]ᵀ diag(γ^(j+1)) G_[c], from the last chunk back (R̄_last = 0)
    contributions = np.swapaxes(q, -1, -2) @ g_cross
    g_states = np.empty_like(contributions)  # R̄_c
    g_state = np.zeros_like(contributions[:, :, 0])
    for c in range(chunks - 1, -1, -1):
        g_states[:, :, c] = g_state
        g_state = chunk_decay * g_state + contributions[:, :, c]
    g_q = g_S @ k + g_cross @ np.swapaxes(states, -1, -2)
    g_k = np.swapaxes(g_S, -1, -2) @ q + (value_decay * v) @ np.swapaxes(g_states, -1, -2)
    g_v = np.swapaxes(scores, -1, -2) @ g + value_decay * (k @ g_states)
    return tuple(
        np.ascontiguousarray(a.reshape(batch, heads, chunks * chunk, -1)[:, :, :length])
        for a in (g_q, g_k, g_v)
    )


# -- multiscale_retention ------------------------------------------------------------------
@njit(cache=True)
def _decay_scale_and_abs_sums(scores, powers, row_scale, abs_sums):
    """In place ``A_nm = S_nm·γ^(n−m)·row_scale[h, n]`` (0 above the diagonal); ``abs_sums[b, h, n]``
    receives ``Σ_m |A_nm|`` (float64). Serial, between BLAS products (see ``_apply_decay``)."""
    batch, heads, length, _ = scores.shape
    for index in range(batch * heads):
        b, h = index // heads, index % heads
        for n in range(length):
            scale = row_scale[h, n]
            total = 0.0
            for m in range(n + 1):
                value = scores[b, h, n, m] * (powers[h, n - m] * scale)
                scores[b, h, n, m] = value
                total += abs(value)
            for m in range(n + 1, length):
                scores[b, h, n, m] = 0
            abs_sums[b, h, n] = total


@njit(cache=True)
def _score_cotangent(g_A, A, g_s, powers, row_scale):
    """In place ``S̄ = (Ā + s̄_n sign(A_nm)) ⊙ D`` (D with its row scale; 0 above the diagonal)."""
    batch, heads, length, _ = g_A.shape
    for index in range(batch * heads):
        b, h = index // heads, index % heads
        for n in range(length):
            scale = row_scale[h, n]
            g_scale = g_s[b, h, n]
            for m in range(n + 1):
                a = A[b, h, n, m]
                sign = 1.0 if a > 0 else (-1.0 if a < 0 else 0.0)
                g_A[b, h, n, m] = (g_A[b, h, n, m] + g_scale * sign) * (powers[h, n - m] * scale)
            for m in range(n + 1, length):
                g_A[b, h, n, m] = 0


@parallel_kernel()
def _group_norm_gate(O, U, eps, Z, mean, rstd):
    """Per (b, n, head): GroupNorm of O[b, h, n, :] (float64 statistics, two-pass), times the
    swish gate of U[b, n, h·d_v + j], into Z[b, n, h·d_v + j]."""
    batch, heads, length, width = O.shape
    for index in prange(batch * length):
        b, n = index // length, index % length
        for h in range(heads):
            total = 0.0
            for j in range(width):
                total += O[b, h, n, j]
            mu = total / width
            squares = 0.0
            for j in range(width):
                centered = O[b, h, n, j] - mu
                squares += centered * centered
            r = 1.0 / np.sqrt(squares / width + eps)
            mean[b, h, n] = mu
            rstd[b, h, n] = r
            for j in range(width):
                u = float(U[b, n, h * width + j])
                gate = u / (1.0 + np.exp(-u))
                Z[b, n, h * width + j] = gate * ((O[b, h, n, j] - mu) * r)


@parallel_kernel()
def _group_norm_gate_backward(O, U, mean, rstd, g_Z, g_O, g_U):
    """``Ū = Z̄ ⊙ Ô ⊙ swish'(U)`` and ``Ō = rstd·(Ô̄ − mean Ô̄ − Ô mean(Ô̄ Ô))``, ``Ô̄ = Z̄ ⊙ swish(U)``."""
    batch, heads, length, width = O.shape
    for index in prange(batch * length):
        b, n = index // length, index % length
        for h in range(heads):
            mu = mean[b, h, n]
            r = rstd[b, h, n]
            sum_g = 0.0
            sum_g_hat = 0.0
            for j in range(width):
                c = h * width + j
                u = float(U[b, n, c])
                sigma = 1.0 / (1.0 + np.exp(-u))
                o_hat = (O[b, h, n, j] - mu) * r
                g_z = float(g_Z[b, n, c])
                g_U[b, n, c] = g_z * o_hat * (sigma * (1.0 + u * (1.0 - sigma)))
                g_o_hat = g_z * u * sigma
                sum_g += g_o_hat
                sum_g_hat += g_o_hat * o_hat
            mean_g = sum_g / width
            mean_g_hat = sum_g_hat / width
            for j in range(width):
                c = h * width + j
                u = float(U[b, n, c])
                sigma = 1.0 / (1.0 + np.exp(-u))
                o_hat = (O[b, h, n, j] - mu) * r
                g_o_hat = float(g_Z[b, n, c]) * u * sigma
                g_O[b, h, n, j] = r * (g_o_hat - mean_g - o_hat * mean_g_hat)


def _split_heads(a, heads):
    batch, length, width = a.shape
    return np.ascontiguousarray(a.reshape(batch, length, heads, width // heads).transpose(0, 2, 1, 3))


def _merge_rows(a):
    """(B, H, N, d) -> (B·N, H·d)."""
    batch, heads, length, width = a.shape
    return a.transpose(0, 2, 1, 3).reshape(batch * length, heads * width)


def multiscale_retention_forward(
    x, W_Q, W_K, W_V, W_G, W_O, gamma=None, *, num_heads, eps, normalize_decay, normalize_scores
):
    dtype = x.dtype
    batch, length, width = x.shape
    x_rows = x.reshape(-1, width)
    Q, K, V = (_split_heads((x_rows @ W.T).reshape(batch, length, -1), num_heads) for W in (W_Q, W_K, W_V))
    U = (x_rows @ W_G.T).reshape(batch, length, -1)
    powers = _powers(_log_decay(gamma, num_heads), length)  # γ^k, float64
    if normalize_decay:  # row n of D sums to Σ_{k≤n} γ^k
        row_scale = 1 / np.sqrt(np.cumsum(powers, axis=1))
    else:
        row_scale = np.ones_like(powers)
    # the reference rounds D_nm = γ^(n−m)·row_scale to the dtype once: so do the kernels
    A = Q @ np.swapaxes(K, -1, -2)
    abs_sums = np.empty(A.shape[:-1])
    _decay_scale_and_abs_sums(A, powers.astype(dtype), row_scale.astype(dtype), abs_sums)
    O = A @ V
    s = None
    if normalize_scores:
        s = np.maximum(abs_sums, 1.0).astype(dtype)[..., None]
        O /= s
    Z = np.empty_like(U)
    mean = np.empty(A.shape[:-1])
    rstd = np.empty(A.shape[:-1])
    _group_norm_gate(O, U, float(eps), Z, mean, rstd)
    y = (Z.reshape(-1, Z.shape[-1]) @ W_O.T).reshape(batch, length, width)
    residuals = (x_rows, W_Q, W_K, W_V, W_G, W_O, Q, K, V, U, A, O, s, mean, rstd, Z, powers, row_scale)
    return y, residuals


def multiscale_retention_backward(residuals, g_y):
    x_rows, W_Q, W_K, W_V, W_G, W_O, Q, K, V, U, A, O, s, mean, rstd, Z, powers, row_scale = residuals
    dtype = x_rows.dtype
    batch, heads, length, _ = Q.shape
    g_rows = np.ascontiguousarray(g_y).reshape(-1, W_O.shape[0])
    g_W_O = g_rows.T @ Z.reshape(-1, Z.shape[-1])
    g_Z = (g_rows @ W_O).reshape(U.shape)
    g_O = np.empty_like(O)
    g_U = np.empty_like(U)
    _group_norm_gate_backward(O, U, mean, rstd, g_Z, g_O, g_U)
    if s is None:
        g_P = g_O
        g_s = np.zeros(A.shape[:-1], dtype=dtype)
    else:
        g_P = g_O / s
        g_s = -(g_O * O).sum(axis=-1, keepdims=True) / s
        g_s = np.where(s > 1, g_s, 0)[..., 0].astype(dtype)  # the clamp max(·, 1) is active
    g_V = np.swapaxes(A, -1, -2) @ g_P
    g_S = g_P @ np.swapaxes(V, -1, -2)
    _score_cotangent(g_S, A, g_s, powers.astype(dtype), row_scale.astype(dtype))
    g_Q = g_S @ K
    g_K = np.swapaxes(g_S, -1, -2) @ Q
    g_Q_rows, g_K_rows, g_V_rows = (_merge_rows(g) for g in (g_Q, g_K, g_V))
    g_U_rows = g_U.reshape(-1, g_U.shape[-1])
    g_x = g_Q_rows @ W_Q
    g_x += g_K_rows @ W_K
    g_x += g_V_rows @ W_V
    g_x += g_U_rows @ W_G
    g_weights = [g.T @ x_rows for g in (g_Q_rows, g_K_rows, g_V_rows, g_U_rows)]
    return (g_x.reshape(batch, length, -1), *g_weights, g_W_O)


IMPLS = {
    "retention_parallel": Impl(retention_parallel_forward, retention_parallel_backward),
    "retention_recurrent": Impl(retention_recurrent_forward, retention_recurrent_backward),
    "retention_chunkwise": Impl(retention_chunkwise_forward, retention_chunkwise_backward),
    "multiscale_retention": Impl(multiscale_retention_forward, multiscale_retention_backward),
}
