"""The f-weighted VSD loss on CuPy: a per-sample distance reduction and fused elementwise pieces.

Mirrors ``refimpl/losses/f_distill.py`` (``vsd_loss``). ``w = h/(mean_d |x − x0_teacher| +
1e-6)`` is a row reduction; ``x − (x − (x0_fake − x0_teacher)·w)`` (formed like the official
code) and the cotangent ``ḡ·difference/numel`` are fused kernels.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of

NORMALIZATION_EPS = 1e-6


def _kernels(xp, fuse):
    @fuse
    def distance_terms(x, teacher):
        return abs(x - teacher)

    @fuse
    def difference(x, fake, teacher, w):
        return x - (x - (fake - teacher) * w)

    @fuse
    def scaled(values, scale):
        return values * scale

    return SimpleNamespace(distance_terms=distance_terms, difference=difference, scaled=scaled)


kernels_for = kernel_set(_kernels)


def vsd_loss_forward(x, x0_fake, x0_teacher, h):
    xp = xp_of(x)
    k = kernels_for(x)
    batch = x.shape[0]
    rows = [a.reshape(batch, -1) for a in (x, x0_fake, x0_teacher)]
    distance = k.distance_terms(rows[0], rows[2]).mean(axis=1)
    w = (h / (distance + x.dtype.type(NORMALIZATION_EPS)))[:, None]
    difference = k.difference(rows[0], rows[1], rows[2], w)
    loss = x.dtype.type(0.5) * (difference * difference).mean()
    return xp.asarray(loss, dtype=x.dtype), (difference, x.shape)


def vsd_loss_backward(residuals, g_loss):
    difference, shape = residuals
    g_x = kernels_for(difference).scaled(difference, g_loss / difference.size)
    return (g_x.astype(difference.dtype, copy=False).reshape(shape),)


IMPLS = {"vsd_loss": Impl(vsd_loss_forward, vsd_loss_backward)}
