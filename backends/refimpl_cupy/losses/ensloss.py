"""EnsLoss surrogate on CuPy: the device sorts + one fused elementwise kernel.

Mirrors ``refimpl/losses/ensloss.py``: ``BoxCox⁻¹_λ(ε)`` (fused), sorted; the stable argsort of
the margins (CuPy's sorts are stable radix sorts); the clipped derivatives scattered by rank;
then one kernel for the tail division, the ``−1e−6`` offset and ``g·s``. The backward is the
stated ``ḡ·g/n``.
"""

from __future__ import annotations

from contextlib import nullcontext
from types import SimpleNamespace

from refimpl.authoring import Impl
from refimpl.losses.ensloss import DERIVATIVE_FLOOR, DERIVATIVE_OFFSET

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def box_cox_inverse(eps, lam, inverse_lam, exponential):
        # λ = 0: exp(ε); else max(1 + λε, 0)^{1/λ} (+inf at a zero base for λ < 0)
        base = xp.maximum(1 + lam * eps, 0)
        return xp.where(exponential, xp.exp(eps), base**inverse_lam)

    @fuse
    def tail_and_offset(d, s, offset):
        g = xp.where(s > 1, d / s, d) - offset
        return g, g * s

    return SimpleNamespace(box_cox_inverse=box_cox_inverse, tail_and_offset=tail_and_offset)


kernels_for = kernel_set(_kernels)


def ensloss_surrogate_forward(s, eps, *, lam=0.0):
    xp = xp_of(s)
    k = kernels_for(s)
    dtype = s.dtype.type
    exponential = lam == 0
    # on the host, exp and the power overflow to +inf silently (clipped to −1 below)
    with xp.errstate(over="ignore", divide="ignore") if xp.__name__ == "numpy" else nullcontext():
        b = k.box_cox_inverse(eps, dtype(lam), dtype(1.0 if exponential else 1.0 / lam), exponential)
    d = xp.maximum(-xp.sort(b)[::-1], dtype(DERIVATIVE_FLOOR))
    order = xp.argsort(s, kind="stable")
    placed = xp.empty_like(s)
    placed[order] = d
    g, products = k.tail_and_offset(placed, s, dtype(DERIVATIVE_OFFSET))
    loss = (products.sum(dtype=xp.float64) / s.shape[0]).astype(s.dtype)
    return loss, (g,)


def ensloss_surrogate_backward(residuals, g_loss):
    (g,) = residuals
    scale = (g_loss.astype(g.dtype) / g.dtype.type(g.shape[0])).astype(g.dtype)
    return ((g * scale).astype(g.dtype),)


IMPLS = {"ensloss_surrogate": Impl(ensloss_surrogate_forward, ensloss_surrogate_backward)}
