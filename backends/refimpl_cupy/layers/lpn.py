"""Learned proximal networks on CuPy: ``matmul`` for the layer products, fused elementwise kernels.

Mirrors ``refimpl/layers/lpn.py``: per layer one fused kernel for the bias add with
softplus_β, its slope sigmoid(βa) and curvature β·sigmoid'(βa) (one ``exp(−|βa|)``), and
fused kernels for ``ρ = s ⊙ ȧ``, ``q = ȧ ⊙ δ ⊙ σ''`` and ``c = q + s ⊙ (c W)`` in the VJP.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def activate(a, beta):
        x = beta * a
        e = xp.exp(-abs(x))  # exp never sees a positive argument
        z = (xp.maximum(x, 0) + xp.log1p(e)) / beta
        slope = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return z, slope, beta * e / ((1 + e) * (1 + e))

    @fuse
    def tangent(a_dot, delta, slope, curvature):
        return slope * a_dot, a_dot * delta * curvature

    @fuse
    def add_times(q, slope, back):
        return q + slope * back

    return SimpleNamespace(activate=activate, tangent=tangent, add_times=add_times)


kernels_for = kernel_set(_kernels)


def _network(y, A, b, W, beta):
    k = kernels_for(y)
    xp = xp_of(y)
    z, slopes, curvatures = [], [], []
    for layer in range(A.shape[0]):
        a = xp.matmul(y, A[layer].T) + b[layer]
        if layer > 0:
            a += xp.matmul(z[-1], W[layer - 1].T)
        z_l, s_l, c_l = k.activate(a, y.dtype.type(beta))
        z.append(z_l)
        slopes.append(s_l)
        curvatures.append(c_l)
    return z, slopes, curvatures


def lpn_potential_forward(y, A, b, W, w, *, alpha=0.0, beta=1.0):
    xp = xp_of(y)
    z, slopes, _ = _network(y, A, b, W, beta)
    psi = xp.matmul(z[-1], w) + y.dtype.type(alpha) * (y * y).sum(axis=1)
    return psi.astype(y.dtype), (y, A, W, w, z, slopes, alpha)


def lpn_potential_backward(residuals, g_psi):
    y, A, W, w, z, slopes, alpha = residuals
    xp = xp_of(y)
    layers = A.shape[0]
    g_A, g_b, g_W = xp.empty_like(A), xp.empty((layers, A.shape[1]), dtype=A.dtype), xp.empty_like(W)
    delta = g_psi[:, None] * w  # δ_L = g wᵀ
    g_y = (2 * y.dtype.type(alpha)) * g_psi[:, None] * y
    for layer in range(layers - 1, -1, -1):
        a_bar = delta * slopes[layer]
        g_A[layer] = xp.matmul(a_bar.T, y)
        g_b[layer] = a_bar.sum(axis=0)
        g_y += xp.matmul(a_bar, A[layer])
        if layer > 0:
            g_W[layer - 1] = xp.matmul(a_bar.T, z[layer - 1])
            delta = xp.matmul(a_bar, W[layer - 1])
    return g_y, g_A, g_b, g_W, xp.matmul(z[-1].T, g_psi)


def lpn_prox_forward(y, A, b, W, w, *, alpha=0.0, beta=1.0):
    xp = xp_of(y)
    z, slopes, curvatures = _network(y, A, b, W, beta)
    layers = A.shape[0]
    deltas, a_bars = [None] * layers, [None] * layers
    delta = xp.broadcast_to(w, slopes[-1].shape)  # δ_L = w on every row
    f = (2 * y.dtype.type(alpha)) * y
    for layer in range(layers - 1, -1, -1):
        a_bar = slopes[layer] * delta
        deltas[layer], a_bars[layer] = delta, a_bar
        f = f + xp.matmul(a_bar, A[layer])
        if layer > 0:
            delta = xp.matmul(a_bar, W[layer - 1])
    return f, (y, A, W, z, slopes, curvatures, deltas, a_bars, alpha)


def lpn_prox_backward(residuals, g_f):
    y, A, W, z, slopes, curvatures, deltas, a_bars, alpha = residuals
    k = kernels_for(y)
    xp = xp_of(y)
    layers = A.shape[0]
    g_A, g_b, g_W = xp.empty_like(A), xp.empty((layers, A.shape[1]), dtype=A.dtype), xp.empty_like(W)
    q_all, rho = [], None
    for layer in range(layers):  # tangent pass along v = g_f
        a_dot = xp.matmul(g_f, A[layer].T)
        if layer > 0:
            a_dot += xp.matmul(rho, W[layer - 1].T)
            g_W[layer - 1] = xp.matmul(a_bars[layer].T, rho)
        rho, q = k.tangent(a_dot, deltas[layer], slopes[layer], curvatures[layer])
        q_all.append(q)
        g_A[layer] = xp.matmul(a_bars[layer].T, g_f)
    g_w = rho.sum(axis=0)
    g_y = (2 * y.dtype.type(alpha)) * g_f
    c = q_all[-1]
    for layer in range(layers - 1, -1, -1):  # second reverse pass: c_l, the cotangent of a_l
        if layer < layers - 1:
            c = k.add_times(q_all[layer], slopes[layer], xp.matmul(c, W[layer]))
        g_y += xp.matmul(c, A[layer])
        g_A[layer] += xp.matmul(c.T, y)
        g_b[layer] = c.sum(axis=0)
        if layer > 0:
            g_W[layer - 1] += xp.matmul(c.T, z[layer - 1])
    return g_y, g_A, g_b, g_W, g_w


IMPLS = {
    "lpn_potential": Impl(lpn_potential_forward, lpn_potential_backward),
    "lpn_prox": Impl(lpn_prox_forward, lpn_prox_backward),
}
