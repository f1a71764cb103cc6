"""TrAct, a first-layer weight gradient that trains the pre-activations (TrAct, Petersen et al.)."""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from ..authoring import FloatArray, Paper, RealScalar, op

__all__ = ["PAPER", "tract_linear"]

PAPER = Paper(
    "TrAct: Making First-layer Pre-Activations Trainable",
    arxiv="2410.23970",
    year=2024,
    code="Felix-Petersen/tract",
)


def ridge_solve(gram, lam, rhs):
    """``(gram + λI)⁻¹ rhs`` for a symmetric positive semi-definite ``gram`` and λ > 0, by a
    Cholesky factorization in float64 (``gram + λI`` is SPD; no inverse is formed)."""
    system = np.asarray(gram, dtype=np.float64).copy()
    system[np.diag_indices_from(system)] += lam
    return cho_solve(cho_factor(system, lower=True, check_finite=False), rhs, check_finite=False)


def weight_gradient_primal(x, g_y, lam):
    """``Gᵀ X (XᵀX/b + λI_n)⁻¹`` through the (n, n) system (the branch for b ≥ n), float64."""
    x64, g64 = x.astype(np.float64), g_y.astype(np.float64)
    rows = x64.shape[0]
    # M = XᵀX/b + λI is symmetric, so (Gᵀ X M⁻¹)ᵀ = M⁻¹ (Xᵀ G): one solve with m right-hand sides
    return ridge_solve(x64.T @ x64 / rows, lam, x64.T @ g64).T


def weight_gradient_dual(x, g_y, lam):
    """``Gᵀ (XXᵀ/b + λI_b)⁻¹ X`` through the (b, b) system (the branch for b < n), float64."""
    x64, g64 = x.astype(np.float64), g_y.astype(np.float64)
    rows = x64.shape[0]
    return ridge_solve(x64 @ x64.T / rows, lam, g64).T @ x64


@op(
    inputs={
        "x": FloatArray("B", "N"),
        "W": FloatArray("M", "N"),
        "bias": FloatArray("M"),
        "lam": RealScalar(0, low_open=True),
    },
    outputs=("y",),
    differentiable=("x", "W", "bias"),
    custom_vjp="the weight gradient is TrAct's ridge least-squares step Gᵀ X (XᵀX/b + λI)⁻¹ "
    "that best matches a gradient step on the pre-activations, not the derivative Gᵀ X of the forward",
)
def tract_linear(x, W, bias, *, lam=0.1):  # noqa: N803 - the paper's W
    r"""TrAct linear layer: an ordinary first layer whose weight gradient trains the pre-activations.

    In the first layer of a vision model the weight update ``Δ = −η Gᵀ X`` is scaled by the
    inputs: bright, high-contrast images move the weights far more than dull ones, unlike
    the later layers, whose inputs are normalized activations. TrAct instead asks which
    weight change would move the layer's *pre-activations* ``Y = X Wᵀ + b`` as a gradient
    step on Y would, in the least-squares sense with a ridge penalty. With ``G = Ȳ`` the
    gradient of a batch-mean loss, the rows of ``b·G`` are the per-row gradients
    ``∂ℓ_i/∂y_i``, and (setting the objective's gradient ``(2/b)(X Δᵀ − η b G)ᵀ X + 2λΔ``
    to 0)::

        min_Δ (1/b)‖X Δᵀ − η·b·G‖² + λ‖Δ‖²    ⇒    Δ = η Gᵀ X (XᵀX/b + λI_n)⁻¹

    TrAct uses Δ/η as the weight gradient. The forward is unchanged.

    For a convolution, X is the im2col matrix (B·H_out·W_out, C·k_h·k_w) of the input
    patches and W the kernel flattened to (out channels, C·k_h·k_w): b counts patches,
    not images.

    Forward::

        Y = X Wᵀ + b                                          (b, m)

    Backward (custom; ``G = Ȳ``). The input and bias gradients are the true ones, the
    weight gradient is replaced::

        X̄ = G W                                               (∂Y/∂X, unchanged)
        b̄ = Σ_rows G                                          (unchanged)
        W̄ = Gᵀ X (XᵀX/b + λI_n)⁻¹                             (b ≥ n: an (n, n) system)
          = Gᵀ (XXᵀ/b + λI_b)⁻¹ X                             (b < n: a (b, b) system)

    The two forms agree by the push-through identity ``X (XᵀX/b + λI)⁻¹ =
    (XXᵀ/b + λI)⁻¹ X`` (multiply both sides by the two matrices in brackets: each side
    gives ``XXᵀX/b + λX``). The paper writes the second through Woodbury's identity, with
    ``A = XXᵀ/b``: ``(1/λ) Gᵀ (I_b − (1/λ) A (A/λ + I_b)⁻¹) X``; since ``(1/λ) A (A/λ + I)⁻¹
    = A (A + λI)⁻¹`` and ``I − A (A + λI)⁻¹ = λ (A + λI)⁻¹``, it is the same matrix.
    Whichever of n and b is smaller sets the system's size. Both systems are symmetric
    positive definite (λ > 0): they are solved through a Cholesky factorization, in float64
    (a float32 factorization loses what a small λ keeps; the official code forms the
    inverse, which gives the same values up to rounding), with the weight gradient cast
    back to the dtype of W.

    Limits: ``λ → ∞`` gives ``(1/λ) Gᵀ X``, the ordinary gradient scaled down by λ;
    ``λ → 0`` with b ≥ n (and XᵀX invertible) the input-whitened ``Gᵀ X (XᵀX/b)⁻¹``.

    Args:
        x: inputs X (b, n), float32 or float64 (im2col rows for a convolution).
        W: weights (m, n), same dtype.
        bias: bias (m,), same dtype.
        lam: the ridge λ > 0 (default 0.1, the official training script's ``--l``).

    Returns:
        y: ``X Wᵀ + b`` (b, m), in the dtype of the inputs.

    Reference: Petersen, Borgelt, Ermon, *TrAct: Making First-layer Pre-Activations
    Trainable*, NeurIPS 2024, arXiv:2410.23970; official code Felix-Petersen/tract
    (``examples/train_cifar.py`` for λ = 0.1).

    >>> import numpy as np, refimpl
    >>> x, W, bias = np.array([[2.0, 0.0], [0.0, 2.0]]), np.eye(2), np.zeros(2)
    >>> y, pullback = refimpl.vjp(refimpl.optim.tract_linear, x, W, bias, lam=1.0)
    >>> g_x, g_W, g_bias = pullback(np.eye(2))
    >>> g_W  # XᵀX/b = 2I, so W̄ = GᵀX (2I + I)⁻¹ = (2I)/3
    array([[0.66666667, 0.        ],
           [0.        , 0.66666667]])
    """
    y = x @ W.T + bias
    return y, (x, W, lam)


@tract_linear.defvjp
def tract_linear_backward(residuals, g_y):
    x, W, lam = residuals
    dtype = x.dtype
    rows, features = x.shape
    g_x = g_y @ W
    g_bias = g_y.sum(axis=0)
    if rows >= features:
        g_W = weight_gradient_primal(x, g_y, lam)
    else:
        g_W = weight_gradient_dual(x, g_y, lam)
    return g_x.astype(dtype, copy=False), g_W.astype(dtype), g_bias.astype(dtype, copy=False)
