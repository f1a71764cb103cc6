"""α-BN: test-time batch statistics calibration (You, Li and Zhao, arXiv:2110.04065)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, Flag, FloatArray, OneOf, Paper, RealScalar, array_namespace, op

__all__ = ["alpha_batch_norm"]

PAPER = Paper("Test-time Batch Statistics Calibration for Covariate Shift", arxiv="2110.04065", year=2021)


def _check(arguments) -> None:
    x, var_source = arguments["x"], arguments["var_source"]
    xp = array_namespace(x)
    if bool(xp.any(var_source < 0)):
        channel = int(xp.argmax(var_source < 0))
        raise ArgumentError(
            "var_source", "a variance >= 0 in every channel", f"{float(var_source[channel])} at {channel}"
        )
    count = x.shape[0] * x.shape[2] * x.shape[3]
    if arguments.get("unbiased", False) and count < 2:
        raise ArgumentError(
            "x",
            "N·H·W >= 2 values per channel with unbiased=True (the variance divides by N·H·W − 1)",
            f"shape {tuple(x.shape)}",
        )


def batch_weight(alpha, alpha_weights):
    """The weight ``w_b`` of the batch statistics: ``1 − α`` when α weights the source side."""
    return 1.0 - alpha if alpha_weights == "source" else alpha


@op(
    inputs={
        "x": FloatArray("N", "C", "H", "W"),
        "mean_source": FloatArray("C"),
        "var_source": FloatArray("C"),
        "gamma": FloatArray("C"),
        "beta": FloatArray("C"),
        "alpha": RealScalar(0, 1),
        "alpha_weights": OneOf("source", "target"),
        "eps": RealScalar(0, low_open=True),
        "unbiased": Flag(),
        "detach_stats": Flag(),
    },
    outputs=("y",),
    differentiable=("x", "gamma", "beta"),
    check=_check,
)
def alpha_batch_norm(
    x,
    mean_source,
    var_source,
    gamma,
    beta,
    *,
    alpha,
    alpha_weights,
    eps=1e-5,
    unbiased=False,
    detach_stats=False,
):
    r"""Batch norm whose statistics mix the stored source statistics with the test batch's.

    Test-time normalization (replace the source running statistics by the test batch's)
    removes the covariate shift but mismatches the source-trained γ, β; α-BN interpolates
    the two sets of statistics per channel, then normalizes as batch norm does.

    Forward, per channel c over the M = N·H·W values of ``x[:, c]`` (``w_b`` is the batch
    statistics' weight, ``w_s = 1 − w_b`` the source's: ``w_b = 1 − α`` for
    ``alpha_weights="source"``, ``w_b = α`` for ``alpha_weights="target"``)::

        μ_b   = mean x                                  (two-pass, float64 accumulation)
        v_b   = κ · mean (x − μ_b)²                    κ = 1, or M/(M − 1) if unbiased
        μ̂     = w_s μ_s + w_b μ_b
        σ̂²    = w_s σ_s² + w_b v_b
        r     = 1/sqrt(σ̂² + ε)
        x̂     = (x − μ̂) · r
        y     = γ x̂ + β

    ``w_b = 1`` with κ = 1 is batch norm in training mode; ``w_b = 0`` is batch norm in
    evaluation mode with the source running statistics.

    Backward (the batch statistics μ_b and v_b carry gradient; μ_s, σ_s² are constants).
    Let ``G = ∂L/∂y`` and ``ĝ = γ G``. Then ``γ̄ = Σ G x̂`` and ``β̄ = Σ G`` (sums over N, H, W).
    For x, three paths: directly through ``x − μ̂``, through ``μ̂`` and through ``σ̂²``::

        ∂L/∂x_i|direct = r ĝ_i
        ∂L/∂μ̂          = −r Σ ĝ                       and ∂μ̂/∂x_i  = w_b / M
        ∂L/∂σ̂²         = −½ r³ Σ ĝ (x − μ̂) = −½ r² Σ ĝ x̂
        ∂σ̂²/∂x_i       = w_b κ · 2(x_i − μ_b)/M        (the μ_b term vanishes: Σ (x − μ_b) = 0)

    Adding the three::

        x̄_i = r · [ĝ_i − w_b mean(ĝ) − w_b κ r (x_i − μ_b) mean(ĝ x̂)]

    (with w_b = 1 − α, κ = 1 this reads ``γ r [G − (1 − α) mean G − (1 − α) r²
    (x − μ_b) mean(G (x − μ̂))]``; with w_b = 1 the standard batch-norm backward).
    ``detach_stats=True`` treats μ_b, v_b as constants: ``x̄ = r ĝ``.

    Conventions, and what is not pinned. The paper's text was not available to this
    implementation, so which side α weights and its default value are NOT pinned: both are
    required arguments (``alpha``, ``alpha_weights``) with no default. The third-party
    implementation used in test-time-adaptation benchmarks (bethgelab/robustness,
    ``robusta/batchnorm/bn.py``, ``AlphaBatchNorm.forward``, and its copies) uses
    ``alpha_weights="target"`` (``(1 − α)·running_mean + α·batch_mean``), the unbiased batch
    variance (``nn.BatchNorm2d(momentum=1.0)``'s ``running_var``: ``unbiased=True``) and
    statistics stored as buffers, hence constants in backprop (``detach_stats=True``). The
    defaults ``unbiased=False`` and ``detach_stats=False`` are batch norm in training mode (biased
    variance, gradient through the batch statistics;
    Ioffe & Szegedy arXiv:1502.03167); ``eps=1e-5`` is ``torch.nn.BatchNorm2d``'s default,
    which the third-party code inherits from the wrapped layer (``self.layer.eps``).

    Args:
        x: activations (N, C, H, W), float32 or float64.
        mean_source: stored source running mean μ_s (C,).
        var_source: stored source running variance σ_s² (C,), >= 0.
        gamma: scale (C,).
        beta: shift (C,).
        alpha: mixing weight in [0, 1]; required (default not pinned).
        alpha_weights: ``"source"`` (μ̂ = α μ_s + (1 − α) μ_b) or ``"target"``
            (μ̂ = (1 − α) μ_s + α μ_b); required (the paper's side is not pinned).
        eps: added to the mixed variance, > 0.
        unbiased: batch variance divided by M − 1 (needs M >= 2).
        detach_stats: no gradient through the batch statistics.

    Returns:
        y: (N, C, H, W), the dtype of ``x``.

    Reference: F. You, J. Li and Z. Zhao, *Test-time Batch Statistics Calibration for
    Covariate Shift*, arXiv:2110.04065 (2021). Third-party code: bethgelab/robustness,
    ``robusta/batchnorm/bn.py`` (``AlphaBatchNorm``).

    >>> import numpy as np, refimpl
    >>> x = np.array([1.0, 3.0]).reshape(2, 1, 1, 1)   # μ_b = 2, v_b = 1
    >>> y = refimpl.layers.alpha_batch_norm(x, np.zeros(1), np.full(1, 3.0), np.ones(1),
    ...     np.zeros(1), alpha=0.5, alpha_weights="source", eps=1e-12)   # μ̂ = 1, σ̂² = 2
    >>> (y.ravel() * np.sqrt(2)).round(6)
    array([0., 2.])
    """
    axes = (0, 2, 3)
    count = x.shape[0] * x.shape[2] * x.shape[3]
    w_b = batch_weight(alpha, alpha_weights)
    w_s = 1.0 - w_b
    kappa = count / (count - 1) if unbiased else 1.0
    x64 = x.astype(np.float64)
    mean_batch = x64.mean(axis=axes)
    centered_batch = x64 - mean_batch[None, :, None, None]
    var_batch = kappa * (centered_batch * centered_batch).mean(axis=axes)  # two-pass
    mean_hat = w_s * mean_source.astype(np.float64) + w_b * mean_batch
    var_hat = w_s * var_source.astype(np.float64) + w_b * var_batch
    rstd = 1.0 / np.sqrt(var_hat + eps)
    x_hat = ((x64 - mean_hat[None, :, None, None]) * rstd[None, :, None, None]).astype(x.dtype)
    y = gamma[None, :, None, None] * x_hat + beta[None, :, None, None]
    stat_weight = 0.0 if detach_stats else w_b
    return y, (x, x_hat, mean_batch, rstd, gamma, stat_weight, kappa)


@alpha_batch_norm.defvjp
def alpha_batch_norm_backward(residuals, g_y):
    x, x_hat, mean_batch, rstd, gamma, stat_weight, kappa = residuals
    axes = (0, 2, 3)
    g_x_hat = g_y * gamma[None, :, None, None]
    g_gamma = (g_y * x_hat).sum(axis=axes)
    g_beta = g_y.sum(axis=axes)
    mean_g = g_x_hat.astype(np.float64).mean(axis=axes)
    mean_g_x_hat = (g_x_hat.astype(np.float64) * x_hat).mean(axis=axes)
    r = rstd[None, :, None, None]
    g_x = r * (
        g_x_hat
        - stat_weight * mean_g[None, :, None, None]
        - stat_weight * kappa * r * (x - mean_batch[None, :, None, None]) * mean_g_x_hat[None, :, None, None]
    )
    return g_x.astype(x.dtype), g_gamma, g_beta
