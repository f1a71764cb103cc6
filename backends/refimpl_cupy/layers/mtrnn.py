"""The PV-RNN MTRNN cell on CuPy: ``xp.matmul`` for the products, fused leaky-tanh kernels.

Mirrors ``refimpl/layers/mtrnn.py``: ``h = (1 − 1/τ) h_{t−1} + u/τ``, ``d = tanh h`` fused in
one kernel; the backward fuses ``ĥ = h̄ + d̄(1 − d²)`` with its two scalings.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def leaky_tanh(h_prev, u, b, inverse_tau):
        h = (1 - inverse_tau) * h_prev + inverse_tau * (u + b)
        return h, xp.tanh(h)

    @fuse
    def leaky_tanh_backward(g_h, g_d, d, inverse_tau):
        total = g_h + g_d * (1 - d * d)
        return (1 - inverse_tau) * total, inverse_tau * total

    return SimpleNamespace(leaky_tanh=leaky_tanh, leaky_tanh_backward=leaky_tanh_backward)


kernels_for = kernel_set(_kernels)


def mtrnn_cell_forward(h_prev, d_prev, z, d_up, w_dd, w_dz, w_up, b, *, tau):
    xp = xp_of(h_prev)
    k = kernels_for(h_prev)
    inverse_tau = h_prev.dtype.type(1 / tau)
    u = xp.matmul(d_prev, w_dd.T) + xp.matmul(z, w_dz.T) + xp.matmul(d_up, w_up.T)
    h, d = k.leaky_tanh(h_prev, u, b, inverse_tau)
    return (h, d), (d_prev, z, d_up, w_dd, w_dz, w_up, d, inverse_tau)


def mtrnn_cell_backward(residuals, cotangents):
    d_prev, z, d_up, w_dd, w_dz, w_up, d, inverse_tau = residuals
    g_h, g_d = cotangents
    xp = xp_of(d)
    g_h_prev, s = kernels_for(d).leaky_tanh_backward(g_h, g_d, d, inverse_tau)
    return (
        g_h_prev,
        xp.matmul(s, w_dd),
        xp.matmul(s, w_dz),
        xp.matmul(s, w_up),
        xp.matmul(s.T, d_prev),
        xp.matmul(s.T, z),
        xp.matmul(s.T, d_up),
        s.sum(axis=0),
    )


IMPLS = {"mtrnn_cell": Impl(mtrnn_cell_forward, mtrnn_cell_backward)}
