"""Retention in its parallel, recurrent and chunkwise forms, and the gated multi-scale retention
layer (ViR: Vision Retention Networks, after RetNet)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..authoring import (
    ArgumentError,
    Flag,
    FloatArray,
    IntScalar,
    Paper,
    RealScalar,
    array_namespace,
    op,
    row_norm,
    sigmoid,
)

__all__ = [
    "PAPER",
    "multiscale_retention",
    "retention_chunkwise",
    "retention_decay",
    "retention_parallel",
    "retention_recurrent",
]
EXPORTS = ("retention_decay",)  # a helper exported by refimpl.layers beside the ops

PAPER = Paper("ViR: Vision Retention Networks", arxiv="2310.19731", year=2023)


# -- the decay ----------------------------------------------------------------------------
def retention_decay(num_heads: int) -> np.ndarray:
    """RetNet's per-head decays ``γ_h = 1 − 2^(−5−h)``, h = 0..H−1 (float64, shape (H,)).

    torchscale's ``RetNetRelPos``: ``decay = log(1 − 2 ** (−5 − arange(H)))``; the first head
    forgets fastest (γ_0 = 31/32), each next head halves the forgetting rate.
    """
    return 1.0 - 2.0 ** (-5.0 - np.arange(num_heads, dtype=np.float64))


def _log_decay(gamma: np.ndarray | None, num_heads: int) -> np.ndarray:
    """``log γ`` per head in float64 (log1p for the default: no cancellation in 1 − 2^−k)."""
    if gamma is None:
        return np.log1p(-(2.0 ** (-5.0 - np.arange(num_heads, dtype=np.float64))))
    return np.log(np.asarray(gamma, dtype=np.float64))


def _decay_powers(log_gamma: np.ndarray, exponents: np.ndarray) -> np.ndarray:
    """``γ_h^k = exp(k log γ_h)`` for integer ``k ≥ 0``, shape (H, *exponents.shape), float64.

    exp of a non-positive number: it underflows to 0 for long distances, never overflows, and a
    γ = 1 head gives exp(0) = 1 exactly.
    """
    return np.exp(exponents[None, ...] * log_gamma.reshape((-1,) + (1,) * exponents.ndim))


def _decay_mask(log_gamma: np.ndarray, rows: int, cols: int | None = None) -> np.ndarray:
    """``D_nm = γ^(n−m)`` for n ≥ m, else 0: (H, rows, cols), float64.

    The exponent is clamped to 0 above the diagonal and the entry then selected away. Masking
    the exponent with +inf instead (torchscale's ``masked_fill(…, inf)``, then ``exp`` and
    ``nan_to_num``) gives ``inf·0 = NaN`` for γ = 1, and the unmasked ``exp((n − m) log γ)``
    overflows for n < m.
    """
    cols = rows if cols is None else cols
    distance = np.arange(rows)[:, None] - np.arange(cols)[None, :]
    causal = distance >= 0
    powers = _decay_powers(log_gamma, np.where(causal, distance, 0).astype(np.float64))
    return np.where(causal[None], powers, 0.0)


def _check_gamma(arguments: Mapping[str, Any]) -> None:
    gamma = arguments.get("gamma")
    if gamma is None:
        return
    xp = array_namespace(gamma)
    bad = ~((gamma > 0) & (gamma <= 1))
    if bool(xp.any(bad)):
        head = int(xp.argmax(bad))
        raise ArgumentError(
            "gamma",
            "decays 0 < γ ≤ 1 per head (γ > 1 grows without bound; γ ≤ 0 has no log)",
            f"γ = {float(gamma[head])!r} for head {head}",
        )


_RETENTION_INPUTS = {
    "Q": FloatArray("B", "H", "N", "Dk"),
    "K": FloatArray("B", "H", "N", "Dk"),
    "V": FloatArray("B", "H", "N", "Dv"),
    "gamma": FloatArray("H", optional=True),
}


# -- the parallel form --------------------------------------------------------------------
@op(
    inputs=_RETENTION_INPUTS,
    outputs=("O",),
    differentiable=("Q", "K", "V"),
    check=_check_gamma,
)
def retention_parallel(Q, K, V, gamma=None):
    r"""Retention, parallel form: causal linear attention weighted by a per-head exponential decay.

    Retention replaces softmax attention by a causal score ``Q_n·K_m`` discounted by ``γ^(n−m)``:
    a token keeps what it has seen, fading geometrically with distance. Because the discount
    factorizes (``γ^(n−m) = γ^n γ^(−m)``), the same output is a recurrence over a fixed-size
    state (:func:`retention_recurrent`) and a chunk-by-chunk mixture (:func:`retention_chunkwise`);
    this form computes all N × N scores at once, for training.

    Forward, per batch element and head h (Q, K (N, d_k), V (N, d_v))::

        D_nm = γ_h^(n−m) if n ≥ m else 0         (N, N)   computed as exp((n − m) log γ_h)
        M    = (Q Kᵀ) ⊙ D                         (N, N)
        O    = M V                                (N, d_v)

    ``D`` is built in float64 as ``exp((n − m)·log γ)`` with the exponent clamped to 0 above the
    diagonal and those entries then selected to 0 (no ``0·inf``, no overflow), and cast to the
    input dtype. For long sequences ``γ^(n−m)`` underflows to 0: the output stays finite.

    Backward. Let ``G = ∂L/∂O``. ``O = M V`` is a matrix product, so ``V̄ = Mᵀ G`` and
    ``M̄ = G Vᵀ``. ``M = S ⊙ D`` with ``S = Q Kᵀ`` and D constant, so ``S̄ = M̄ ⊙ D``. Finally
    ``S_nm = Σ_i Q_ni K_mi`` gives ``Q̄ = S̄ K`` and ``K̄ = S̄ᵀ Q``::

        S̄ = (G Vᵀ) ⊙ D,   Q̄ = S̄ K,   K̄ = S̄ᵀ Q,   V̄ = ((Q Kᵀ) ⊙ D)ᵀ G

    Conventions: no scaling of K by d_k^(−½) and no xPos/rotary on Q, K (RetNet applies both
    before retention; they are separate steps the caller does). ViR puts the class token at the
    END of the sequence, so that it retains every patch.

    Args:
        Q: queries (B, H, N, d_k), float32 or float64.
        K: keys (B, H, N, d_k).
        V: values (B, H, N, d_v).
        gamma: decay per head (H,), each 0 < γ ≤ 1; None (default): RetNet's
            ``γ_h = 1 − 2^(−5−h)`` (:func:`retention_decay`; torchscale's constants, which ViR
            builds on). Other schedules are passed here.

    Returns:
        O: (B, H, N, d_v), the dtype of Q.

    Reference: Hatamizadeh, Ranzinger and Kautz, *ViR: Vision Retention Networks*,
    arXiv:2310.19731 (official code announced in NVlabs/ViR, not released); the retention it
    builds on: Sun et al., *Retentive Network: A Successor to Transformer for Large Language
    Models*, arXiv:2307.08621 (semantics and decay constants of microsoft/torchscale,
    torchscale/component/multiscale_retention.py and torchscale/architecture/retnet.py).

    >>> import numpy as np, refimpl
    >>> ones = np.ones((1, 1, 2, 1))  # Q = K = V = 1, γ = 0.5: D = [[1, 0], [0.5, 1]]
    >>> refimpl.layers.retention_parallel(ones, ones, ones, np.array([0.5])).ravel()
    array([1. , 1.5])
    """
    dtype = Q.dtype
    D = _decay_mask(_log_decay(gamma, Q.shape[1]), Q.shape[2]).astype(dtype)
    M = (Q @ np.swapaxes(K, -1, -2)) * D
    O = M @ V
    return O, (Q, K, V, D, M)


@retention_parallel.defvjp
def retention_parallel_backward(residuals, g_O):
    Q, K, V, D, M = residuals
    g_V = np.swapaxes(M, -1, -2) @ g_O
    g_S = (g_O @ np.swapaxes(V, -1, -2)) * D
    g_Q = g_S @ K
    g_K = np.swapaxes(g_S, -1, -2) @ Q
    return g_Q, g_K, g_V


# -- the recurrent form -------------------------------------------------------------------
@op(
    inputs=_RETENTION_INPUTS,
    outputs=("O",),
    differentiable=("Q", "K", "V"),
    check=_check_gamma,
)
def retention_recurrent(Q, K, V, gamma=None):
    r"""Retention, recurrent form: a (d_k × d_v) state per head, decayed and updated token by token.

    The same function as :func:`retention_parallel`, evaluated as an RNN: memory is constant
    in N, the form ViR uses for fast autoregressive inference.

    Forward, per batch element and head (γ its decay), for n = 0..N−1::

        S_n = γ S_{n−1} + K_nᵀ V_n      (d_k, d_v),  S_{−1} = 0
        o_n = Q_n S_n                   (d_v,)

    Unrolling, ``S_n = Σ_{m≤n} γ^(n−m) K_mᵀ V_m``, so ``o_n = Σ_{m≤n} γ^(n−m) (Q_n·K_m) V_m``:
    the parallel form's row n. The state is accumulated in the input dtype.

    Backward (reverse-time scan). Let ``G`` (rows g_n) be the cotangent of O. ``o_n = Q_n S_n``
    gives ``Q̄_n = g_n S_nᵀ`` and a direct contribution ``Q_nᵀ g_n`` to ``S̄_n``. The state
    ``S_n`` also feeds ``S_{n+1} = γ S_n + …``, so its total cotangent is accumulated backwards::

        A_n = γ A_{n+1} + Q_nᵀ g_n      (A_N = 0)        the cotangent of S_n
        K̄_n = V_n A_nᵀ,   V̄_n = K_n A_n                  (from S_n ∋ K_nᵀ V_n)
        Q̄_n = g_n S_nᵀ

    The code runs the forward scan again for ``Q̄`` (no stored states), then the reverse scan.

    Args:
        Q: queries (B, H, N, d_k), float32 or float64.
        K: keys (B, H, N, d_k).
        V: values (B, H, N, d_v).
        gamma: decay per head (H,), 0 < γ ≤ 1; None (default): ``γ_h = 1 − 2^(−5−h)``.

    Returns:
        O: (B, H, N, d_v), equal to :func:`retention_parallel` up to rounding.

    Reference: Hatamizadeh, Ranzinger and Kautz, *ViR: Vision Retention Networks*,
    arXiv:2310.19731 (recurrent formulation); the retention it builds
    on: Sun et al., *Retentive Network: A Successor to Transformer for Large Language Models*,
    arXiv:2307.08621 (semantics and decay constants of microsoft/torchscale,
    torchscale/component/multiscale_retention.py and torchscale/architecture/retnet.py, ``RetNetRelPos``).

    >>> import numpy as np, refimpl
    >>> ones = np.ones((1, 1, 3, 1))  # S = 1, 1.5, 1.75 with γ = 0.5
    >>> refimpl.layers.retention_recurrent(ones, ones, ones, np.array([0.5])).ravel()
    array([1.  , 1.5 , 1.75])
    """
    dtype = Q.dtype
    batch, heads, length, d_k = Q.shape
    decay = np.exp(_log_decay(gamma, heads)).astype(dtype)[None, :, None, None]
    state = np.zeros((batch, heads, d_k, V.shape[-1]), dtype=dtype)
    O = np.empty(V.shape, dtype=dtype)
    for n in range(length):
        state = decay * state + K[:, :, n, :, None] * V[:, :, n, None, :]
        O[:, :, n] = (Q[:, :, n, None, :] @ state)[:, :, 0]
    return O, (Q, K, V, decay)


@retention_recurrent.defvjp
def retention_recurrent_backward(residuals, g_O):
    Q, K, V, decay = residuals
    batch, heads, length, d_k = Q.shape
    g_Q, g_K, g_V = np.empty_like(Q), np.empty_like(K), np.empty_like(V)
    # forward scan again: Q̄_n = g_n S_nᵀ
    state = np.zeros((batch, heads, d_k, V.shape[-1]), dtype=Q.dtype)
    for n in range(length):
        state = decay * state + K[:, :, n, :, None] * V[:, :, n, None, :]
        g_Q[:, :, n] = (g_O[:, :, n, None, :] @ np.swapaxes(state, -1, -2))[:, :, 0]
    # reverse scan: A_n = γ A_{n+1} + Q_nᵀ g_n, the cotangent of S_n
    g_state = np.zeros_like(state)
    for n in range(length - 1, -1, -1):
        g_state = decay * g_state + Q[:, :, n, :, None] * g_O[:, :, n, None, :]
        g_K[:, :, n] = (V[:, :, n, None, :] @ np.swapaxes(g_state, -1, -2))[:, :, 0]
        g_V[:, :, n] = (K[:, :, n, None, :] @ g_state)[:, :, 0]
    return g_Q, g_K, g_V


# -- the chunkwise form -------------------------------------------------------------------
def _chunks(length: int, chunk_size: int) -> list[tuple[int, int]]:
    """(start, stop) of each chunk; the last one is shorter when chunk_size does not divide N."""
    return [(start, min(start + chunk_size, length)) for start in range(0, length, chunk_size)]


@op(
    inputs={**_RETENTION_INPUTS, "chunk_size": IntScalar(1)},
    outputs=("O",),
    differentiable=("Q", "K", "V"),
    check=_check_gamma,
)
def retention_chunkwise(Q, K, V, gamma=None, *, chunk_size):
    r"""Retention, chunkwise form: parallel inside chunks of L tokens, recurrent across them.

    The same function as :func:`retention_parallel`: within a chunk the scores are computed in
    parallel (L × L), and the chunks before it are summarized by a (d_k × d_v) state carried
    from chunk to chunk — linear in N, parallel within a chunk (ViR's fast high-resolution
    mode, RetNet's training form for long sequences).

    Forward, per batch element and head (decay γ), chunk c holding tokens cL … cL + L_c − 1
    (L_c = L except for a shorter last chunk when L does not divide N), local index
    j = 0..L_c−1::

        D_jk   = γ^(j−k) if j ≥ k else 0                        (L_c, L_c)
        O_[c]  = (Q_[c] K_[c]ᵀ ⊙ D) V_[c]  +  diag(γ^(j+1)) Q_[c] R_{c−1}
        R_c    = K_[c]ᵀ diag(γ^(L_c−1−j)) V_[c]  +  γ^(L_c) R_{c−1},      R_{−1} = 0

    ``R_c`` is the recurrent state after chunk c (``S_{cL+L_c−1}`` of :func:`retention_recurrent`);
    the first term is retention inside the chunk, the second what the earlier tokens contribute
    (token j of the chunk is j + 1 steps after the state's last token). All powers of γ are
    ``exp(k log γ)`` computed in float64 (underflow to 0 is harmless).

    Backward (reverse scan over chunks). With ``G_[c]`` the cotangent of ``O_[c]`` and
    ``R̄_c`` that of ``R_c`` (``R̄_{last} = 0``), going from the last chunk to the first:

    1. inside the chunk, as in the parallel form: ``S̄ = (G_[c] V_[c]ᵀ) ⊙ D``,
       ``Q̄_[c] += S̄ K_[c]``, ``K̄_[c] += S̄ᵀ Q_[c]``, ``V̄_[c] += (Q_[c] K_[c]ᵀ ⊙ D)ᵀ G_[c]``;
    2. the cross term ``diag(ζ) Q_[c] R_{c−1}`` (ζ_j = γ^(j+1)): ``Q̄_[c] += diag(ζ) G_[c] R_{c−1}ᵀ``
       and ``R̄_{c−1} += Q_[c]ᵀ diag(ζ) G_[c]``;
    3. the state update (ξ_j = γ^(L_c−1−j)): ``K̄_[c] += diag(ξ) V_[c] R̄_cᵀ``,
       ``V̄_[c] += diag(ξ) K_[c] R̄_c``, ``R̄_{c−1} += γ^(L_c) R̄_c``.

    So ``R̄_{c−1} = γ^(L_c) R̄_c + Q_[c]ᵀ diag(ζ) G_[c]``. The states ``R_{c−1}`` are the
    forward's residuals.

    Args:
        Q: queries (B, H, N, d_k), float32 or float64.
        K: keys (B, H, N, d_k).
        V: values (B, H, N, d_v).
        gamma: decay per head (H,), 0 < γ ≤ 1; None (default): ``γ_h = 1 − 2^(−5−h)``.
        chunk_size: chunk length L ≥ 1, required (a memory/speed choice that leaves the result
            unchanged, so no default is assumed). L = 1 is the recurrent form, L ≥ N the
            parallel one; L need not divide N (the last chunk is shorter; torchscale pads the
            sequence to a multiple of L instead, which gives the same outputs).

    Returns:
        O: (B, H, N, d_v), equal to :func:`retention_parallel` up to rounding.

    Reference: Hatamizadeh, Ranzinger and Kautz, *ViR: Vision Retention Networks*,
    arXiv:2310.19731 (chunkwise formulation); the retention it builds
    on: Sun et al., *Retentive Network: A Successor to Transformer for Large Language Models*,
    arXiv:2307.08621 (semantics and decay constants of microsoft/torchscale,
    torchscale/component/multiscale_retention.py and torchscale/architecture/retnet.py, ``RetNetRelPos``).

    >>> import numpy as np, refimpl
    >>> ones = np.ones((1, 1, 3, 1))  # chunks [0, 1] and [2]: o_2 = 1 + 0.5·R_0 = 1 + 0.5·1.5
    >>> refimpl.layers.retention_chunkwise(ones, ones, ones, np.array([0.5]), chunk_size=2).ravel()
    array([1.  , 1.5 , 1.75])
    """
    dtype = Q.dtype
    batch, heads, length, d_k = Q.shape
    log_gamma = _log_decay(gamma, heads)
    state = np.zeros((batch, heads, d_k, V.shape[-1]), dtype=dtype)
    O = np.empty(V.shape, dtype=dtype)
    states = []  # R_{c−1} for every chunk c
    for start, stop in _chunks(length, chunk_size):
        size = stop - start
        local = np.arange(size, dtype=np.float64)
        D = _decay_mask(log_gamma, size).astype(dtype)
        query_decay = _decay_powers(log_gamma, local + 1).astype(dtype)[:, :, None]  # γ^(j+1)
        value_decay = _decay_powers(log_gamma, size - 1 - local).astype(dtype)[:, :, None]  # γ^(L−1−j)
        chunk_decay = np.exp(size * log_gamma).astype(dtype)[:, None, None]  # γ^L
        q, k, v = Q[:, :, start:stop], K[:, :, start:stop], V[:, :, start:stop]
        inner = ((q @ np.swapaxes(k, -1, -2)) * D) @ v
        cross = query_decay * (q @ state)
        O[:, :, start:stop] = inner + cross
        states.append(state)
        state = np.swapaxes(k, -1, -2) @ (value_decay * v) + chunk_decay * state
    return O, (Q, K, V, log_gamma, chunk_size, states)


@retention_chunkwise.defvjp
def retention_chunkwise_backward(residuals, g_O):
    Q, K, V, log_gamma, chunk_size, states = residuals
    dtype = Q.dtype
    length = Q.shape[2]
    g_Q, g_K, g_V = np.empty_like(Q), np.empty_like(K), np.empty_like(V)
    g_state = np.zeros_like(states[0])  # R̄_c, the cotangent of the state after chunk c
    chunks = _chunks(length, chunk_size)
    for index in range(len(chunks) - 1, -1, -1):
        start, stop = chunks[index]
        size = stop - start
        local = np.arange(size, dtype=np.float64)
        D = _decay_mask(log_gamma, size).astype(dtype)
        query_decay = _decay_powers(log_gamma, local + 1).astype(dtype)[:, :, None]
        value_decay = _decay_powers(log_gamma, size - 1 - local).astype(dtype)[:, :, None]
        chunk_decay = np.exp(size * log_gamma).astype(dtype)[:, None, None]
        q, k, v, g = Q[:, :, start:stop], K[:, :, start:stop], V[:, :, start:stop], g_O[:, :, start:stop]
        previous = states[index]  # R_{c−1}
        # 1. inside the chunk
        M = (q @ np.swapaxes(k, -1, -2)) * D
        g_S = (g @ np.swapaxes(v, -1, -2)) * D
        g_q = g_S @ k
        g_k = np.swapaxes(g_S, -1, -2) @ q
        g_v = np.swapaxes(M, -1, -2) @ g
        # 2. the cross term ζ ⊙ (q R_{c−1})
        g_cross = query_decay * g
        g_q += g_cross @ np.swapaxes(previous, -1, -2)
        # 3. the state update R_c = kᵀ (ξ ⊙ v) + γ^L R_{c−1}
        g_k += (value_decay * v) @ np.swapaxes(g_state, -1, -2)
        g_v += value_decay * (k @ g_state)
        g_state = chunk_decay * g_state + np.swapaxes(q, -1, -2) @ g_cross
        g_Q[:, :, start:stop], g_K[:, :, start:stop], g_V[:, :, start:stop] = g_q, g_k, g_v
    return g_Q, g_K, g_V


# -- the gated multi-scale retention layer ------------------------------------------------
def _check_layer(arguments: Mapping[str, Any]) -> None:
    heads = arguments["num_heads"]
    for name in ("W_Q", "W_V"):
        width = arguments[name].shape[0]
        if width % heads:
            what = "d_k·H query/key" if name == "W_Q" else "d_v·H value"
            raise ArgumentError(
                name,
                f"{what} rows divisible by num_heads = {heads}",
                f"shape {tuple(arguments[name].shape)}",
            )
    gamma = arguments.get("gamma")
    if gamma is not None and gamma.shape[0] != heads:
        raise ArgumentError("gamma", f"one decay per head, shape ({heads},)", f"shape {tuple(gamma.shape)}")
    _check_gamma(arguments)


def _split_heads(x: np.ndarray, heads: int) -> np.ndarray:
    """(B, N, H·d) -> (B, H, N, d)."""
    batch, length, width = x.shape
    return np.ascontiguousarray(x.reshape(batch, length, heads, width // heads).transpose(0, 2, 1, 3))


def _merge_heads(x: np.ndarray) -> np.ndarray:
    """(B, H, N, d) -> (B, N, H·d)."""
    batch, heads, length, width = x.shape
    return x.transpose(0, 2, 1, 3).reshape(batch, length, heads * width)


@op(
    inputs={
        "x": FloatArray("B", "N", "M"),
        "W_Q": FloatArray("E", "M"),
        "W_K": FloatArray("E", "M"),
        "W_V": FloatArray("F", "M"),
        "W_G": FloatArray("F", "M"),
        "W_O": FloatArray("M", "F"),
        "gamma": FloatArray("H", optional=True),
        "num_heads": IntScalar(1),
        "eps": RealScalar(0, low_open=True),
        "normalize_decay": Flag(),
        "normalize_scores": Flag(),
    },
    outputs=("y",),
    differentiable=("x", "W_Q", "W_K", "W_V", "W_G", "W_O"),
    check=_check_layer,
)
def multiscale_retention(
    x, W_Q, W_K, W_V, W_G, W_O, gamma=None, *, num_heads, eps, normalize_decay, normalize_scores
):
    r"""Gated multi-scale retention: per-head retention, per-head GroupNorm, a swish gate.

    The token mixer of a ViR block (RetNet's MSR): H heads, each with its own decay γ_h (several
    "scales" of memory), retention in the parallel form, each head's output normalized on its
    own (GroupNorm with H groups: the heads' decays give outputs of very different sizes), then
    gated by ``swish(x W_Gᵀ)`` and projected back to d_model.

    Layout (torch's ``y = x Wᵀ``, W (out, in)): x (B, N, d_model); ``W_Q``, ``W_K`` (H·d_k,
    d_model); ``W_V``, ``W_G`` (H·d_v, d_model); ``W_O`` (d_model, H·d_v). Head h owns features
    h·d .. (h+1)·d − 1 of each projection (rows of W_Q, W_K, W_V, W_G; columns of W_O), as
    torchscale's ``view(B, N, H, d)``.

    Forward::

        Q, K, V = x W_Qᵀ, x W_Kᵀ, x W_Vᵀ, split into heads        (B, H, N, d)
        D       = decay mask of retention_parallel                  (H, N, N)
                  normalize_decay: D_nm ← D_nm / sqrt(Σ_m D_nm)
        A       = (Q Kᵀ) ⊙ D
                  normalize_scores: s_n = max(Σ_m |A_nm|, 1), else s_n = 1
        O       = (A V) / s                                         (B, H, N, d_v)
        Ô       = GroupNorm(O): per (b, h, n), over d_v:
                  (O − mean)·rstd, rstd = 1/sqrt(var + eps), biased var, no affine
        y       = (swish(x W_Gᵀ) ⊙ concat_h Ô) W_Oᵀ,  swish(u) = u·σ(u)

    The two normalizations are torchscale's (``RetNetRelPos`` divides each row of the decay mask
    by the square root of its sum; ``chunk_recurrent_forward`` divides each score row by
    ``max(Σ_m |A_nm|, 1)``, which is what this computes; its ``parallel_forward`` uses the
    absolute value of the row sum, ``max(|Σ_m A_nm|, 1)``, instead). Both scale row n of a head
    by a positive number, which the per-head GroupNorm removes up to ``eps``: they change values
    only through eps, and keep the intermediate O of order one. NOT PINNED for ViR: the paper
    does not say whether it uses them (its code is not released), so both are required flags.

    Backward. Let ``Ȳ = ∂L/∂y``, ``Z = swish(U) ⊙ Ô`` with ``U = x W_Gᵀ``.

    1. ``y = Z W_Oᵀ``: ``W̄_O = Σ_{b,n} Ȳᵀ Z`` and ``Z̄ = Ȳ W_O``.
    2. ``Z = swish(U) ⊙ Ô``: ``Ô̄ = Z̄ ⊙ swish(U)`` and ``Ū = Z̄ ⊙ Ô ⊙ swish'(U)`` with
       ``swish'(u) = σ(u)(1 + u(1 − σ(u)))``.
    3. GroupNorm, per head and token (as layer_norm without affine):
       ``Ō = rstd·(Ô̄ − mean(Ô̄) − Ô·mean(Ô̄ ⊙ Ô))``.
    4. ``O = P / s`` with ``P = A V``: ``P̄ = Ō / s``; when s_n > 1 it depends on A through
       ``s_n = Σ_m |A_nm|``: ``s̄_n = −(Ō_n·O_n)/s_n`` and ``Ā_nm += s̄_n sign(A_nm)`` (0 where
       the clamp at 1 is active). Then ``V̄ = Aᵀ P̄``, ``Ā += P̄ Vᵀ``.
    5. As in retention_parallel: ``S̄ = Ā ⊙ D``, ``Q̄ = S̄ K``, ``K̄ = S̄ᵀ Q``.
    6. Projections (merge heads back to (B, N, ·)): ``W̄_Q = Σ Q̄ᵀ x`` (and K, V, G alike with
       K̄, V̄, Ū) and ``x̄ = Q̄ W_Q + K̄ W_K + V̄ W_V + Ū W_G``.

    torchscale detaches the score normalizer (``qk_mat.detach()``); here the derivative goes
    through it (step 4), as the forward is a function of A. Because GroupNorm cancels the row
    scale up to eps, the two gradients differ by O(eps) terms only.

    Conventions: no K scaling by d_k^(−½) (fold it into ``W_K``), no xPos/rotary, no biases;
    GroupNorm without affine (torchscale's ``elementwise_affine=False``; a per-channel GroupNorm
    scale folds into ``W_O``). torchscale's current code uses RMSNorm in place of GroupNorm; the
    RetNet and ViR papers write GroupNorm, which is what this computes.

    Args:
        x: tokens (B, N, d_model), float32 or float64 (ViR: the class token last).
        W_Q: query projection (H·d_k, d_model).
        W_K: key projection (H·d_k, d_model).
        W_V: value projection (H·d_v, d_model).
        W_G: gate projection (H·d_v, d_model).
        W_O: output projection (d_model, H·d_v).
        gamma: decay per head (H,), 0 < γ ≤ 1; None (default): ``γ_h = 1 − 2^(−5−h)``.
        num_heads: H ≥ 1, required; must divide the rows of W_Q and W_V.
        eps: GroupNorm's ε > 0, required (not stated by ViR; torchscale uses the model's
            ``layernorm_eps``).
        normalize_decay: divide each decay-mask row by the square root of its sum (torchscale),
            required: not pinned for ViR.
        normalize_scores: divide each score row by ``max(Σ|A_n·|, 1)`` (torchscale), required:
            not pinned for ViR.

    Returns:
        y: (B, N, d_model), the dtype of x.

    Reference: Hatamizadeh, Ranzinger and Kautz, *ViR: Vision Retention Networks*,
    arXiv:2310.19731 (gated multi-head retention with GroupNorm); the retention it builds
    on: Sun et al., *Retentive Network: A Successor to Transformer for Large Language Models*,
    arXiv:2307.08621 (semantics and decay constants of microsoft/torchscale,
    torchscale/component/multiscale_retention.py and torchscale/architecture/retnet.py, ``RetNetRelPos``).

    >>> import numpy as np, refimpl
    >>> x = np.array([[[1.0, 0.0], [0.0, 1.0]]])  # B = 1, N = 2, d_model = 2; one head, d_v = 2
    >>> eye = np.eye(2)  # Q = K = V = x, gate pre-activation u = x: GroupNorm of O gives ±1
    >>> y = refimpl.layers.multiscale_retention(x, eye, eye, eye, 1e6 * eye, eye, num_heads=1,
    ...     eps=1e-12, normalize_decay=False, normalize_scores=False)
    >>> (y / 1e6).round(6)  # O_0 = [1, 0] -> Ô_0 = [1, −1]; gate swish(1e6·x) = 1e6·x
    array([[[1., 0.],
            [0., 1.]]])
    """
    heads = num_heads
    Q, K, V = (_split_heads(x @ W.T, heads) for W in (W_Q, W_K, W_V))
    U = x @ W_G.T
    D = _decay_mask(_log_decay(gamma, heads), x.shape[1])
    if normalize_decay:
        D = D / np.sqrt(D.sum(axis=-1, keepdims=True))
    D = D.astype(x.dtype)
    A = (Q @ np.swapaxes(K, -1, -2)) * D
    P = A @ V
    if normalize_scores:
        s = np.maximum(np.abs(A).sum(axis=-1, keepdims=True), x.dtype.type(1))
        O = P / s
    else:
        s, O = None, P
    mean = O.mean(axis=-1, keepdims=True)
    centered = O - mean
    variance = (centered * centered).mean(axis=-1, keepdims=True)
    rstd = 1 / np.sqrt(variance + x.dtype.type(eps))
    overflow = ~np.isfinite(variance)  # |O − mean| beyond ~1.8e19 in float32: the squares overflowed
    if overflow.any():  # σ = ‖O − mean‖/√d_v computed scaled (as layer_norm); eps is negligible
        rstd = np.where(overflow, np.sqrt(O.shape[-1]) / row_norm(centered), rstd).astype(x.dtype)
    O_hat = _merge_heads(centered * rstd)  # (B, N, H·d_v)
    sigma = sigmoid(U)
    gate = U * sigma
    Z = gate * O_hat
    y = Z @ W_O.T
    residuals = (x, W_Q, W_K, W_V, W_G, W_O, Q, K, V, U, sigma, D, A, O, s, O_hat, rstd, Z)
    return y, residuals


@multiscale_retention.defvjp
def multiscale_retention_backward(residuals, g_y):
    x, W_Q, W_K, W_V, W_G, W_O, Q, K, V, U, sigma, D, A, O, s, O_hat, rstd, Z = residuals
    heads = Q.shape[1]
    width = x.shape[-1]
    # 1. y = Z W_Oᵀ
    g_W_O = g_y.reshape(-1, width).T @ Z.reshape(-1, Z.shape[-1])
    g_Z = g_y @ W_O
    # 2. Z = swish(U) ⊙ Ô
    g_O_hat = _split_heads(g_Z * (U * sigma), heads)
    g_U = g_Z * O_hat * (sigma * (1 + U * (1 - sigma)))
    # 3. GroupNorm per head and token
    O_hat_heads = _split_heads(O_hat, heads)
    mean_g = g_O_hat.mean(axis=-1, keepdims=True)
    mean_g_O_hat = (g_O_hat * O_hat_heads).mean(axis=-1, keepdims=True)
    g_O = rstd * (g_O_hat - mean_g - O_hat_heads * mean_g_O_hat)
    # 4. O = (A V)/s
    if s is None:
        g_P, g_A = g_O, 0
    else:
        g_P = g_O / s
        g_s = -(g_O * O).sum(axis=-1, keepdims=True) / s
        g_s = np.where(s > 1, g_s, 0)  # the clamp max(·, 1) is active: no dependence on A
        g_A = g_s * np.sign(A)
    g_V = np.swapaxes(A, -1, -2) @ g_P
    g_A = g_A + g_P @ np.swapaxes(V, -1, -2)
    # 5. A = (Q Kᵀ) ⊙ D
    g_S = g_A * D
    g_Q = g_S @ K
    g_K = np.swapaxes(g_S, -1, -2) @ Q
    # 6. the projections
    x_rows = x.reshape(-1, width)
    g_rows = {
        name: _merge_heads(g).reshape(-1, g.shape[1] * g.shape[-1])
        for name, g in (("Q", g_Q), ("K", g_K), ("V", g_V))
    }
    g_rows["G"] = g_U.reshape(-1, g_U.shape[-1])
    weights = {"Q": W_Q, "K": W_K, "V": W_V, "G": W_G}
    g_x = sum(g_rows[name] @ weights[name] for name in ("Q", "K", "V", "G")).reshape(x.shape)
    g_W = {name: g_rows[name].T @ x_rows for name in ("Q", "K", "V", "G")}
    return g_x, g_W["Q"], g_W["K"], g_W["V"], g_W["G"], g_W_O
