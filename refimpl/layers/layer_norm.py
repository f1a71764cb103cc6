"""Layer normalization (Layer Normalization, Ba, Kiros and Hinton)."""

from __future__ import annotations

import numpy as np

from ..authoring import FloatArray, Paper, RealScalar, op, row_norm

__all__ = ["layer_norm"]

PAPER = Paper("Layer Normalization", arxiv="1607.06450", year=2016)


@op(
    inputs={
        "x": FloatArray("...", "D"),
        "gamma": FloatArray("D"),
        "beta": FloatArray("D"),
        "eps": RealScalar(0, low_open=True),
    },
    outputs=("y",),
    differentiable=("x", "gamma", "beta"),
)
def layer_norm(x, gamma, beta, *, eps=1e-5):
    r"""Normalize each row over its last axis, then scale by γ and shift by β.

    Semantics follow ``torch.nn.functional.layer_norm`` over the last dimension: biased
    variance and ε inside the square root (the paper writes σ without ε).

    Forward, per row of D features::

        μ     = mean_j x_j
        v     = mean_j (x_j - μ)²          (two-pass: never E[x²] - μ², which cancels)
        rstd  = 1 / sqrt(v + ε)
        x̂_j   = (x_j - μ) · rstd
        y_j   = γ_j · x̂_j + β_j

    A row whose deviations are too large to square in the dtype (float32: |x − μ| beyond
    ~1.8e19) takes ``rstd = √D/‖x − μ‖`` with the norm computed scaled (``row_norm``); ε is
    negligible there. Beyond that, an overflowing mean is refused with a ``RangeError``.

    Backward. Let ``G = ∂L/∂y`` and ``ĝ = G ⊙ γ`` (the cotangent of x̂). Since
    ``∂μ/∂x_k = 1/D`` and ``∂v/∂x_k = 2(x_k - μ)/D``, differentiating ``x̂_j = (x_j - μ)·rstd``
    gives ``∂x̂_j/∂x_k = rstd·(δ_jk - 1/D - x̂_j x̂_k / D)``. Contracting with ĝ::

        x̄_k = rstd · (ĝ_k - mean_j ĝ_j - x̂_k · mean_j(ĝ_j x̂_j))
        γ̄_j = Σ_rows G_j · x̂_j
        β̄_j = Σ_rows G_j

    Per row, ``Σ_k x̄_k = 0`` and ``⟨x̄, x̂⟩ = ε·(...)`` → 0 as ε → 0: the gradient is orthogonal
    to the directions normalization removes.

    Args:
        x: input (..., D), float32 or float64.
        gamma: scale (D,).
        beta: shift (D,).
        eps: added to the variance, > 0 (PyTorch's default 1e-5).

    Returns:
        y: same shape and dtype as ``x``. A constant row gives ``y = β``.

    Reference: Ba, Kiros and Hinton, *Layer Normalization*, arXiv:1607.06450.

    >>> import numpy as np, refimpl
    >>> x = np.array([[1.0, 2.0, 3.0]])
    >>> refimpl.layers.layer_norm(x, np.ones(3), np.zeros(3), eps=0.0 + 1e-12).round(6)
    array([[-1.224745,  0.      ,  1.224745]])
    """
    mu = x.mean(axis=-1, keepdims=True)
    centered = x - mu
    variance = (centered * centered).mean(axis=-1, keepdims=True)
    rstd = 1 / np.sqrt(variance + eps)
    overflow = ~np.isfinite(variance)  # |x − μ| beyond ~1.8e19 in float32: the squares overflowed
    if overflow.any():  # σ = ‖x − μ‖/√D computed scaled; eps is negligible beside σ²
        rstd = np.where(overflow, np.sqrt(x.shape[-1]) / row_norm(centered), rstd).astype(x.dtype)
    x_hat = centered * rstd
    y = gamma * x_hat + beta
    return y, (x_hat, rstd, gamma)


@layer_norm.defvjp
def layer_norm_backward(residuals, g_y):
    x_hat, rstd, gamma = residuals
    g_x_hat = g_y * gamma
    mean_g = g_x_hat.mean(axis=-1, keepdims=True)
    mean_g_x_hat = (g_x_hat * x_hat).mean(axis=-1, keepdims=True)
    g_x = rstd * (g_x_hat - mean_g - x_hat * mean_g_x_hat)
    rows = g_y.reshape(-1, g_y.shape[-1])
    g_gamma = (rows * x_hat.reshape(rows.shape)).sum(axis=0)
    g_beta = rows.sum(axis=0)
    return g_x, g_gamma, g_beta
