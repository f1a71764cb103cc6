"""The LoRA-style linear layer on CuPy: cuBLAS products and fused rank-r epilogues.

Mirrors ``refimpl/adapters/lora.py``. Every matrix product goes through ``xp.matmul``
(cuBLAS on a GPU); the thin branch is evaluated through the r-dimensional bottleneck,
``(x Aᵀ) Bᵀ``, never by forming ``B A``. The elementwise tails — ``x Wᵀ + s·(h Bᵀ) + b`` in
the forward, ``G W + h̄ A`` in the backward — are one fused kernel each, so the (T, out)
result is written once. ``h = x Aᵀ`` is the forward's residual; ``G B`` is computed once
and shared by x̄ and Ā.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def add_scaled(base, low_rank, scale):
        return base + scale * low_rank

    @fuse
    def add_scaled_and_bias(base, low_rank, scale, bias):
        return base + scale * low_rank + bias

    @fuse
    def add(left, right):
        return left + right

    @fuse
    def scaled(values, scale):
        return scale * values

    return SimpleNamespace(
        add_scaled=add_scaled,
        add_scaled_and_bias=add_scaled_and_bias,
        add=add,
        scaled=scaled,
    )


kernels_for = kernel_set(_kernels)


def lora_linear_forward(x, W, A, B, bias=None, *, scale):
    xp = xp_of(x)
    k = kernels_for(x)
    scale = float(scale)
    h = xp.matmul(x, A.T)  # (..., r), the residual
    base = xp.matmul(x, W.T)
    low_rank = xp.matmul(h, B.T)
    if bias is None:
        y = k.add_scaled(base, low_rank, scale)
    else:
        y = k.add_scaled_and_bias(base, low_rank, scale, bias)
    return y, (x, W, A, B, h, scale)


def lora_linear_backward(residuals, g_y):
    x, W, A, B, h, scale = residuals
    xp = xp_of(x)
    k = kernels_for(x)
    g_rows = g_y.reshape(-1, W.shape[0])
    x_rows = x.reshape(-1, W.shape[1])
    h_rows = h.reshape(-1, A.shape[0])
    g_h = k.scaled(xp.matmul(g_rows, B), scale)  # h̄ = s·G B, (T, r)
    g_x = k.add(xp.matmul(g_rows, W), xp.matmul(g_h, A))
    g_A = xp.matmul(g_h.T, x_rows)
    g_B = k.scaled(xp.matmul(g_rows.T, h_rows), scale)
    return g_x.reshape(x.shape), g_A, g_B


IMPLS = {"lora_linear": Impl(lora_linear_forward, lora_linear_backward)}
