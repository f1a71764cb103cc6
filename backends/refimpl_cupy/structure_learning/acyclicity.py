"""Acyclicity functions on CuPy: cuBLAS matrix products for the exponential and the powers,
the M-matrix elimination as d rank-one updates on the device, fused elementwise kernels.

Mirrors ``refimpl/structure_learning/acyclicity.py`` with the same cancellation-free
algorithms, so h is exactly 0 on a DAG on the GPU too:

* ``exp(A) − I``: 18 Taylor terms of ``A/2^k`` (``term ← (term @ B)/m`` and ``F += term`` in
  one fused kernel) and k squarings ``F ← 2F + F @ F`` (one matmul, one fused kernel);
* ``(I + B)^k − I``: binary powering of ``F + G + F @ G``;
* the log-determinant of ``sI − A``: elimination of ``I − A/s`` without pivoting (a
  pivoted LAPACK/cuSOLVER ``slogdet`` cancels to ulps where h is tiny): per step one fused
  rank-one update of the trailing block; ``h = −Σ log1p(−q)`` on the diagonal; the inverse
  for the gradient by row substitutions with nonnegative sums and one matmul.

TOPO's official variant (``check_domain=False``) uses ``xp.linalg.slogdet`` and
``xp.linalg.inv`` (cuSOLVER on a GPU). The same text runs on NumPy arrays as ``cupy[host]``.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of

TAYLOR_TERMS = 18


def _kernels(xp, fuse):
    @fuse
    def taylor_step(product, divisor, F):
        term = product / divisor
        return term, F + term

    @fuse
    def square_step(F, square):
        return 2 * F + square

    @fuse
    def compose_sum(product, F, G):
        return product + F + G

    @fuse
    def rank_one_update(block, column, row):
        return block + column * row

    @fuse
    def scaled_product(g, left, right):
        return g * left * right

    @fuse
    def neg_log1p_neg(q):
        return -xp.log1p(-q)

    return SimpleNamespace(
        taylor_step=taylor_step,
        square_step=square_step,
        compose_sum=compose_sum,
        rank_one_update=rank_one_update,
        scaled_product=scaled_product,
        neg_log1p_neg=neg_log1p_neg,
    )


kernels_for = kernel_set(_kernels)


def _exp_minus_identity(A):
    xp = xp_of(A)
    k = kernels_for(A)
    norm = float(xp.max(xp.sum(A, axis=1))) if A.shape[0] else 0.0
    if not math.isfinite(norm):
        return xp.full_like(A, xp.inf)
    squarings = 0 if norm <= 0.5 else math.ceil(math.log2(norm / 0.5))
    B = A * A.dtype.type(1.0 / 2.0**squarings)  # a power of two: exact
    term, F = B, B
    for m in range(2, TAYLOR_TERMS + 1):
        term, F = k.taylor_step(xp.matmul(term, B), A.dtype.type(m), F)
    for _ in range(squarings):
        F = k.square_step(F, xp.matmul(F, F))
    return F


def _compose(F, G):
    xp = xp_of(F)
    return kernels_for(F).compose_sum(xp.matmul(F, G), F, G)


def _power_minus_identity(B, power):
    xp = xp_of(B)
    result = xp.zeros_like(B)
    base = B
    while power:
        if power & 1:
            result = _compose(result, base)
        power >>= 1
        if power:
            base = _compose(base, base)
    return result


def _m_matrix_factor(B):
    """Elimination of ``I − B`` without pivoting, kept as ``N ≥ 0``; the first failed step or None."""
    k = kernels_for(B)
    d = B.shape[0]
    N = B.copy()
    for step in range(d):
        q_step = N[step, step]
        if not bool(q_step < 1):
            return N, step
        N[step + 1 :, step] /= 1 - q_step
        N[step + 1 :, step + 1 :] = k.rank_one_update(
            N[step + 1 :, step + 1 :], N[step + 1 :, step, None], N[step, None, step + 1 :]
        )
    return N, None


def _m_matrix_inverse(N):
    xp = xp_of(N)
    d = N.shape[0]
    identity = xp.eye(d, dtype=N.dtype)
    lower_inverse = xp.zeros_like(N)
    for row in range(d):
        lower_inverse[row] = identity[row] + xp.matmul(N[row, :row], lower_inverse[:row])
    upper_inverse = xp.zeros_like(N)
    for row in range(d - 1, -1, -1):
        upper_inverse[row] = (identity[row] + xp.matmul(N[row, row + 1 :], upper_inverse[row + 1 :])) / (
            1 - N[row, row]
        )
    return xp.matmul(upper_inverse, lower_inverse)


def _neg_log_det(N):
    xp = xp_of(N)
    return xp.sum(kernels_for(N).neg_log1p_neg(xp.diagonal(N).copy()))


def _transpose_plus_identity(F):
    xp = xp_of(F)
    return F.T + xp.eye(F.shape[0], dtype=F.dtype)


# -- notears_acyclicity_exp / poly_acyclicity -----------------------------------------------------
def notears_acyclicity_exp_forward(W):
    xp = xp_of(W)
    F = _exp_minus_identity(W * W)
    return xp.trace(F).astype(W.dtype), (W, F)


def notears_acyclicity_exp_backward(residuals, g_h):
    W, F = residuals
    g = g_h.astype(W.dtype) if hasattr(g_h, "astype") else W.dtype.type(g_h)
    return (kernels_for(W).scaled_product(g, 2 * W, _transpose_plus_identity(F)).astype(W.dtype),)


def poly_acyclicity_forward(W):
    xp = xp_of(W)
    d = W.shape[0]
    B = (W * W) / W.dtype.type(d)
    F_before = _power_minus_identity(B, d - 1)
    F = _compose(F_before, B)
    return xp.trace(F).astype(W.dtype), (W, F_before)


def poly_acyclicity_backward(residuals, g_h):
    W, F_before = residuals
    g = g_h.astype(W.dtype) if hasattr(g_h, "astype") else W.dtype.type(g_h)
    return (kernels_for(W).scaled_product(g, 2 * W, _transpose_plus_identity(F_before)).astype(W.dtype),)


# -- the log-determinants ------------------------------------------------------------------------------
def dagma_acyclicity_logdet_forward(W, *, s=1.0):
    xp = xp_of(W)
    s = W.dtype.type(s)
    N, failed = _m_matrix_factor((W * W) / s)
    h = _neg_log_det(N) if failed is None else xp.asarray(xp.inf)
    return xp.asarray(h, dtype=W.dtype), (W, N, s)


def dagma_acyclicity_logdet_backward(residuals, g_h):
    W, N, s = residuals
    g = (g_h.astype(W.dtype) if hasattr(g_h, "astype") else W.dtype.type(g_h)) / s
    return (kernels_for(W).scaled_product(g, 2 * W, _m_matrix_inverse(N).T).astype(W.dtype),)


def topo_acyclicity_logdet_abs_forward(W, *, s=1.0, check_domain=True):
    xp = xp_of(W)
    s = W.dtype.type(s)
    A = xp.abs(W)
    if check_domain:
        N, failed = _m_matrix_factor(A / s)
        h = _neg_log_det(N) if failed is None else xp.asarray(xp.inf)
        return xp.asarray(h, dtype=W.dtype), (W, N, None, s)
    d = W.shape[0]
    M = s * xp.eye(d, dtype=W.dtype) - A
    _, log_abs_det = xp.linalg.slogdet(M)
    h = -log_abs_det + d * math.log(s)
    inverse = xp.linalg.inv(M) if bool(xp.isfinite(log_abs_det)) else None
    return xp.asarray(h, dtype=W.dtype), (W, None, inverse, s)


def topo_acyclicity_logdet_abs_backward(residuals, g_h):
    W, N, inverse, s = residuals
    xp = xp_of(W)
    g = g_h.astype(W.dtype) if hasattr(g_h, "astype") else W.dtype.type(g_h)
    if N is not None:
        inverse, g = _m_matrix_inverse(N), g / s
    return (kernels_for(W).scaled_product(g, xp.sign(W), inverse.T).astype(W.dtype),)


IMPLS = {
    "notears_acyclicity_exp": Impl(notears_acyclicity_exp_forward, notears_acyclicity_exp_backward),
    "poly_acyclicity": Impl(poly_acyclicity_forward, poly_acyclicity_backward),
    "dagma_acyclicity_logdet": Impl(dagma_acyclicity_logdet_forward, dagma_acyclicity_logdet_backward),
    "topo_acyclicity_logdet_abs": Impl(
        topo_acyclicity_logdet_abs_forward, topo_acyclicity_logdet_abs_backward
    ),
}
