"""The RED-diff loss: NumPy's BLAS for ``x0 Hᵀ`` and ``r H``, fused Numba row kernels for the rest.

Mirrors ``refimpl/solvers/reddiff.py``: one row-parallel pass forms ``r = y − x0 Hᵀ`` from the
BLAS product and the two per-row sums ``Σ r²`` and ``Σ (ê − ε) x0`` in float64; the backward is
``μ̄ = ḡ (w (ê − ε)/n_μ − v r H/n_y)``, one BLAS product and one fused row kernel.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl
from refimpl.solvers.reddiff import denoiser_weight

from .._jit import parallel_kernel


@parallel_kernel(fastmath={"reassoc"})
def _reddiff_rows(x0, y, prediction, e_hat, eps, residual, obs_sums, noise_sums):
    for i in prange(x0.shape[0]):
        squares = 0.0
        for m in range(y.shape[1]):
            r = np.float64(y[i, m]) - np.float64(prediction[i, m])
            residual[i, m] = r
            squares += r * r
        inner = 0.0
        for d in range(x0.shape[1]):
            inner += (np.float64(e_hat[i, d]) - np.float64(eps[i, d])) * np.float64(x0[i, d])
        obs_sums[i] = squares
        noise_sums[i] = inner


@parallel_kernel(fastmath={"reassoc"})
def _reddiff_backward_rows(e_hat, eps, residual_h, noise_scale, obs_scale, g_mu):
    for i in prange(e_hat.shape[0]):
        for d in range(e_hat.shape[1]):
            g_mu[i, d] = noise_scale * (
                np.float64(e_hat[i, d]) - np.float64(eps[i, d])
            ) - obs_scale * np.float64(residual_h[i, d])


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
    x0 = mu if sigma_x0 == 0 else mu + mu.dtype.type(sigma_x0) * eps_x0
    x0 = np.ascontiguousarray(x0)
    prediction = np.dot(x0, H.T)  # H x0 per row
    batch = mu.shape[0]
    residual = np.empty(y.shape, dtype=mu.dtype)
    obs_sums, noise_sums = np.empty(batch), np.empty(batch)
    e_hat, eps = np.ascontiguousarray(e_hat), np.ascontiguousarray(eps)
    _reddiff_rows(x0, np.ascontiguousarray(y), prediction, e_hat, eps, residual, obs_sums, noise_sums)
    n_y, n_mu = y.size, mu.size
    w = grad_term_weight * denoiser_weight(alpha_bar, weighting)
    loss = w * noise_sums.sum() / n_mu + obs_weight * obs_sums.sum() / (2.0 * n_y)
    return np.asarray(loss, dtype=mu.dtype), (residual, e_hat, eps, H, w, obs_weight, n_y, n_mu)


def reddiff_loss_backward(residuals, g_loss):
    residual, e_hat, eps, H, w, obs_weight, n_y, n_mu = residuals  # noqa: N806
    g = float(g_loss)
    residual_h = np.dot(residual, H)
    g_mu = np.empty(e_hat.shape, dtype=e_hat.dtype)
    _reddiff_backward_rows(
        e_hat, eps, np.ascontiguousarray(residual_h), g * w / n_mu, g * obs_weight / n_y, g_mu
    )
    return (g_mu,)


IMPLS = {"reddiff_loss": Impl(reddiff_loss_forward, reddiff_loss_backward)}
