"""Shared numerical building blocks of the reference, each with its backward written once.

Most losses and weighting rules are made of the same few pieces: a stable log-sum-exp, the
softmax and its VJP, softplus and ``log σ``, a guarded L2 normalization. They live here so
every op states them the same way and a fix lands everywhere. All functions work over the
last axis, keep the input dtype and never overflow for finite inputs.

Every block works on the array library of its input (NumPy, or CuPy for the GPU backend:
``array_namespace``), so the reference and the backends share one reduction rule, one
sigmoid, one softmax.

Derivations (ā is the cotangent of the output a):

* ``lse(z) = m + log Σ_j exp(z_j − m)`` with ``m = max_j z_j``; ``∂lse/∂z = softmax(z)``.
* ``p = softmax(z)``: ``z̄ = p ⊙ (p̄ − ⟨p, p̄⟩)`` (the softmax VJP).
* ``log_softmax(z) = z − lse(z)``: ``z̄ = ā − p·Σ_j ā_j``.
* ``softplus(u) = max(u, 0) + log1p(exp(−|u|))``; ``softplus' = σ(u)``.
* ``log σ(u) = −softplus(−u)``; ``(log σ)' = σ(−u) = 1 − σ(u)``.
* ``ẑ = z/‖z‖``: ``z̄ = (ẑ̄ − ẑ⟨ẑ, ẑ̄⟩)/‖z‖`` (the projection ``(I − ẑẑᵀ)/‖z‖``).
* ``L = (1/B) Σ_i ℓ_i`` (mean), ``Σ_i ℓ_i`` (sum) or ``ℓ`` (none): ``ℓ̄_i = L̄/B``, ``L̄`` or ``L̄_i``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._spec import array_namespace

__all__ = [
    "l2_normalize",
    "l2_normalize_backward",
    "log_sigmoid",
    "log_softmax",
    "log_softmax_backward",
    "logsumexp",
    "reduce_rows",
    "row_norm",
    "row_weights",
    "sigmoid",
    "sigmoid_and_slope",
    "softmax",
    "softmax_backward",
    "softplus",
]


def logsumexp(z: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """``log Σ exp(z)`` over ``axis``; the max is subtracted first, so exp cannot overflow.

    A row of all ``-inf`` gives ``-inf`` (never NaN).
    """
    xp = array_namespace(z)
    m = z.max(axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    with np.errstate(divide="ignore"):  # log(0) = -inf for an all -inf row
        out = xp.log(xp.exp(z - m).sum(axis=axis, keepdims=True)) + m
    return out if keepdims else xp.squeeze(out, axis=axis)


def log_softmax(z: np.ndarray) -> np.ndarray:
    """``(z − m) − log Σ exp(z − m)`` over the last axis, ``m = max z``.

    Kept in this order: ``z − logsumexp(z)`` would round the log-sum-exp to the ulp of ``m``
    first (an error of 1e-3 at |z| = 1e4 in float32).
    """
    xp = array_namespace(z)
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


def log_softmax_backward(p: np.ndarray, g_out: np.ndarray) -> np.ndarray:
    """VJP of ``log_softmax`` given ``p = softmax(z)``: ``ā − p·Σ_j ā_j``."""
    return g_out - p * g_out.sum(axis=-1, keepdims=True)


def softmax(z: np.ndarray) -> np.ndarray:
    """``exp(z − lse(z))`` over the last axis; rows sum to 1."""
    e = array_namespace(z).exp(z - z.max(axis=-1, keepdims=True))  # subtract the row max: exp cannot overflow
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(p: np.ndarray, g_p: np.ndarray) -> np.ndarray:
    """VJP of ``softmax`` given its output ``p``: ``p ⊙ (p̄ − ⟨p, p̄⟩)``."""
    return p * (g_p - (g_p * p).sum(axis=-1, keepdims=True))


def softplus(u: np.ndarray) -> np.ndarray:
    """``log(1 + exp(u))`` as ``max(u, 0) + log1p(exp(−|u|))``: no overflow for large ``u``."""
    xp = array_namespace(u)
    return xp.maximum(u, 0) + xp.log1p(xp.exp(-xp.abs(u)))


def sigmoid(u: np.ndarray) -> np.ndarray:
    """``1/(1 + exp(−u))`` without overflow: ``exp`` only ever sees ``−|u|``."""
    xp = array_namespace(u)
    e = xp.exp(-xp.abs(u))
    return xp.where(u >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_and_slope(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``α = sigmoid(a)`` and ``σ'(a) = α(1 − α)``, both without overflow or cancellation.

    With ``e = exp(−|a|) ∈ (0, 1]``: ``α = 1/(1 + e)`` for a ≥ 0 and ``e/(1 + e)`` for a < 0
    (exp never sees a positive argument), and ``α(1 − α) = e/(1 + e)²`` for both signs — the
    form ``α·(1 − α)`` would round ``1 − α`` to 0 once α is within an ulp of 1.
    """
    xp = array_namespace(a)
    e = xp.exp(-abs(a))
    alpha = xp.where(a >= 0, 1 / (1 + e), e / (1 + e))
    slope = e / ((1 + e) * (1 + e))
    return alpha, slope


def log_sigmoid(u: np.ndarray) -> np.ndarray:
    """``log σ(u) = −softplus(−u)``."""
    return -softplus(-u)


def row_norm(z: np.ndarray, eps: float = 0.0) -> np.ndarray:
    """``sqrt(‖z‖² + eps)`` over the last axis (keepdims), right also where ``‖z‖²`` overflows
    or underflows the dtype.

    The plain sum of squares first (bit for bit the textbook formula on ordinary rows). Rows
    where it overflowed (float32: entries beyond ~1.8e19), or, with ``eps = 0``, fell below the
    smallest normal number (entries below ~1e-19, where it loses its digits or becomes 0), are
    computed again scaled by their largest entry: ``‖z‖ = s·‖z/s‖``, as LAPACK's ``nrm2``
    does. ``eps`` is negligible beside an overflowing ``‖z‖²`` and dominates an underflowing
    one, so those rows keep ``s·‖z/s‖``.
    """
    xp = array_namespace(z)
    with np.errstate(over="ignore", under="ignore"):  # the rows that leave the range are redone
        squares = (z * z).sum(axis=-1, keepdims=True)
    norm = xp.sqrt(squares + z.dtype.type(eps))
    redo = ~xp.isfinite(squares)
    if eps == 0:
        redo |= squares < xp.finfo(z.dtype).tiny
    if bool(xp.any(redo)):
        largest = xp.max(xp.abs(z), axis=-1, keepdims=True)
        unit = z / xp.where(largest > 0, largest, 1)
        norm = xp.where(redo, largest * xp.sqrt((unit * unit).sum(axis=-1, keepdims=True)), norm)
    return norm


def l2_normalize(z: np.ndarray, eps: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``(z/max(‖z‖, eps), ‖z‖ clamped)`` over the last axis (``‖z‖`` by :func:`row_norm`).

    ``eps`` is the guard of the op that calls it (``F.normalize`` uses 1e-12); with
    ``eps = 0`` a zero row must have been rejected before.
    """
    xp = array_namespace(z)
    norm = xp.maximum(row_norm(z), z.dtype.type(eps))
    return z / norm, norm


def l2_normalize_backward(z_hat: np.ndarray, norm: np.ndarray, g_z_hat: np.ndarray) -> np.ndarray:
    """VJP of ``z/‖z‖``: ``(ẑ̄ − ẑ⟨ẑ, ẑ̄⟩)/‖z‖`` (where the clamp is inactive)."""
    return (g_z_hat - z_hat * (z_hat * g_z_hat).sum(axis=-1, keepdims=True)) / norm


def reduce_rows(per_row: np.ndarray, reduction: str, dtype: npt.DTypeLike) -> np.ndarray:
    """``(1/B) Σ_i ℓ_i`` ("mean") or ``Σ_i ℓ_i`` ("sum") as a 0-d array, else ``ℓ`` ("none"), in ``dtype``.

    The mean and sum run over every entry of ``per_row``. NumPy or CuPy arrays (duck-typed;
    CuPy is never imported): the result stays in the array library of ``per_row``.
    """
    if reduction == "none":
        return per_row.astype(dtype)  # a copy: the caller's buffers never alias the output
    total = per_row.mean() if reduction == "mean" else per_row.sum()
    if isinstance(per_row, (np.ndarray, np.generic)):
        return np.asarray(total, dtype=dtype)
    return total.astype(dtype)


def row_weights(g_loss: np.ndarray, reduction: str, batch: int) -> np.ndarray:
    """The cotangent ``ℓ̄_i`` of each row's loss, shape ``(batch,)``, in the dtype of ``g_loss``.

    ``L̄/B`` ("mean") or ``L̄`` ("sum") on every row, ``L̄_i`` itself ("none"). Cast ``g_loss``
    first to the dtype the weights must have (float64 for the Numba kernels).
    """
    xp = array_namespace(g_loss)
    g = xp.asarray(g_loss)
    if reduction == "none":
        return xp.ascontiguousarray(g.reshape(batch))
    return xp.full(batch, g / batch if reduction == "mean" else g, dtype=g.dtype)
