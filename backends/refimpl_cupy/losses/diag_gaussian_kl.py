"""Diagonal-Gaussian KL on CuPy: one fused elementwise kernel per direction + a row sum.

Mirrors ``refimpl/losses/diag_gaussian_kl.py``: per element ``v = log(σ_q²/σ_p²)`` and
``t = Δ/σ_p`` from the given parameterization, the term ``½(expm1(v) − v + t²)``, summed over
the last axis. The backward kernel recomputes ``e = expm1(v)`` and ``t`` from the inputs and
returns the four gradients at once (no (…, d) residuals kept).
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    # v = log(σ_q²/σ_p²) and 1/σ_p for each parameterization: no scale exponentiated alone
    def log_var(scale_q, scale_p):
        return scale_q - scale_p, xp.exp(-0.5 * scale_p)

    def log_std(scale_q, scale_p):
        return 2 * (scale_q - scale_p), xp.exp(-scale_p)

    def std(scale_q, scale_p):
        return 2 * xp.log(scale_q / scale_p), 1 / scale_p

    def terms_for(ratio_and_inverse_std):
        @fuse
        def terms(mu_q, scale_q, mu_p, scale_p):
            v, inverse_std_p = ratio_and_inverse_std(scale_q, scale_p)
            t = (mu_q - mu_p) * inverse_std_p
            return 0.5 * (xp.expm1(v) - v + t * t)

        return terms

    def grads_for(ratio_and_inverse_std, scale_q_factor, scale_p_factor):
        @fuse
        def grads(mu_q, scale_q, mu_p, scale_p, w):
            v, inverse_std_p = ratio_and_inverse_std(scale_q, scale_p)
            t = (mu_q - mu_p) * inverse_std_p
            e = xp.expm1(v)  # σ_q²/σ_p² − 1
            g_mu = w * t * inverse_std_p  # w·Δ/σ_p²
            g_scale_q = w * e * scale_q_factor(scale_q)
            g_scale_p = -w * (e + t * t) * scale_p_factor(inverse_std_p)
            return g_mu, g_scale_q, -g_mu, g_scale_p

        return grads

    def half(_):
        return 0.5

    def one(_):
        return 1.0

    def inverse(x):
        return 1 / x

    def identity(x):
        return x

    return SimpleNamespace(
        terms={"log_var": terms_for(log_var), "log_std": terms_for(log_std), "std": terms_for(std)},
        grads={
            "log_var": grads_for(log_var, half, half),  # ℓ̄_q = ½we, ℓ̄_p = −½w(e + t²)
            "log_std": grads_for(log_std, one, one),  # s̄_q = we, s̄_p = −w(e + t²)
            "std": grads_for(std, inverse, identity),  # σ̄_q = we/σ_q, σ̄_p = −w(e + t²)/σ_p
        },
    )


kernels_for = kernel_set(_kernels)


def diag_gaussian_kl_forward(
    mu_q, scale_q, mu_p, scale_p, *, parameterization="log_var", weight=1.0, normalize_by_dim=False
):
    k = kernels_for(mu_q)
    dtype = mu_q.dtype.type
    num_dims = mu_q.shape[-1]
    coefficient = dtype(weight / num_dims if normalize_by_dim else weight)
    kl = coefficient * k.terms[parameterization](mu_q, scale_q, mu_p, scale_p).sum(axis=-1)
    residuals = (mu_q, scale_q, mu_p, scale_p, parameterization, coefficient)
    return xp_of(mu_q).asarray(kl, dtype=mu_q.dtype), residuals


def diag_gaussian_kl_backward(residuals, g_kl):
    mu_q, scale_q, mu_p, scale_p, parameterization, coefficient = residuals
    k = kernels_for(mu_q)
    w = (coefficient * g_kl.astype(mu_q.dtype))[..., None]
    grads = k.grads[parameterization](mu_q, scale_q, mu_p, scale_p, w)
    return tuple(g.astype(mu_q.dtype) for g in grads)


IMPLS = {"diag_gaussian_kl": Impl(diag_gaussian_kl_forward, diag_gaussian_kl_backward)}
