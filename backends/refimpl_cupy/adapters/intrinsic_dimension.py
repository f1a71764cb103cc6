"""The Walsh–Hadamard transform and the Fastfood projection on CuPy: fused radix-4 butterflies.

Mirrors ``refimpl/adapters/intrinsic_dimension.py`` (``fwht``, ``fastfood_projection``, forward
and backward). The transform of the last axis (L = 2^m) runs as ⌈m/2⌉ passes, each one fused
kernel: a radix-4 pass reshapes the rows to (rows, L/4h, 4, h) and maps the four entries
``i, i + h, i + 2h, i + 3h`` through the stages h and 2h at once (a radix-2 pass finishes an
odd m). Like the reference, the butterflies run in float64 whatever the input dtype and the
result is rounded once (see ``fwht``'s docstring for the error bound).

The Fastfood projection chains two transforms with a fused sign/scale, the gather ``v[Π]·G``
(forward) or the scatter ``u[Π_i] = G_i·v_i`` (its adjoint), the truncation and ``1/c``.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def radix2(a, b):
        return a + b, a - b

    @fuse
    def radix4(x0, x1, x2, x3):
        s0, d0, s1, d1 = x0 + x1, x0 - x1, x2 + x3, x2 - x3
        return s0 + s1, d0 + d1, s0 - s1, d0 - d1

    @fuse
    def times(values, factors):
        return values * factors

    @fuse
    def scaled(values, factor):
        return values * factor

    return SimpleNamespace(radix2=radix2, radix4=radix4, times=times, scaled=scaled)


kernels_for = kernel_set(_kernels)


def _hadamard(values):
    """``H values`` along the last axis, as a float64 array of the same shape."""
    xp = xp_of(values)
    k = kernels_for(values)
    length = values.shape[-1]
    work = values.astype(xp.float64).reshape(-1, length)
    rows, half = work.shape[0], 1
    while half < length:
        if 4 * half <= length:
            quads = work.reshape(rows, length // (4 * half), 4, half)
            outputs = k.radix4(quads[:, :, 0], quads[:, :, 1], quads[:, :, 2], quads[:, :, 3])
            half *= 4
        else:
            pairs = work.reshape(rows, length // (2 * half), 2, half)
            outputs = k.radix2(pairs[:, :, 0], pairs[:, :, 1])
            half *= 2
        work = xp.stack(outputs, axis=2).reshape(rows, length)
    return work.reshape(values.shape)


def fwht_forward(x):
    return _hadamard(x).astype(x.dtype, copy=False), x.dtype


def fwht_backward(residuals, g_y):
    return (_hadamard(g_y).astype(residuals, copy=False),)  # x̄ = H ȳ (H symmetric)


def _scale(G, D):  # noqa: N803
    xp = xp_of(G)
    length = G.shape[0]
    square_sum = float(xp.sum(xp.square(G.astype(xp.float64))))
    return math.sqrt(length * square_sum) * math.sqrt(D / length)


def fastfood_projection_forward(x, B, Pi, G, *, D):  # noqa: N803
    xp = xp_of(x)
    k = kernels_for(x)
    length, d = B.shape[0], x.shape[0]
    padded = xp.zeros(length)
    padded[:d] = k.times(x.astype(xp.float64), B[:d])  # B pad_L(x)
    gathered = k.times(_hadamard(padded)[Pi], G)  # G Π H B pad_L(x)
    y = k.scaled(_hadamard(gathered)[:D], 1.0 / _scale(G, D))
    return y.astype(x.dtype, copy=False), (B, Pi, G, d, x.dtype)


def fastfood_projection_backward(residuals, g_y):
    B, Pi, G, d, dtype = residuals  # noqa: N806
    xp = xp_of(g_y)
    k = kernels_for(g_y)
    length, D = B.shape[0], g_y.shape[0]  # noqa: N806
    padded = xp.zeros(length)
    padded[:D] = k.scaled(g_y.astype(xp.float64), 1.0 / _scale(G, D))  # Sᵀ(ḡ/c)
    scattered = xp.empty(length)
    scattered[Pi] = k.times(_hadamard(padded), G)  # Πᵀ G H: u[Π_i] = G_i·(H p)_i
    g_x = k.times(_hadamard(scattered)[:d], B[:d])
    return (g_x.astype(dtype, copy=False),)


IMPLS = {
    "fwht": Impl(fwht_forward, fwht_backward),
    "fastfood_projection": Impl(fastfood_projection_forward, fastfood_projection_backward),
}
