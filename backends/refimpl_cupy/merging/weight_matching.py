"""Weight matching on CuPy: the interpolation between two models as one fused kernel.

Mirrors ``refimpl/merging/weight_matching.py``: ``(1 − λ)·θ_A + λ·θ_B`` in the input dtype,
both coefficients rounded once to it. The permutation search (an assignment solver on the
CPU) and its application stay in the reference.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def lerp(theta_a, theta_b, weight_a, weight_b):
        return weight_a * theta_a + weight_b * theta_b

    return SimpleNamespace(lerp=lerp)


kernels_for = kernel_set(_kernels)


def interpolate_params_forward(theta_a, theta_b, *, lam=0.5):
    xp = xp_of(theta_a)
    weight_a = xp.asarray(1.0 - lam, dtype=theta_a.dtype)
    weight_b = xp.asarray(lam, dtype=theta_a.dtype)
    theta = kernels_for(theta_a).lerp(theta_a, theta_b, weight_a, weight_b)
    return xp.asarray(theta, dtype=theta_a.dtype), None


IMPLS = {"interpolate_params": Impl(interpolate_params_forward)}
