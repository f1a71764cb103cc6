"""The PV-RNN MTRNN cell: NumPy BLAS for the products, Numba kernels for the leaky update.

Mirrors ``refimpl/layers/mtrnn.py``. ``u = d_{t−1}W_ddᵀ + z W_dzᵀ + d^{l+1} W_upᵀ`` and the
backward's ``s W``, ``sᵀ x`` are ``np.dot`` (BLAS); the leaky integration with the tanh and
its cotangent ``ĥ = h̄ + d̄(1 − d²)`` are row kernels in float64 scalars.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@parallel_kernel()
def _leaky_tanh(h_prev, u, b, inverse_tau, h, d):
    for i in prange(h.shape[0]):
        for j in range(h.shape[1]):
            value = (1.0 - inverse_tau) * np.float64(h_prev[i, j]) + inverse_tau * (
                np.float64(u[i, j]) + np.float64(b[j])
            )
            h[i, j] = value
            d[i, j] = math.tanh(value)


@parallel_kernel()
def _leaky_tanh_backward(g_h, g_d, d, inverse_tau, g_h_prev, s):
    for i in prange(d.shape[0]):
        for j in range(d.shape[1]):
            out = np.float64(d[i, j])
            total = np.float64(g_h[i, j]) + np.float64(g_d[i, j]) * (1.0 - out * out)
            g_h_prev[i, j] = (1.0 - inverse_tau) * total
            s[i, j] = inverse_tau * total


def mtrnn_cell_forward(h_prev, d_prev, z, d_up, w_dd, w_dz, w_up, b, *, tau):
    u = np.dot(d_prev, w_dd.T) + np.dot(z, w_dz.T) + np.dot(d_up, w_up.T)
    h = np.empty(h_prev.shape, dtype=h_prev.dtype)
    d = np.empty(h_prev.shape, dtype=h_prev.dtype)
    inverse_tau = 1.0 / float(tau)
    _leaky_tanh(np.ascontiguousarray(h_prev), u, b, inverse_tau, h, d)
    return (h, d), (d_prev, z, d_up, w_dd, w_dz, w_up, d, inverse_tau)


def mtrnn_cell_backward(residuals, cotangents):
    d_prev, z, d_up, w_dd, w_dz, w_up, d, inverse_tau = residuals
    g_h, g_d = (np.ascontiguousarray(g) for g in cotangents)
    g_h_prev = np.empty(d.shape, dtype=d.dtype)
    s = np.empty(d.shape, dtype=d.dtype)
    _leaky_tanh_backward(g_h, g_d, d, inverse_tau, g_h_prev, s)
    return (
        g_h_prev,
        np.dot(s, w_dd),
        np.dot(s, w_dz),
        np.dot(s, w_up),
        np.dot(s.T, d_prev),
        np.dot(s.T, z),
        np.dot(s.T, d_up),
        s.sum(axis=0, dtype=np.float64).astype(d.dtype),
    )


IMPLS = {"mtrnn_cell": Impl(mtrnn_cell_forward, mtrnn_cell_backward)}
