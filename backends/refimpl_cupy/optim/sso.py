"""SSO's target-space surrogate on CuPy: one fused elementwise kernel per pass, then a sum.

Mirrors ``refimpl/optim/sso.py``. The forward fuses the per-entry term (paper:
``∇ℓ·d + d²/(2η)``; code: ``∇ℓ·z/η_c + d²``, with ``d = z − z_t``) and reduces it with one
sum; the backward is one fused kernel, ``z̄ = a·∇ℓ + b·(z − z_t)``.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set


def _kernels(xp, fuse):
    @fuse
    def paper_terms(z, z_t, grad_t, inverse_two_eta):
        d = z - z_t
        return grad_t * d + d * d * inverse_two_eta

    @fuse
    def code_terms(z, z_t, grad_t, eta):
        d = z - z_t
        return grad_t * z / eta + d * d

    @fuse
    def surrogate_grad(z, z_t, grad_t, grad_scale, distance_scale):
        return grad_scale * grad_t + distance_scale * (z - z_t)

    return SimpleNamespace(paper_terms=paper_terms, code_terms=code_terms, surrogate_grad=surrogate_grad)


kernels_for = kernel_set(_kernels)


def sso_surrogate_forward(z, z_t, grad_t, *, eta, loss_t=None, form="paper"):
    k = kernels_for(z)
    dtype = z.dtype.type
    if form == "paper":
        value = k.paper_terms(z, z_t, grad_t, dtype(1 / (2 * eta))).sum()
        if loss_t is not None:
            value = value + dtype(loss_t)
    else:
        value = k.code_terms(z, z_t, grad_t, dtype(eta)).mean()
    return value.astype(z.dtype), (z, z_t, grad_t, eta, form)


def sso_surrogate_backward(residuals, g_surrogate):
    z, z_t, grad_t, eta, form = residuals
    dtype = z.dtype.type
    g = g_surrogate.astype(z.dtype)
    if form == "paper":
        grad_scale, distance_scale = g, g * dtype(1 / eta)
    else:
        mean_scale = g * dtype(1 / z.size)
        grad_scale, distance_scale = mean_scale * dtype(1 / eta), mean_scale * dtype(2)
    g_z = kernels_for(z).surrogate_grad(z, z_t, grad_t, grad_scale, distance_scale)
    return (g_z.astype(z.dtype),)


IMPLS = {"sso_surrogate": Impl(sso_surrogate_forward, sso_surrogate_backward)}
