"""sharpDARTS Max-W mixed op on CuPy: a fused softmax/weight kernel and batched products.

Mirrors ``refimpl/layers/max_w.py``: ``w = softmax(α)`` (max-shifted), ``c = 1 − (m − w)``,
``y = Σ_i c_i O_i`` and ``s_i = ⟨ȳ, O_i⟩`` as batched matrix products (``xp.matmul``), the
max's gradient split evenly over ties, and the softmax VJP.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def shifted_exp(alpha, top):
        return xp.exp(alpha - top)  # ≤ 0: no overflow

    @fuse
    def coefficients_of(w, m):
        return 1 - (m - w)

    @fuse
    def weight_grad(scores, share, total):
        return scores - share * total

    @fuse
    def softmax_grad(w, g_w, weighted):
        return w * (g_w - weighted)

    return SimpleNamespace(
        shifted_exp=shifted_exp,
        coefficients_of=coefficients_of,
        weight_grad=weight_grad,
        softmax_grad=softmax_grad,
    )


kernels_for = kernel_set(_kernels)


def max_w_mixed_op_forward(outputs, alpha):
    k = kernels_for(outputs)
    xp = xp_of(outputs)
    e = k.shifted_exp(alpha, alpha.max(axis=-1, keepdims=True))
    w = e / e.sum(axis=-1, keepdims=True)
    m = w.max(axis=-1, keepdims=True)
    coefficients = k.coefficients_of(w, m)
    y = xp.matmul(coefficients[..., None, :], outputs)[..., 0, :]
    return y, (outputs, w, m, coefficients)


def max_w_mixed_op_backward(residuals, g_y):
    outputs, w, m, coefficients = residuals
    k = kernels_for(outputs)
    xp = xp_of(outputs)
    g_outputs = coefficients[..., :, None] * g_y[..., None, :]
    scores = xp.matmul(outputs, g_y[..., :, None])[..., 0]  # s_i = ⟨ȳ, O_i⟩
    is_max = (w == m).astype(w.dtype)
    share = is_max / is_max.sum(axis=-1, keepdims=True)  # split evenly over ties
    g_w = k.weight_grad(scores, share, scores.sum(axis=-1, keepdims=True))
    g_alpha = k.softmax_grad(w, g_w, (w * g_w).sum(axis=-1, keepdims=True))
    return g_outputs, g_alpha


IMPLS = {"max_w_mixed_op": Impl(max_w_mixed_op_forward, max_w_mixed_op_backward)}
