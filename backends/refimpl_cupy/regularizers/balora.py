"""BA-LoRA's regularizers on CuPy: fused elementwise kernels, row reductions, cuBLAS/cuSOLVER.

Mirrors ``refimpl/regularizers/balora.py``: the consistency term as normalized rows and a
fused squared difference ("nlu") or max-shifted log-softmaxes and one fused KL kernel
("nlg"); the diversity term as two cuBLAS products with the centring ("nlu") or a fused
``p·log(p + ε)`` and its slope ("nlg"); the SVD term by ``cupy.linalg.svd`` and one product
``U diag(c) Vᵀ``.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl, l2_normalize, l2_normalize_backward, log_softmax

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def squared_difference(a, b):
        difference = a - b
        return difference * difference

    @fuse
    def kl_terms(log_q, log_r):
        return xp.exp(log_r) * (log_r - log_q)

    @fuse
    def kl_grad(log_q, log_r, weight):
        return weight * (xp.exp(log_q) - xp.exp(log_r))

    @fuse
    def negentropy_terms(log_p):  # p log p and its slope a = log p + 1
        p = xp.exp(log_p)
        return p * log_p, p * (log_p + 1)

    @fuse
    def negentropy_terms_eps(log_p, epsilon):  # p log(p + ε) and a = log(p + ε) + p/(p + ε)
        p = xp.exp(log_p)
        log_shifted = xp.log(p + epsilon)
        return p * log_shifted, p * (log_shifted + p / (p + epsilon))

    @fuse
    def negentropy_grad(log_p, mean_slope, weight):
        p = xp.exp(log_p)
        return weight * p * (log_p + 1 - mean_slope)

    @fuse
    def negentropy_grad_eps(log_p, mean_slope, epsilon, weight):
        p = xp.exp(log_p)
        return weight * p * (xp.log(p + epsilon) + p / (p + epsilon) - mean_slope)

    return SimpleNamespace(
        squared_difference=squared_difference,
        kl_terms=kl_terms,
        kl_grad=kl_grad,
        negentropy_terms=negentropy_terms,
        negentropy_terms_eps=negentropy_terms_eps,
        negentropy_grad=negentropy_grad,
        negentropy_grad_eps=negentropy_grad_eps,
    )


kernels_for = kernel_set(_kernels)


def balora_consistency_loss_forward(z_ft, z_pre, *, variant, eps=1e-12):
    xp = xp_of(z_ft)
    k = kernels_for(z_ft)
    if variant == "nlu":
        z_hat_ft, norm_ft = l2_normalize(z_ft, eps)
        z_hat_pre, _ = l2_normalize(z_pre, eps)
        loss = k.squared_difference(z_hat_ft, z_hat_pre).mean()
        residuals = (variant, z_hat_ft, z_hat_pre, norm_ft, norm_ft <= z_ft.dtype.type(eps))
        return xp.asarray(loss, dtype=z_ft.dtype), residuals
    log_q, log_r = log_softmax(z_ft), log_softmax(z_pre)
    loss = k.kl_terms(log_q, log_r).sum() / z_ft.shape[0]
    return xp.asarray(loss, dtype=z_ft.dtype), (variant, log_q, log_r)


def balora_consistency_loss_backward(residuals, g_loss):
    variant = residuals[0]
    if variant == "nlu":
        _, z_hat_ft, z_hat_pre, norm_ft, clamped = residuals
        xp = xp_of(z_hat_ft)
        dtype = z_hat_ft.dtype.type
        g_z_hat = (dtype(2) * g_loss.astype(z_hat_ft.dtype) / dtype(z_hat_ft.size)) * (z_hat_ft - z_hat_pre)
        g_z_ft = xp.where(clamped, g_z_hat / norm_ft, l2_normalize_backward(z_hat_ft, norm_ft, g_z_hat))
        return (g_z_ft.astype(z_hat_ft.dtype),)
    _, log_q, log_r = residuals
    k = kernels_for(log_q)
    weight = g_loss.astype(log_q.dtype) / log_q.dtype.type(log_q.shape[0])
    return (k.kl_grad(log_q, log_r, weight).astype(log_q.dtype),)


def balora_diversity_loss_forward(z, *, variant, log_eps=0.0):
    xp = xp_of(z)
    k = kernels_for(z)
    dtype = z.dtype.type
    if variant == "nlu":
        batch, num_dims = z.shape
        z_centered = z - z.mean(axis=0, keepdims=True)
        covariance_off = (z_centered.T @ z_centered) / dtype(batch - 1)
        xp.fill_diagonal(covariance_off, 0)
        loss = (covariance_off * covariance_off).sum() / dtype(num_dims)
        return xp.asarray(loss, dtype=z.dtype), (variant, z_centered, covariance_off, None)
    log_p = log_softmax(z)
    positions = z.size // z.shape[-1]
    if log_eps == 0:
        terms, slopes = k.negentropy_terms(log_p)
        epsilon = None
    else:
        epsilon = dtype(log_eps)
        terms, slopes = k.negentropy_terms_eps(log_p, epsilon)
    loss = terms.sum() / dtype(positions)
    mean_slope = slopes.sum(axis=-1, keepdims=True)  # ⟨p, a⟩
    return xp.asarray(loss, dtype=z.dtype), (variant, log_p, mean_slope, epsilon)


def balora_diversity_loss_backward(residuals, g_loss):
    variant = residuals[0]
    if variant == "nlu":
        _, z_centered, covariance_off, _ = residuals
        dtype = z_centered.dtype.type
        batch, num_dims = z_centered.shape
        scale = dtype(4) * g_loss.astype(z_centered.dtype) / dtype(num_dims * (batch - 1))
        g_centered = scale * (z_centered @ covariance_off)
        return ((g_centered - g_centered.mean(axis=0, keepdims=True)).astype(z_centered.dtype),)
    _, log_p, mean_slope, epsilon = residuals
    k = kernels_for(log_p)
    weight = g_loss.astype(log_p.dtype) / log_p.dtype.type(log_p.size // log_p.shape[-1])
    if epsilon is None:
        return (k.negentropy_grad(log_p, mean_slope, weight).astype(log_p.dtype),)
    return (k.negentropy_grad_eps(log_p, mean_slope, epsilon, weight).astype(log_p.dtype),)


def balora_svd_loss_forward(z, *, k=3):
    xp = xp_of(z)
    matrix = z.reshape(z.shape[0], -1)
    u, sigma, vt = xp.linalg.svd(matrix, full_matrices=False)
    top, total = sigma[:k].sum(), sigma.sum()
    return xp.asarray(-top / total, dtype=z.dtype), (u, vt, min(k, sigma.size), top, total, z.shape)


def balora_svd_loss_backward(residuals, g_loss):
    u, vt, k, top, total, shape = residuals
    xp = xp_of(u)
    g = g_loss.astype(u.dtype)
    coefficients = xp.full(u.shape[1], 1, dtype=u.dtype) * (
        (g / total) * (top / total)
    )  # ḡT/S², no S² to overflow
    coefficients[:k] -= g / total
    return (((u * coefficients) @ vt).reshape(shape).astype(u.dtype),)


IMPLS = {
    "balora_consistency_loss": Impl(balora_consistency_loss_forward, balora_consistency_loss_backward),
    "balora_diversity_loss": Impl(balora_diversity_loss_forward, balora_diversity_loss_backward),
    "balora_svd_loss": Impl(balora_svd_loss_forward, balora_svd_loss_backward),
}
