"""The negative log-likelihood of a diagonal mixture of Gaussians, ResGen's depth-token head
(Efficient Generative Modeling with Residual Vector Quantization-Based Tokens)."""

from __future__ import annotations

import math

import numpy as np

from ..authoring import FloatArray, OneOf, Paper, log_softmax, logsumexp, op, reduce_rows, row_weights

__all__ = ["HALF_LOG_2PI", "PAPER", "mixture_of_gaussians_nll"]

PAPER = Paper(
    "Efficient Generative Modeling with Residual Vector Quantization-Based Tokens",
    arxiv="2412.10208",
    year=2024,
)

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)  # the normalizer of one standard normal dimension


@op(
    inputs={
        "e": FloatArray("N", "C"),
        "logits": FloatArray("N", "M"),
        "mu": FloatArray("N", "M", "C"),
        "log_sigma": FloatArray("N", "M", "C"),
        "reduction": OneOf("mean", "sum", "none"),
    },
    outputs=("loss",),
    differentiable=("e", "logits", "mu", "log_sigma"),
)
def mixture_of_gaussians_nll(e, logits, mu, log_sigma, *, reduction="mean"):
    r"""Mixture-of-Gaussians NLL: ``−log Σ_m π_m N(e; μ_m, diag σ_m²)`` per row.

    ResGen predicts, at every masked position, the sum ``e`` of the embeddings of the depth
    tokens still to be generated as a continuous vector, with a mixture of M diagonal
    Gaussians: the network outputs mixture logits, M means and M log standard deviations
    (per dimension), and is trained by the likelihood of the target embedding. The
    responsibilities ``γ_m`` (the posterior of each component given ``e``) drive every
    gradient.

    Forward, per row (C dimensions, M components; ``s = log σ``)::

        log π_m   = log_softmax(logits)_m                            (row max subtracted)
        t_mc      = (e_c − μ_mc)·exp(−s_mc)                           (the z-score)
        a_m       = log π_m − Σ_c (½t_mc² + s_mc) − C·½log(2π)       (log π_m N_m)
        ℓ         = −LSE_m a_m = −(A + log Σ_m exp(a_m − A)),   A = max_m a_m
        L         = mean_i ℓ_i   (reduction="mean"; "sum"; "none")

    Why this way: ``N_m`` itself is never formed. A component far from ``e`` (|t| = 40) or
    with a tiny σ has ``log N_m`` of −800 or +100·C, where ``exp`` underflows to 0 (then
    ``log Σ π N = log 0``) or overflows; the log-sum-exp only exponentiates ``a_m − A ≤ 0``,
    so ℓ is finite whenever one component is. ``σ`` enters only as ``exp(−s)``, no division.

    Backward. Write ``γ_m = exp(a_m − LSE) = π_m N_m/Σ_j π_j N_j`` (the responsibilities,
    the softmax of a). ``∂ℓ/∂a_m = −γ_m``. Then, per input:

    * ``a_m`` depends on logits through ``log π_m``, ``∂ log π_m/∂logits_j = δ_mj − π_j``::

          ∂ℓ/∂logits_j = −Σ_m γ_m(δ_mj − π_j) = π_j − γ_j         (Σ_m γ_m = 1)

    * ``∂t_mc/∂μ_mc = −1/σ_mc`` and ``∂(−½t²)/∂t = −t``::

          ∂ℓ/∂μ_mc = −γ_m t_mc/σ_mc = −γ_m (e_c − μ_mc)/σ_mc²

    * ``∂t_mc/∂s_mc = −t_mc``, so ``∂a_m/∂s_mc = t_mc² − 1``::

          ∂ℓ/∂s_mc = −γ_m (t_mc² − 1) = −γ_m((e_c − μ_mc)²/σ_mc² − 1)

    * ``e`` enters every component, ``∂t_mc/∂e_c = 1/σ_mc``::

          ∂ℓ/∂e_c = Σ_m γ_m t_mc/σ_mc = −Σ_m ∂ℓ/∂μ_mc

    each multiplied by the row's cotangent ``w_i`` (``L̄/N`` for "mean"). A component with
    ``γ_m = 0`` (far away) has zero gradients however large its ``t``. With M = 1, γ = π = 1:
    the Gaussian NLL and its gradients, and the logits' gradient is 0.

    Args:
        e: targets (N, C), float32 or float64 (ResGen: the sum of the embeddings of the
            masked depth tokens at a position).
        logits: mixture logits (N, M); π = softmax(logits).
        mu: component means (N, M, C).
        log_sigma: component log standard deviations log σ (N, M, C) (per dimension).
        reduction: "mean" (default), "sum" or "none".

    Returns:
        loss: a scalar, or ℓ (N,) for reduction="none", in nats, in the input dtype. The full
        Gaussian density is used (with its ``½log(2π)`` per dimension): ℓ is the exact NLL
        of a continuous density, so it may be negative.

    Reference: Kim et al., *Efficient Generative Modeling with Residual Vector
    Quantization-Based Tokens* (ResGen), arXiv:2412.10208 (the mixture-of-Gaussians
    prediction of the cumulative depth embedding and its likelihood objective). Transcribed
    from the paper; ResGen's code was not checked.

    >>> import numpy as np, refimpl
    >>> e, logits = np.zeros((1, 1)), np.zeros((1, 2))
    >>> mu, log_sigma = np.zeros((1, 2, 1)), np.zeros((1, 2, 1))  # two copies of N(0, 1)
    >>> round(float(refimpl.losses.mixture_of_gaussians_nll(e, logits, mu, log_sigma)), 7)  # ½log(2π)
    0.9189385
    """
    dtype = e.dtype
    num_dims = e.shape[-1]
    log_pi = log_softmax(logits)
    inverse_sigma = np.exp(-log_sigma)
    t = (e[:, None, :] - mu) * inverse_sigma  # (N, M, C) z-scores
    log_joint = (
        log_pi - (dtype.type(0.5) * (t * t) + log_sigma).sum(axis=-1) - dtype.type(num_dims * HALF_LOG_2PI)
    )
    log_likelihood = logsumexp(log_joint, axis=-1)  # the row max is subtracted first
    gamma = np.exp(log_joint - log_likelihood[:, None])  # responsibilities, rows sum to 1
    pi = np.exp(log_pi)
    return reduce_rows(-log_likelihood, reduction, dtype), (t, inverse_sigma, gamma, pi, reduction)


@mixture_of_gaussians_nll.defvjp
def mixture_of_gaussians_nll_backward(residuals, g_loss):
    t, inverse_sigma, gamma, pi, reduction = residuals
    dtype = t.dtype
    w = row_weights(np.asarray(g_loss).astype(dtype, copy=False), reduction, t.shape[0])
    w_gamma = (w[:, None] * gamma)[:, :, None]
    g_logits = w[:, None] * (pi - gamma)
    pull = w_gamma * t * inverse_sigma  # γ_m t_mc/σ_mc, the pull of component m on e
    g_mu = -pull
    g_log_sigma = -w_gamma * (t * t - 1)
    g_e = pull.sum(axis=1)
    return tuple(g.astype(dtype, copy=False) for g in (g_e, g_logits, g_mu, g_log_sigma))
