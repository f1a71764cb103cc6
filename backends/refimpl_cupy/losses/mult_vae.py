"""Mult-VAE multinomial log-likelihood and β-ELBO on CuPy: fused elementwise kernels + row reductions.

Mirrors ``refimpl/losses/mult_vae.py``. The forward keeps the row max and the row sum of
``exp(f − max)`` (not the (B, I) probabilities); the backward's fused kernel recomputes
``softmax(f)`` from them (``exp(f − lse)`` would lose the digits of ``log Σ`` in float32
at |f| ~ 1e4). The KL terms and their gradients are one fused kernel each.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def likelihood_grad(f, x, m, inverse_total, clicks, w):
        # w·(x − softmax(f)·Σx): the log-softmax VJP with cotangent w·x
        return w * (x - xp.exp(f - m) * inverse_total * clicks)

    @fuse
    def kl_terms(mu, logvar):
        return 0.5 * (-logvar + xp.exp(logvar) + mu * mu - 1)

    @fuse
    def kl_grads(mu, logvar, scale):
        return scale * mu, scale * 0.5 * (xp.exp(logvar) - 1)

    return SimpleNamespace(likelihood_grad=likelihood_grad, kl_terms=kl_terms, kl_grads=kl_grads)


kernels_for = kernel_set(_kernels)


def _likelihood(logits, x):
    xp = xp_of(logits)
    m = logits.max(axis=-1, keepdims=True)  # subtract the row max: exp cannot overflow
    total = xp.exp(logits - m).sum(axis=-1, keepdims=True)
    log_p = logits - m - xp.log(total)
    log_likelihood = (x * log_p).sum(axis=-1)
    clicks = x.sum(axis=-1, keepdims=True)
    return log_likelihood, (logits, x, m, 1 / total, clicks)


def multinomial_log_likelihood_forward(logits, x):
    log_likelihood, residuals = _likelihood(logits, x)
    return log_likelihood.astype(logits.dtype), residuals


def multinomial_log_likelihood_backward(residuals, g_log_likelihood):
    logits, x, m, inverse_total, clicks = residuals
    k = kernels_for(logits)
    w = g_log_likelihood.astype(logits.dtype)[..., None]
    return (k.likelihood_grad(logits, x, m, inverse_total, clicks, w).astype(logits.dtype),)


def mult_vae_loss_forward(logits, x, mu, logvar, *, beta):
    xp = xp_of(logits)
    k = kernels_for(logits)
    log_likelihood, likelihood_residuals = _likelihood(logits, x)
    kl = k.kl_terms(mu, logvar).sum(axis=-1)
    loss = -log_likelihood.mean() + beta * kl.mean()
    return xp.asarray(loss).astype(logits.dtype), (likelihood_residuals, mu, logvar, beta)


def mult_vae_loss_backward(residuals, g_loss):
    (logits, x, m, inverse_total, clicks), mu, logvar, beta = residuals
    k = kernels_for(logits)
    w = g_loss.astype(logits.dtype) / logits.shape[0]
    g_logits = k.likelihood_grad(logits, x, m, inverse_total, clicks, -w)
    g_mu, g_logvar = k.kl_grads(mu, logvar, w * beta)
    dtype = logits.dtype
    return g_logits.astype(dtype), g_mu.astype(dtype), g_logvar.astype(dtype)


IMPLS = {
    "multinomial_log_likelihood": Impl(
        multinomial_log_likelihood_forward, multinomial_log_likelihood_backward
    ),
    "mult_vae_loss": Impl(mult_vae_loss_forward, mult_vae_loss_backward),
}
