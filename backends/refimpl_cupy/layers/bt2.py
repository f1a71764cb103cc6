"""BT²'s basis transformation and compatibility loss on CuPy: cuSOLVER solves, cuBLAS products.

Mirrors ``refimpl/layers/bt2.py``. ``cayley_orthogonal`` forms ``I ± A`` in one fused kernel
and solves with ``cupy.linalg.solve`` (getrf/getrs); CuPy has no matrix exponential, so the
exponential map is computed here by scaling and squaring with a degree-18 Taylor polynomial
(``‖A/2ˢ‖₁ ≤ 1/2``: truncation below 1e-22, under float64 rounding), in matrix products
only; the backward's adjoint Fréchet derivative is the same routine on the 2n × 2n block
matrix. ``bct_compatibility_loss``: one product for the logits, the library's stable
``log_softmax``, one product for the gradient.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

from refimpl.authoring import Impl, log_softmax, reduce_rows, row_weights

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def identity_plus_minus(eye, a):
        return eye + a, eye - a

    @fuse
    def weighted_softmax_minus_label(p, is_label, w):
        return w * (p - is_label)

    return SimpleNamespace(
        identity_plus_minus=identity_plus_minus, weighted_softmax_minus_label=weighted_softmax_minus_label
    )


kernels_for = kernel_set(_kernels)

TAYLOR_DEGREE = 18


def _expm(xp, a):
    """``exp(a)`` by scaling and squaring: ``(Σ_{k≤18} (a/2ˢ)ᵏ/k!)^(2ˢ)``, ``‖a/2ˢ‖₁ ≤ 1/2``."""
    norm = float(xp.abs(a).sum(axis=0).max()) if a.size else 0.0
    squarings = max(0, math.ceil(math.log2(norm / 0.5))) if norm > 0.5 else 0
    scaled = a / 2.0**squarings
    eye = xp.eye(a.shape[0], dtype=a.dtype)
    result = eye + scaled / TAYLOR_DEGREE  # Horner: I + X/1 (I + X/2 (I + ... X/18))
    for k in range(TAYLOR_DEGREE - 1, 0, -1):
        result = eye + xp.matmul(scaled, result) / k
    for _ in range(squarings):
        result = xp.matmul(result, result)
    return result


def _skew(xp, s, lower):
    if lower:
        s = xp.tril(s)
    return s - s.T


def cayley_orthogonal_forward(s, *, base=None, orthogonal_map="cayley"):
    xp = xp_of(s)
    lower = orthogonal_map == "expm"
    a = _skew(xp, s.astype(xp.float64), lower)
    if lower:
        q, saved = _expm(xp, a), a
    else:
        i_plus_a, i_minus_a = kernels_for(s).identity_plus_minus(xp.eye(s.shape[0]), a)
        q, saved = xp.linalg.solve(i_plus_a, i_minus_a), i_plus_a  # R = (I + A)⁻¹(I − A)
    base64 = None if base is None else base.astype(xp.float64)
    r = q if base64 is None else xp.matmul(base64, q)
    return r.astype(s.dtype), (saved, base64, lower, s.dtype)


def cayley_orthogonal_backward(residuals, g_r):
    saved, base64, lower, dtype = residuals
    xp = xp_of(saved)
    n = saved.shape[0]
    g_q = g_r.astype(xp.float64)
    if base64 is not None:
        g_q = xp.matmul(base64.T, g_q)
    if lower:  # upper-right block of exp([[Aᵀ, G], [0, Aᵀ]])
        block = xp.zeros((2 * n, 2 * n))
        block[:n, :n] = saved.T
        block[n:, n:] = saved.T
        block[:n, n:] = g_q
        g_a = _expm(xp, block)[:n, n:]
    else:  # Ā = −2 Mᵀ G Mᵀ, M = (I + A)⁻¹
        y = xp.linalg.solve(saved.T, g_q)
        g_a = -2.0 * xp.linalg.solve(saved, y.T).T
    g_s = g_a - g_a.T
    if lower:
        g_s = xp.tril(g_s)
    return (g_s.astype(dtype),)


def bct_compatibility_loss_forward(z, y, weight, *, bias=None, reduction="mean"):
    xp = xp_of(z)
    d = weight.shape[1]
    logits = xp.matmul(z[:, :d], weight.T)
    if bias is not None:
        logits = logits + bias
    log_p = log_softmax(logits)
    labels = y.astype(xp.int64)
    per_row = -xp.take_along_axis(log_p, labels[:, None], axis=1)[:, 0]
    return reduce_rows(per_row, reduction, z.dtype), (
        xp.exp(log_p),
        labels,
        weight,
        z.shape,
        z.dtype,
        reduction,
    )


def bct_compatibility_loss_backward(residuals, g_loss):
    p, labels, weight, shape, dtype, reduction = residuals
    xp = xp_of(p)
    w = row_weights(xp.asarray(g_loss).astype(dtype, copy=False), reduction, shape[0])
    is_label = (xp.arange(p.shape[1])[None, :] == labels[:, None]).astype(p.dtype)
    g_logits = kernels_for(p).weighted_softmax_minus_label(p, is_label, w[:, None])
    g_z = xp.zeros(shape, dtype=dtype)
    g_z[:, : weight.shape[1]] = xp.matmul(g_logits, weight)
    return (g_z,)


IMPLS = {
    "cayley_orthogonal": Impl(cayley_orthogonal_forward, cayley_orthogonal_backward),
    "bct_compatibility_loss": Impl(bct_compatibility_loss_forward, bct_compatibility_loss_backward),
}
