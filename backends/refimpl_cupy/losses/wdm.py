"""The WDM Kantorovich–Rubinstein estimate on CuPy: a masked reduction and a fused fill.

Mirrors ``refimpl/losses/wdm.py``: ``Î = tr F/N − Σ_{i≠j} F_ij/(N(N − 1))``, the off-diagonal
sum over the masked matrix (no ``ΣF − tr F`` cancellation); the backward is one fused kernel,
``F̄_ij = ḡ/N`` on the diagonal and ``−ḡ/(N(N − 1))`` elsewhere.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def off_diagonal(scores, is_diagonal):
        return xp.where(is_diagonal, 0, scores)

    @fuse
    def wdm_grad(is_diagonal, on_diagonal, off_diagonal):
        return xp.where(is_diagonal, on_diagonal, off_diagonal)

    return SimpleNamespace(off_diagonal=off_diagonal, wdm_grad=wdm_grad)


kernels_for = kernel_set(_kernels)


def _is_diagonal(xp, n):
    index = xp.arange(n)
    return index[:, None] == index[None, :]


def wdm_kr_estimate_forward(F):  # noqa: N803
    xp = xp_of(F)
    k = kernels_for(F)
    n = F.shape[0]
    dtype = F.dtype.type
    joint = xp.trace(F) / dtype(n)
    marginals = k.off_diagonal(F, _is_diagonal(xp, n)).sum() / dtype(n * (n - 1))
    return (joint - marginals).astype(F.dtype), (F, n)


def wdm_kr_estimate_backward(residuals, g_estimate):
    F, n = residuals  # noqa: N806
    xp = xp_of(F)
    k = kernels_for(F)
    dtype = F.dtype.type
    g = g_estimate.astype(F.dtype)
    g_F = k.wdm_grad(_is_diagonal(xp, n), g / dtype(n), -g / dtype(n * (n - 1)))  # noqa: N806
    return (g_F.astype(F.dtype),)


IMPLS = {"wdm_kr_estimate": Impl(wdm_kr_estimate_forward, wdm_kr_estimate_backward)}
