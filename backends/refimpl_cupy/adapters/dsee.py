"""DSEE's adapted linear layer on CuPy: the CuPy LoRA layer with the sparse branch folded into W.

Mirrors ``refimpl/adapters/dsee.py``. ``W_eff = W + s·(S ⊙ Ω)`` is one fused kernel, then
the forward and backward are this backend's ``lora_linear`` (cuBLAS products, fused
epilogues); ``S̄ = s·(Gᵀ X) ⊙ Ω`` is one ``xp.matmul`` and one fused masked scaling.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of
from .lora import lora_linear_backward, lora_linear_forward


def _kernels(xp, fuse):
    @fuse
    def fold_sparse(W, S, mask, scale):
        return W + xp.where(mask, scale * S, 0)

    @fuse
    def scale_on_support(values, mask, scale):
        return xp.where(mask, scale * values, 0)

    return SimpleNamespace(fold_sparse=fold_sparse, scale_on_support=scale_on_support)


kernels_for = kernel_set(_kernels)


def dsee_linear_forward(x, W, A, B, S, mask, bias=None, *, scale):
    k = kernels_for(x)
    scale = float(scale)
    W_eff = k.fold_sparse(W, S, mask, W.dtype.type(scale))
    y, lora_residuals = lora_linear_forward(x, W_eff, A, B, bias, scale=scale)
    return y, (lora_residuals, mask, scale)


def dsee_linear_backward(residuals, g_y):
    lora_residuals, mask, scale = residuals
    x = lora_residuals[0]
    xp = xp_of(x)
    k = kernels_for(x)
    g_x, g_A, g_B = lora_linear_backward(lora_residuals, g_y)
    g_rows = g_y.reshape(-1, mask.shape[0])
    x_rows = x.reshape(-1, mask.shape[1])
    g_S = k.scale_on_support(xp.matmul(g_rows.T, x_rows), mask, x.dtype.type(scale))
    return g_x, g_A, g_B, g_S


IMPLS = {"dsee_linear": Impl(dsee_linear_forward, dsee_linear_backward)}
