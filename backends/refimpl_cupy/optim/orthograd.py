"""⊥Grad on CuPy: fused reductions for the sums, one fused pass for the output.

Mirrors ``refimpl/optim/orthograd.py``. ``⟨w, w⟩``, ``⟨w, g⟩``, ``⟨g, g⟩`` and ``‖g − c·w‖²``
are fused multiply-and-sum kernels on float64 copies (float32 squares overflow at |w| ~ 1e20
and underflow at |g| ~ 1e-20, where the result is representable); the result
``(g − c·w)·s`` is written once, with ``s = 1`` or, with ``rescale``, ``‖g‖/(‖g_⊥‖ + ε)``.
Coefficients are rounded once to the arrays' dtype, as in the reference. On the host the
same functions run as plain NumPy.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of

EPS = 1e-30  # the official guard, as in the reference


def _kernels(xp, fuse):
    @fuse
    def dot(a, b):
        return xp.sum(a * b)

    @fuse
    def project_and_scale(g, w, coefficient, factor):
        return (g - coefficient * w) * factor

    return SimpleNamespace(dot=dot, project_and_scale=project_and_scale)


kernels_for = kernel_set(_kernels)


def orthograd_step_forward(params, grads, *, rescale=False):
    xp = xp_of(grads)
    k = kernels_for(grads)
    dtype = grads.dtype.type
    w = params.reshape(-1)
    g = grads.reshape(-1)
    # the sums in float64, as the reference: float32 squares overflow or underflow first
    w64, g64 = w.astype(xp.float64), g.astype(xp.float64)
    coefficient = dtype(float(k.dot(w64, g64)) / (float(k.dot(w64, w64)) + EPS))
    perp = k.project_and_scale(g, w, coefficient, dtype(1)).astype(xp.float64)
    norm_perp = math.sqrt(float(k.dot(perp, perp)))
    if norm_perp == 0.0:  # g ∥ w exactly (or g = 0)
        return xp.zeros_like(grads), None
    factor = dtype(math.sqrt(float(k.dot(g64, g64))) / (norm_perp + EPS)) if rescale else dtype(1)
    return k.project_and_scale(g, w, coefficient, factor).reshape(grads.shape), None


IMPLS = {"orthograd_step": Impl(orthograd_step_forward)}
