"""The RED-diff loss on CuPy: two matrix products and fused elementwise kernels.

Mirrors ``refimpl/solvers/reddiff.py``: ``r = y − x0 Hᵀ`` and ``(ê − ε) x0`` fused, summed in
float64; the backward ``μ̄ = ḡ (w (ê − ε)/n_μ − v r H/n_y)`` is one product and one fused kernel.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl
from refimpl.solvers.reddiff import denoiser_weight

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def residual_and_square(y, prediction):
        r = y - prediction
        return r, r * r

    @fuse
    def noise_inner(e_hat, eps, x0):
        return (e_hat - eps) * x0

    @fuse
    def gradient(e_hat, eps, residual_h, noise_scale, obs_scale):
        return noise_scale * (e_hat - eps) - obs_scale * residual_h

    return SimpleNamespace(
        residual_and_square=residual_and_square, noise_inner=noise_inner, gradient=gradient
    )


kernels_for = kernel_set(_kernels)


def reddiff_loss_forward(
    mu,
    y,
    H,  # noqa: N803
    eps,
    e_hat,
    eps_x0=None,
    *,
    alpha_bar,
    obs_weight=1.0,
    grad_term_weight=0.25,
    weighting="linear",
    sigma_x0=0.0,
):
    xp = xp_of(mu)
    k = kernels_for(mu)
    x0 = mu if sigma_x0 == 0 else mu + mu.dtype.type(sigma_x0) * eps_x0
    residual, squares = k.residual_and_square(y, x0 @ H.T)
    n_y, n_mu = y.size, mu.size
    w = grad_term_weight * denoiser_weight(alpha_bar, weighting)
    loss_obs = squares.sum(dtype=xp.float64) / (2.0 * n_y)
    loss_noise = k.noise_inner(e_hat, eps, x0).sum(dtype=xp.float64) / n_mu
    loss = (w * loss_noise + obs_weight * loss_obs).astype(mu.dtype)
    return loss, (residual, e_hat, eps, H, w, obs_weight, n_y, n_mu)


def reddiff_loss_backward(residuals, g_loss):
    residual, e_hat, eps, H, w, obs_weight, n_y, n_mu = residuals  # noqa: N806
    k = kernels_for(e_hat)
    g = float(g_loss)
    dtype = e_hat.dtype.type
    g_mu = k.gradient(e_hat, eps, residual @ H, dtype(g * w / n_mu), dtype(g * obs_weight / n_y))
    return (g_mu.astype(e_hat.dtype),)


IMPLS = {"reddiff_loss": Impl(reddiff_loss_forward, reddiff_loss_backward)}
