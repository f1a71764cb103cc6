"""The DCDM loss on CuPy: cuBLAS products with A, row reductions and a fused cotangent.

Mirrors ``refimpl/losses/dcdm.py``: ``Aq`` (rows of ``q @ A``, A symmetric), ``κ = qᵀAq``,
``α = qᵀb/κ``, ``r = b − αAq``, ``L = mean ‖r‖²``; backward
``−2[α A r + (qᵀA r)(b − 2α A q)/κ]·ḡ/B`` in one fused kernel.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def residual(b, a_q, alpha):
        return b - alpha * a_q

    @fuse
    def grad(b, a_q, a_r, alpha, ratio, scale):
        return -2 * scale * (alpha * a_r + ratio * (b - 2 * alpha * a_q))

    return SimpleNamespace(residual=residual, grad=grad)


kernels_for = kernel_set(_kernels)


def dcdm_loss_forward(A, b, q):  # noqa: N803
    xp = xp_of(q)
    k = kernels_for(q)
    a_q = q @ A
    curvature = (q * a_q).sum(axis=1, keepdims=True)
    alpha = (q * b).sum(axis=1, keepdims=True) / curvature
    r = k.residual(b, a_q, alpha)
    loss = (r * r).sum(axis=1).mean()
    return xp.asarray(loss, dtype=q.dtype), (A, b, a_q, curvature, alpha, r)


def dcdm_loss_backward(residuals, g_loss):
    A, b, a_q, curvature, alpha, r = residuals  # noqa: N806
    a_r = r @ A
    ratio = (a_q * r).sum(axis=1, keepdims=True) / curvature  # qᵀA r / κ
    g_q = kernels_for(b).grad(b, a_q, a_r, alpha, ratio, g_loss / b.shape[0])
    return (g_q.astype(b.dtype, copy=False),)


IMPLS = {"dcdm_loss": Impl(dcdm_loss_forward, dcdm_loss_backward)}
