"""BT²'s basis transformation and compatibility loss: LAPACK/BLAS solves and products, Numba kernels.

Mirrors ``refimpl/layers/bt2.py``. ``cayley_orthogonal``: a parallel kernel forms ``I + A``
and ``I − A`` from ``S`` in one pass (or ``A = tril(S) − tril(S)ᵀ`` for the exponential
map), the linear solves go to LAPACK through ``np.linalg.solve`` (gesv; the forward's one
solve, the backward's two), and a second kernel folds ``Ā`` back to ``S̄`` (``Ā − Āᵀ``, lower
triangle for the exponential map). The exponential map calls ``scipy.linalg.expm`` (Padé
with scaling and squaring), as the reference. ``bct_compatibility_loss``: the logits are one
BLAS product, a row kernel takes the softmax and the loss with ``_vmath``'s vectorizable
``exp`` (float64 sums), the input gradient is one more BLAS product.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
from numba import prange

from refimpl.authoring import Impl, reduce_rows, row_weights

from .._jit import parallel_kernel
from .._vmath import row_log_sum_exp, vexp


@parallel_kernel()
def _skew_systems(s, lower, i_plus_a, i_minus_a):
    """``A = S − Sᵀ`` (or ``tril(S) − tril(S)ᵀ``), then ``I + A`` and ``I − A``, in float64."""
    n = s.shape[0]
    for i in prange(n):
        for j in range(n):
            if lower:
                a = (np.float64(s[i, j]) if j < i else 0.0) - (np.float64(s[j, i]) if i < j else 0.0)
            else:
                a = np.float64(s[i, j]) - np.float64(s[j, i])
            identity = 1.0 if i == j else 0.0
            i_plus_a[i, j] = identity + a
            i_minus_a[i, j] = identity - a


@parallel_kernel()
def _skew_gradient(g_a, lower, g_s):
    """``S̄ = Ā − Āᵀ`` (kept on and below the diagonal for the exponential map)."""
    n = g_a.shape[0]
    for i in prange(n):
        for j in range(n):
            if lower and j > i:
                g_s[i, j] = 0.0
            else:
                g_s[i, j] = g_a[i, j] - g_a[j, i]


def cayley_orthogonal_forward(s, *, base=None, orthogonal_map="cayley"):
    n = s.shape[0]
    lower = orthogonal_map == "expm"
    i_plus_a, i_minus_a = np.empty((n, n)), np.empty((n, n))
    _skew_systems(np.ascontiguousarray(s), lower, i_plus_a, i_minus_a)
    if lower:
        a = i_plus_a - np.eye(n)
        q, saved = scipy.linalg.expm(a), a
    else:
        q, saved = np.linalg.solve(i_plus_a, i_minus_a), i_plus_a  # R = (I + A)⁻¹(I − A)
    base64 = None if base is None else base.astype(np.float64)
    r = q if base64 is None else np.dot(base64, q)
    return r.astype(s.dtype), (saved, base64, lower, s.dtype)


def cayley_orthogonal_backward(residuals, g_r):
    saved, base64, lower, dtype = residuals
    n = saved.shape[0]
    g_q = g_r.astype(np.float64)
    if base64 is not None:
        g_q = np.dot(base64.T, g_q)
    if lower:  # adjoint Fréchet derivative: upper-right block of exp([[Aᵀ, G], [0, Aᵀ]])
        block = np.zeros((2 * n, 2 * n))
        block[:n, :n] = saved.T
        block[n:, n:] = saved.T
        block[:n, n:] = g_q
        g_a = scipy.linalg.expm(block)[:n, n:]
    else:  # Ā = −2 Mᵀ G Mᵀ with M = (I + A)⁻¹: two solves
        y = np.linalg.solve(saved.T, g_q)
        g_a = -2.0 * np.linalg.solve(saved, y.T).T
    g_s = np.empty((n, n), dtype=dtype)
    _skew_gradient(np.ascontiguousarray(g_a), lower, g_s)
    return (g_s,)


@parallel_kernel(fastmath={"reassoc"})
def _cross_entropy_rows(logits, y, per_row, p):
    k_count = logits.shape[1]
    for i in prange(logits.shape[0]):
        m, log_total = row_log_sum_exp(logits, i)
        lse = m + log_total
        per_row[i] = lse - np.float64(logits[i, y[i]])
        for k in range(k_count):
            p[i, k] = vexp(logits.dtype.type(np.float64(logits[i, k]) - lse))


@parallel_kernel()
def _softmax_minus_label(p, y, weight):
    """``ℓ̄ = w_i (p_i − e_{y_i})``, written over ``p``."""
    for i in prange(p.shape[0]):
        w = p.dtype.type(weight[i])
        for k in range(p.shape[1]):
            p[i, k] *= w
        p[i, y[i]] -= w


def bct_compatibility_loss_forward(z, y, weight, *, bias=None, reduction="mean"):
    d = weight.shape[1]
    logits = np.dot(z[:, :d], weight.T)
    if bias is not None:
        logits += bias
    labels = np.ascontiguousarray(y, dtype=np.int64)
    per_row = np.empty(z.shape[0])
    p = np.empty_like(logits)
    _cross_entropy_rows(logits, labels, per_row, p)
    return reduce_rows(per_row, reduction, z.dtype), (p, labels, weight, z.shape, z.dtype, reduction)


def bct_compatibility_loss_backward(residuals, g_loss):
    p, labels, weight, shape, dtype, reduction = residuals
    w = row_weights(np.asarray(g_loss, dtype=np.float64), reduction, shape[0])
    g_logits = p.copy()  # the residual stays intact: the pullback may be called again
    _softmax_minus_label(g_logits, labels, w)
    g_z = np.zeros(shape, dtype=dtype)
    g_z[:, : weight.shape[1]] = np.dot(g_logits, weight)
    return (g_z,)


IMPLS = {
    "cayley_orthogonal": Impl(cayley_orthogonal_forward, cayley_orthogonal_backward),
    "bct_compatibility_loss": Impl(bct_compatibility_loss_forward, bct_compatibility_loss_backward),
}
