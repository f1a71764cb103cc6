"""MixUp on CuPy: one fused elementwise kernel per mix and a scatter-add backward.

Mirrors ``refimpl/regularizers/mixup.py``: ``λ_i x_i + (1 − λ_i) x_{π(i)}`` with the partner
rows gathered; the backward is ``x̄ = λ ⊙ ḡ`` plus ``(1 − λ_i) ḡ_i`` added into row π(i)
(``xp.add.at``, ``cupyx.scatter_add`` semantics on the device).
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def mix(own, partner, weight):
        return weight * own + (1 - weight) * partner

    @fuse
    def scale(g, weight):
        return weight * g, (1 - weight) * g

    return SimpleNamespace(mix=mix, scale=scale)


kernels_for = kernel_set(_kernels)


def mix_rows(x, weight, perm):
    """``weight ⊙ x + (1 − weight) ⊙ x[perm]`` in one fused kernel (weight (B, 1) or (B, D))."""
    return kernels_for(x).mix(x, x[perm], weight).astype(x.dtype)


def mix_rows_backward(weight, perm, g):
    """``weight ⊙ ḡ`` plus ``(1 − weight_i) ⊙ ḡ_i`` added into row ``perm[i]``."""
    g_x, partner_part = kernels_for(g).scale(g, weight)
    xp_of(g).add.at(g_x, perm, partner_part)  # rows sharing a partner add up
    return g_x.astype(g.dtype)


def mixup_forward(x, Y, lam, perm):
    weight = lam.astype(x.dtype)[:, None]
    return (mix_rows(x, weight, perm), mix_rows(Y.astype(x.dtype), weight, perm)), (weight, perm)


def mixup_backward(residuals, cotangents):
    weight, perm = residuals
    return (mix_rows_backward(weight, perm, cotangents[0].astype(weight.dtype)),)


IMPLS = {"mixup": Impl(mixup_forward, mixup_backward)}
