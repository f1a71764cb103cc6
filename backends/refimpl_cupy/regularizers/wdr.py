"""EQ-Net weight distribution regularization on CuPy: per tensor, fused powers and reductions.

Mirrors ``refimpl/regularizers/wdr.py``: for each included tensor the mean, the unbiased std
from the norm of the centered weights (scaled where their squares overflow), then ``mean z³``
and ``mean z⁴``; the backward is one fused elementwise kernel per tensor.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl, row_norm
from refimpl.regularizers.wdr import segment_offsets

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def powers(w, mu, inverse_s):
        z = (w - mu) * inverse_s
        z2 = z * z
        return z2, z2 * z, z2 * z2

    @fuse
    def wdr_grad(w, mu, inverse_s, kurtosis, skewness, second, a_k, a_s, n):
        z = (w - mu) * inverse_s
        z2 = z * z
        dk = (4 / n) * (z2 * z - skewness) - (4 / (n - 1)) * kurtosis * z
        ds = (3 / n) * (z2 - second) - (3 / (n - 1)) * skewness * z
        return (a_k * dk + a_s * ds) * inverse_s

    return SimpleNamespace(powers=powers, wdr_grad=wdr_grad)


kernels_for = kernel_set(_kernels)


def wdr_loss_forward(w, sizes, *, kurt_rate=0.015, skew_rate=1.0, kurtosis_target=1.8, exclude_first=True):
    xp = xp_of(w)
    k = kernels_for(w)
    dtype = w.dtype.type
    offsets = segment_offsets(sizes.get() if hasattr(sizes, "get") else sizes).tolist()
    first = 1 if exclude_first else 0
    layers = []
    for layer in range(first, len(offsets) - 1):
        start, stop = offsets[layer], offsets[layer + 1]
        weights = w[start:stop]
        n = stop - start
        mu = weights.mean()
        s = row_norm(weights - mu)[0] / dtype(n - 1) ** 0.5  # scaled where Σd² overflows
        z2, z3, z4 = k.powers(weights, mu, 1 / s)
        layers.append((start, stop, mu, s, z4.mean(), z3.mean(), z2.mean()))
    m = len(layers)
    kurtosis = xp.stack([entry[4] for entry in layers])
    skewness = xp.stack([entry[5] for entry in layers])
    loss = dtype(kurt_rate) * ((kurtosis - dtype(kurtosis_target)) ** 2).sum() / dtype(m) + dtype(
        skew_rate
    ) * (skewness * skewness).sum() / dtype(m)
    return loss.astype(w.dtype), (w, layers, kurt_rate, skew_rate, kurtosis_target)


def wdr_loss_backward(residuals, g_loss):
    w, layers, kurt_rate, skew_rate, kurtosis_target = residuals
    xp = xp_of(w)
    k = kernels_for(w)
    dtype = w.dtype.type
    m = len(layers)
    g = g_loss.astype(w.dtype)
    g_w = xp.zeros_like(w)
    for start, stop, mu, s, kurtosis, skewness, second in layers:
        a_k = g * dtype(2 * kurt_rate / m) * (kurtosis - dtype(kurtosis_target))
        a_s = g * dtype(2 * skew_rate / m) * skewness
        g_w[start:stop] = k.wdr_grad(
            w[start:stop], mu, 1 / s, kurtosis, skewness, second, a_k, a_s, dtype(stop - start)
        )
    return (g_w.astype(w.dtype),)


IMPLS = {"wdr_loss": Impl(wdr_loss_forward, wdr_loss_backward)}
