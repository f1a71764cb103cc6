"""R-AMT gradient dropout on CuPy: one fused elementwise kernel reads g_a, g_b, U once.

Mirrors ``refimpl/optim/gradient_dropout.py`` in the same operation order; on the host the
same function runs as plain NumPy (fusion off).
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set

EPS = 1e-8  # the official guard, as in the reference


def _kernels(xp, fuse):
    @fuse
    def combine(g_a, g_b, u, eps, one, two, drop_factor):
        agreement = xp.sign(g_a) * (g_a + g_b) / (xp.abs(g_a) + xp.abs(g_b) + eps)
        keep_probability = (agreement + one) / two
        return xp.where(keep_probability > u, one, drop_factor) * g_a

    return SimpleNamespace(combine=combine)


kernels_for = kernel_set(_kernels)


def gradient_dropout_combine_forward(g_a, g_b, u, *, lam):
    dtype = g_a.dtype.type
    return kernels_for(g_a).combine(g_a, g_b, u, dtype(EPS), dtype(1), dtype(2), dtype(1 - lam)), None


IMPLS = {"gradient_dropout_combine": Impl(gradient_dropout_combine_forward)}
