"""Learned proximal networks: NumPy's BLAS for the layer products, Numba kernels for the rest.

Mirrors ``refimpl/layers/lpn.py``. Every matrix product (``y A_lᵀ``, ``z W_lᵀ``, ``ā A_l``,
``āᵀ y``, ...) goes through ``np.dot``; row-parallel kernels do the elementwise work per
layer in float64 scalars: the bias add with softplus_β, its slope sigmoid(βa) and curvature
β·sigmoid'(βa) from one ``exp(−|βa|)`` (``_vmath``), the products ``ā = s ⊙ δ``, the tangent
``ρ = s ⊙ ȧ`` with ``q = ȧ ⊙ δ ⊙ σ''`` and the second reverse pass ``c = q + s ⊙ (c W)``.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel
from .._vmath import exp, log1p


@parallel_kernel()
def _activate(a, bias, beta, z, slope, curvature):
    """In place ``a += bias``; ``z = softplus(βa)/β``, ``slope = sigmoid(βa)``, ``curvature = σ''(a)``."""
    for i in prange(a.shape[0]):
        for j in range(a.shape[1]):
            value = np.float64(a[i, j]) + np.float64(bias[j])
            a[i, j] = value
            x = beta * value
            e = exp(-abs(x))  # exp never sees a positive argument
            z[i, j] = (max(x, 0.0) + log1p(e)) / beta
            slope[i, j] = 1.0 / (1.0 + e) if x >= 0.0 else e / (1.0 + e)
            curvature[i, j] = beta * e / ((1.0 + e) * (1.0 + e))


@parallel_kernel()
def _times(left, right, out):
    """``out = left ⊙ right`` (``right`` may be a broadcast row: stride 0)."""
    for i in prange(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = np.float64(left[i, j]) * np.float64(right[i, j])


@parallel_kernel()
def _tangent(a_dot, delta, slope, curvature, rho, q):
    """``ρ = s ⊙ ȧ`` and ``q = ȧ ⊙ δ ⊙ σ''``."""
    for i in prange(a_dot.shape[0]):
        for j in range(a_dot.shape[1]):
            t = np.float64(a_dot[i, j])
            rho[i, j] = np.float64(slope[i, j]) * t
            q[i, j] = t * np.float64(delta[i, j]) * np.float64(curvature[i, j])


@parallel_kernel()
def _add_times(q, slope, back, out):
    """``out = q + s ⊙ back``."""
    for i in prange(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = np.float64(q[i, j]) + np.float64(slope[i, j]) * np.float64(back[i, j])


def _network(y, A, b, W, beta):
    pre, z, slopes, curvatures = [], [], [], []
    for layer in range(A.shape[0]):
        a = np.dot(y, A[layer].T)
        if layer > 0:
            a += np.dot(z[-1], W[layer - 1].T)
        z_l, s_l, c_l = np.empty_like(a), np.empty_like(a), np.empty_like(a)
        _activate(a, b[layer], float(beta), z_l, s_l, c_l)
        pre.append(a)
        z.append(z_l)
        slopes.append(s_l)
        curvatures.append(c_l)
    return pre, z, slopes, curvatures


def lpn_potential_forward(y, A, b, W, w, *, alpha=0.0, beta=1.0):
    _, z, slopes, _ = _network(y, A, b, W, beta)
    psi = np.dot(z[-1], w) + y.dtype.type(alpha) * np.einsum("ij,ij->i", y, y)
    return psi.astype(y.dtype), (y, A, W, w, z, slopes, alpha)


def lpn_potential_backward(residuals, g_psi):
    y, A, W, w, z, slopes, alpha = residuals
    layers = A.shape[0]
    g_A, g_b, g_W = np.empty_like(A), np.empty((layers, A.shape[1]), dtype=A.dtype), np.empty_like(W)
    delta = np.multiply.outer(g_psi, w)  # δ_L = g wᵀ
    g_y = (2 * y.dtype.type(alpha)) * g_psi[:, None] * y
    for layer in range(layers - 1, -1, -1):
        a_bar = np.empty_like(delta)
        _times(delta, slopes[layer], a_bar)
        g_A[layer] = np.dot(a_bar.T, y)
        g_b[layer] = a_bar.sum(axis=0)
        g_y += np.dot(a_bar, A[layer])
        if layer > 0:
            g_W[layer - 1] = np.dot(a_bar.T, z[layer - 1])
            delta = np.dot(a_bar, W[layer - 1])
    return g_y, g_A, g_b, g_W, np.dot(z[-1].T, g_psi)


def lpn_prox_forward(y, A, b, W, w, *, alpha=0.0, beta=1.0):
    _, z, slopes, curvatures = _network(y, A, b, W, beta)
    layers = A.shape[0]
    deltas, a_bars = [None] * layers, [None] * layers
    delta = np.broadcast_to(w, slopes[-1].shape)  # δ_L = w on every row
    f = (2 * y.dtype.type(alpha)) * y
    for layer in range(layers - 1, -1, -1):
        a_bar = np.empty_like(slopes[layer])
        _times(slopes[layer], delta, a_bar)
        deltas[layer], a_bars[layer] = delta, a_bar
        f += np.dot(a_bar, A[layer])
        if layer > 0:
            delta = np.dot(a_bar, W[layer - 1])
    return f, (y, A, W, z, slopes, curvatures, deltas, a_bars, alpha)


def lpn_prox_backward(residuals, g_f):
    y, A, W, z, slopes, curvatures, deltas, a_bars, alpha = residuals
    layers = A.shape[0]
    g_A, g_b, g_W = np.empty_like(A), np.empty((layers, A.shape[1]), dtype=A.dtype), np.empty_like(W)
    q_all, rho = [], None
    for layer in range(layers):  # tangent pass along v = g_f
        a_dot = np.dot(g_f, A[layer].T)
        if layer > 0:
            a_dot += np.dot(rho, W[layer - 1].T)
            g_W[layer - 1] = np.dot(a_bars[layer].T, rho)
        rho, q = np.empty_like(a_dot), np.empty_like(a_dot)
        _tangent(a_dot, deltas[layer], slopes[layer], curvatures[layer], rho, q)
        q_all.append(q)
        g_A[layer] = np.dot(a_bars[layer].T, g_f)
    g_w = rho.sum(axis=0)
    g_y = (2 * y.dtype.type(alpha)) * g_f
    c = q_all[-1]
    for layer in range(layers - 1, -1, -1):  # second reverse pass: c_l, the cotangent of a_l
        if layer < layers - 1:
            back = np.dot(c, W[layer])
            c = np.empty_like(back)
            _add_times(q_all[layer], slopes[layer], back, c)
        g_y += np.dot(c, A[layer])
        g_A[layer] += np.dot(c.T, y)
        g_b[layer] = c.sum(axis=0)
        if layer > 0:
            g_W[layer - 1] += np.dot(c.T, z[layer - 1])
    return g_y, g_A, g_b, g_W, g_w


IMPLS = {
    "lpn_potential": Impl(lpn_potential_forward, lpn_potential_backward),
    "lpn_prox": Impl(lpn_prox_forward, lpn_prox_backward),
}
