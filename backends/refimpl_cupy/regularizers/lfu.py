"""LfU consistency loss on CuPy: a fused masked sum of squares and its gradient.

Mirrors ``refimpl/regularizers/lfu.py``: ``loss = λ w/(n·D) · Σ m (h_aux − h)²`` and
``h̄_aux = 2 ḡ λ w (h_aux − h) m/(n·D)``, ``h̄ = −h̄_aux``. ``lfu_normalized_ascent_step``: the
scaled norm of ``g`` in float64, then one fused ``θ + (α/‖g‖)·g``.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from refimpl.authoring import Impl, row_norm

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def masked_squares(hidden, hidden_aux, valid):
        difference = hidden_aux - hidden
        return difference * difference * valid

    @fuse
    def consistency_grad(hidden, hidden_aux, valid, factor):
        return factor * (hidden_aux - hidden) * valid

    @fuse
    def ascent(theta, grad, coefficient):
        return theta + coefficient * grad

    return SimpleNamespace(masked_squares=masked_squares, consistency_grad=consistency_grad, ascent=ascent)


kernels_for = kernel_set(_kernels)


def lfu_consistency_loss_forward(hidden, hidden_aux, mask=None, *, lam, layer_reduction="sum"):
    xp = xp_of(hidden)
    k = kernels_for(hidden)
    layers, tokens, features = hidden.shape
    valid = xp.ones(tokens, dtype=hidden.dtype) if mask is None else mask.astype(hidden.dtype)
    valid = valid[None, :, None]
    count = int(valid.sum())
    if count == 0:
        return xp.zeros((), dtype=hidden.dtype), (hidden, hidden_aux, valid, 0.0)
    scale = lam * (1.0 if layer_reduction == "sum" else 1.0 / layers) / (count * features)
    loss = hidden.dtype.type(scale) * k.masked_squares(hidden, hidden_aux, valid).sum()
    return xp.asarray(loss).astype(hidden.dtype), (hidden, hidden_aux, valid, scale)


def lfu_consistency_loss_backward(residuals, g_loss):
    hidden, hidden_aux, valid, scale = residuals
    k = kernels_for(hidden)
    factor = g_loss.astype(hidden.dtype) * hidden.dtype.type(2 * scale)
    g_hidden_aux = k.consistency_grad(hidden, hidden_aux, valid, factor).astype(hidden.dtype)
    return (-g_hidden_aux).astype(hidden.dtype), g_hidden_aux


def lfu_normalized_ascent_step_forward(theta_aux, grad, *, alpha=0.1):
    norm = float(row_norm(grad.astype(np.float64))[0])  # scaled where Σg² leaves the range
    coefficient = theta_aux.dtype.type(alpha / norm)
    return kernels_for(theta_aux).ascent(theta_aux, grad, coefficient).astype(theta_aux.dtype), None


IMPLS = {
    "lfu_consistency_loss": Impl(lfu_consistency_loss_forward, lfu_consistency_loss_backward),
    "lfu_normalized_ascent_step": Impl(lfu_normalized_ascent_step_forward),
}
