"""DSEE's adapted linear layer: the Numba LoRA layer with the sparse branch folded into W.

Mirrors ``refimpl/adapters/dsee.py``. ``y = x W_effᵀ + s·(x Aᵀ) Bᵀ + b`` with
``W_eff = W + s·(S ⊙ Ω)``: one parallel elementwise pass builds W_eff, then the forward and
backward are this backend's ``lora_linear`` (NumPy's BLAS for the products, a fused Numba
rank-r epilogue; see ``lora.py``). The extra cotangent ``S̄ = s·(Gᵀ X) ⊙ Ω`` is one BLAS
product and an in-place masked scaling, parallel over rows.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel
from .lora import lora_linear_backward, lora_linear_forward


@parallel_kernel()
def _fold_sparse(W, S, mask, scale, W_eff):
    """``W_eff = W + scale·S`` on the support, ``W`` off it."""
    rows, cols = W.shape
    for i in prange(rows):
        for j in range(cols):
            W_eff[i, j] = W[i, j] + scale * S[i, j] if mask[i, j] else W[i, j]


@parallel_kernel()
def _scale_on_support(values, mask, scale):
    """``values = scale·values`` on the support, 0 off it (in place)."""
    rows, cols = values.shape
    for i in prange(rows):
        for j in range(cols):
            values[i, j] = scale * values[i, j] if mask[i, j] else 0.0


def dsee_linear_forward(x, W, A, B, S, mask, bias=None, *, scale):
    scale = float(scale)
    W_eff = np.empty_like(W)
    _fold_sparse(W, S, mask, W.dtype.type(scale), W_eff)
    y, lora_residuals = lora_linear_forward(x, W_eff, A, B, bias, scale=scale)
    return y, (lora_residuals, mask, scale)


def dsee_linear_backward(residuals, g_y):
    lora_residuals, mask, scale = residuals
    x_rows = lora_residuals[0]
    g_x, g_A, g_B = lora_linear_backward(lora_residuals, g_y)
    g_S = np.ascontiguousarray(g_y).reshape(-1, mask.shape[0]).T @ x_rows  # Gᵀ X (BLAS)
    _scale_on_support(g_S, mask, g_S.dtype.type(scale))
    return g_x, g_A, g_B, g_S


IMPLS = {"dsee_linear": Impl(dsee_linear_forward, dsee_linear_backward)}
