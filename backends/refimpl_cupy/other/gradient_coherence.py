"""Gradient coherence on CuPy: two float64 reductions of the (m, P) gradients.

Mirrors ``refimpl/other/gradient_coherence.py``: the column sums ``Σ_i g_i`` and the total
``Σ_i ‖g_i‖²`` (a fused square-and-sum), then ``α = ‖Σ_i g_i‖²/(m·Σ_i ‖g_i‖²)``. On the
host the same functions run as plain NumPy.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def sum_of_squares(x):
        return xp.sum(x * x)

    return SimpleNamespace(sum_of_squares=sum_of_squares)


kernels_for = kernel_set(_kernels)


def gradient_coherence_forward(g):
    xp = xp_of(g)
    k = kernels_for(g)
    m = g.shape[0]
    g64 = g.astype(xp.float64)
    column_sums = g64.sum(axis=0)
    alpha = (column_sums @ column_sums) / (m * k.sum_of_squares(g64))
    return (alpha.astype(g.dtype).reshape(()), xp.asarray(1.0 / m, dtype=g.dtype)), None


IMPLS = {"gradient_coherence": Impl(gradient_coherence_forward)}
