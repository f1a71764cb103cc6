"""The STN best-response layer on CuPy: ``matmul`` for the products, fused gating kernels.

Mirrors ``refimpl/layers/stn.py``: one fused kernel for ``s·(x Wᵀ + b) + σ_w ⊙ (x W_hᵀ) +
σ_b ⊙ b_h`` and one for the gate cotangents ``G ⊙ σ_w``, ``G ⊙ x W_hᵀ``, ``G ⊙ b_h``.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def combine(linear, scale, gate_w, hidden, gate_b, hyper_bias):
        return scale * linear + gate_w * hidden + gate_b * hyper_bias

    @fuse
    def gate_cotangents(g_out, gate_w, hidden, hyper_bias):
        return g_out * gate_w, g_out * hidden, g_out * hyper_bias

    return SimpleNamespace(combine=combine, gate_cotangents=gate_cotangents)


kernels_for = kernel_set(_kernels)


def stn_hyperlinear_forward(x, h, W, b, W_h, b_h, U, s):
    xp = xp_of(x)
    k = kernels_for(x)
    out_features = W.shape[0]
    linear = xp.matmul(x, W.T) + b
    hidden = xp.matmul(x, W_h.T)
    gates = xp.matmul(h, U.T)
    gate_w, gate_b = gates[:, :out_features], gates[:, out_features:]
    out = k.combine(linear, s, gate_w, hidden, gate_b, b_h)
    return out, (x, h, W, W_h, b_h, U, s, linear, hidden, gate_w, gate_b)


def stn_hyperlinear_backward(residuals, g_out):
    x, h, W, W_h, b_h, U, s, linear, hidden, gate_w, gate_b = residuals
    xp = xp_of(x)
    k = kernels_for(x)
    g_gate_w, g_gate_hidden, g_gate_bias = k.gate_cotangents(g_out, gate_w, hidden, b_h)
    g_gates = xp.concatenate([g_gate_hidden, g_gate_bias], axis=1)
    g_x = s * xp.matmul(g_out, W) + xp.matmul(g_gate_w, W_h)
    g_h = xp.matmul(g_gates, U)
    g_W = s * xp.matmul(g_out.T, x)
    g_b = s * g_out.sum(axis=0)
    g_W_h = xp.matmul(g_gate_w.T, x)
    g_b_h = (g_out * gate_b).sum(axis=0)
    g_U = xp.matmul(g_gates.T, h)
    g_s = (g_out * linear).sum().reshape(1)
    return g_x, g_h, g_W, g_b, g_W_h, g_b_h, g_U, g_s


IMPLS = {"stn_hyperlinear": Impl(stn_hyperlinear_forward, stn_hyperlinear_backward)}
