"""SSL4Rec cosine InfoNCE and logQ sampled softmax on CuPy: cuBLAS products, row reductions, fused pieces.

Mirrors ``refimpl/losses/ssl_recommendation.py``. The similarity matrix and the two
products of the backward are matmuls; the max-shifted log-softmax rows are CuPy reductions;
the guarded-normalization VJP ``(ẑ̄ − ẑ⟨ẑ, ẑ̄⟩)/n`` and the softmax cross-entropy gradient
are fused kernels. The diagonal (the positives) is handled with an identity matrix, not a
scatter.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl, reduce_rows, row_norm, row_weights

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def normalize_grad(z_hat, norm, g_hat, dot):
        return (g_hat - z_hat * dot) / norm

    @fuse
    def softmax_ce_grad(p, identity, w):
        return w * (p - identity)

    return SimpleNamespace(normalize_grad=normalize_grad, softmax_ce_grad=softmax_ce_grad)


kernels_for = kernel_set(_kernels)


def _log_softmax_rows(xp, u):
    shifted = u - u.max(axis=-1, keepdims=True)  # the max is subtracted: exp cannot overflow
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


def _guarded_normalize(xp, z, eps):
    norm = row_norm(z, eps)
    return z / norm, norm


def cosine_infonce_forward(z, z_prime, *, temperature, alpha, eps=0.0, symmetric=False):
    xp = xp_of(z)
    z_hat, norm = _guarded_normalize(xp, z, eps)
    z_prime_hat, norm_prime = _guarded_normalize(xp, z_prime, eps)
    inverse_t = z.dtype.type(1 / temperature)
    s = (z_hat @ z_prime_hat.T) * inverse_t
    log_p = _log_softmax_rows(xp, s)
    loss = -xp.diagonal(log_p).mean()
    log_p_transposed = None
    if symmetric:
        log_p_transposed = _log_softmax_rows(xp, s.T)
        loss = (loss - xp.diagonal(log_p_transposed).mean()) / 2
    residuals = (z_hat, norm, z_prime_hat, norm_prime, log_p, log_p_transposed, inverse_t, alpha)
    return xp.asarray(loss * z.dtype.type(alpha), dtype=z.dtype), residuals


def cosine_infonce_backward(residuals, g_loss):
    z_hat, norm, z_prime_hat, norm_prime, log_p, log_p_transposed, inverse_t, alpha = residuals
    xp = xp_of(z_hat)
    k = kernels_for(z_hat)
    batch = log_p.shape[0]
    identity = xp.eye(batch, dtype=log_p.dtype)
    w = g_loss * log_p.dtype.type(alpha / batch)
    g_s = k.softmax_ce_grad(xp.exp(log_p), identity, w)
    if log_p_transposed is not None:
        g_s = (g_s + k.softmax_ce_grad(xp.exp(log_p_transposed), identity, w).T) / 2
    g_z_hat = (g_s @ z_prime_hat) * inverse_t
    g_z_prime_hat = (g_s.T @ z_hat) * inverse_t
    g_z = k.normalize_grad(z_hat, norm, g_z_hat, (z_hat * g_z_hat).sum(axis=-1, keepdims=True))
    g_z_prime = k.normalize_grad(
        z_prime_hat, norm_prime, g_z_prime_hat, (z_prime_hat * g_z_prime_hat).sum(axis=-1, keepdims=True)
    )
    return g_z.astype(z_hat.dtype, copy=False), g_z_prime.astype(z_hat.dtype, copy=False)


def sampled_softmax_logq_forward(scores, log_p, *, reduction="mean"):
    xp = xp_of(scores)
    log_probs = _log_softmax_rows(xp, scores - log_p[None, :])
    per_row = -xp.diagonal(log_probs)
    return reduce_rows(per_row, reduction, scores.dtype), (log_probs, reduction)


def sampled_softmax_logq_backward(residuals, g_loss):
    log_probs, reduction = residuals
    xp = xp_of(log_probs)
    batch = log_probs.shape[0]
    w = row_weights(g_loss, reduction, batch)[:, None]
    identity = xp.eye(batch, dtype=log_probs.dtype)
    g_scores = kernels_for(log_probs).softmax_ce_grad(xp.exp(log_probs), identity, w)
    return (g_scores.astype(log_probs.dtype, copy=False),)


IMPLS = {
    "cosine_infonce": Impl(cosine_infonce_forward, cosine_infonce_backward),
    "sampled_softmax_logq": Impl(sampled_softmax_logq_forward, sampled_softmax_logq_backward),
}
