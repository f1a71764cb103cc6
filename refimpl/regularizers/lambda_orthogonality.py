"""λ-orthogonality regularization: a sigmoid-gated Frobenius orthogonality penalty (compatible models)."""

from __future__ import annotations

import numpy as np

from ..authoring import FloatArray, Paper, RealScalar, op, sigmoid_and_slope

__all__ = ["PAPER", "lambda_orthogonality_penalty"]

PAPER = Paper(
    "λ-Orthogonality Regularization for Compatible Representation Learning",
    arxiv="2509.16664",
    year=2025,
    code="miccunifi/lambda_orthogonality",
)

PAPER_LAMBDA = 12.0  # Appendix E: "setting λ = 12 yields the best trade-off"; also App. D and F


def _gram_deviation(W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``E = W Wᵀ − I`` and ``x = ‖E‖_F``."""
    E = W @ W.T
    E[np.diag_indices_from(E)] -= 1
    return E, np.sqrt(np.sum(E * E))


@op(
    inputs={
        "W": FloatArray("m", "n"),
        "alpha": RealScalar(0, low_open=True),
        "lam": RealScalar(0),
    },
    outputs=("penalty",),
    differentiable=("W",),
)
def lambda_orthogonality_penalty(W, *, alpha, lam=PAPER_LAMBDA):
    r"""λ-orthogonality regularization of a linear map's weight: a soft switch around ‖WWᵀ − I‖_F = λ.

    The paper aligns a new model's embedding space with an old one by a learned affine map
    ``h ↦ W h + b``. A strict orthogonality constraint keeps the new geometry but cannot adapt
    to a new distribution; a free affine map adapts but distorts. The λ-orthogonality term
    penalizes the distance of the Gram matrix from the identity only while it exceeds the
    tolerance λ, switching off smoothly (a sigmoid of steepness α) once ``‖WWᵀ − I‖_F`` falls
    below λ; λ = 0 recovers (up to the factor σ(αx) ∈ [1/2, 1)) the soft orthogonality term
    ``‖WᵀW − I‖_F`` of Eq. 3.

    Forward (§3.3, Eq. 6)::

        E = W Wᵀ − I,     x = ‖E‖_F
        L_λ = σ(α (x − λ)) · x

    The Heaviside version ``H(x − λ)·x`` (Eq. 5) is the α → ∞ limit. The paper's W is square
    (``B: ℝⁿ → ℝⁿ``), where ``‖WWᵀ − I‖_F = ‖WᵀW − I‖_F`` (WWᵀ and WᵀW share their
    eigenvalues); for a rectangular W (m, n) the op follows Eq. 6 literally and uses the
    m × m Gram matrix ``WWᵀ`` (rows of W pushed towards orthonormality; pass ``Wᵀ`` for the
    columns).

    Backward. With ``s = σ(α(x − λ))`` and ``σ' = s(1 − s)``::

        ∂L_λ/∂x = s + α σ' x
        dx = ⟨E/x, dE⟩,   dE = dW Wᵀ + W dWᵀ   ⇒   ∂x/∂W = (E + Eᵀ) W / x = 2 E W / x
        W̄ = ḡ (s + α σ' x) · 2 E W / x

    At exact orthogonality (x = 0) ``x`` is not differentiable; the code takes the
    subgradient 0 there (the penalty's minimum). ``σ'`` comes from ``e = exp(−|α(x − λ)|)`` as
    ``e/(1 + e)²``, so neither the sigmoid nor its slope overflows.

    Defaults: λ = 12 (Appendix E: the best trade-off, used in Appendices D and F with a
    ViT-L-16 → ResNet-18 adapter; ‖WWᵀ − I‖_F grows with the dimension, so λ is a
    per-setting choice). α, the sigmoid's steepness, is given no value in the paper (Fig. 2(b)
    only shows several): a **required** argument. The loss weight of this term is w = 1 in
    the paper (Eq. 10, Appendix E); it is outside the op. The official repository
    (miccunifi/lambda_orthogonality) could not be inspected: the form is pinned from the
    paper's Eq. 6.

    Args:
        W: the linear map's weight (m, n), float32 or float64 (the paper: square, n × n).
        alpha: steepness α > 0 of the sigmoid switch (required: not given in the paper).
        lam: the tolerance λ ≥ 0 on ‖WWᵀ − I‖_F (paper 12).

    Returns:
        penalty: a scalar ≥ 0 (0-d array, dtype of W).

    Reference: Ricci, Biondi, Pernici, Patras, Del Bimbo, *λ-Orthogonality Regularization for
    Compatible Representation Learning*, arXiv:2509.16664 (§3.3, Eqs. 3–6;
    Appendix E).

    >>> import numpy as np, refimpl
    >>> W = np.array([[2.0, 0.0], [0.0, 1.0]])  # WWᵀ − I = diag(3, 0): x = 3
    >>> float(refimpl.regularizers.lambda_orthogonality_penalty(W, alpha=1.0, lam=3.0))  # σ(0)·3
    1.5
    """
    E, x = _gram_deviation(W)
    switch, slope = sigmoid_and_slope(np.asarray(alpha * (x - lam)))
    penalty = switch * x
    return np.asarray(penalty, dtype=W.dtype), (W, E, x, switch, slope, alpha)


@lambda_orthogonality_penalty.defvjp
def _lambda_orthogonality_penalty_vjp(residuals, g_penalty):
    W, E, x, switch, slope, alpha = residuals
    if x == 0:  # exactly orthogonal rows: subgradient 0 at the minimum of x = ‖E‖_F
        return (np.zeros_like(W),)
    g_x = g_penalty * (switch + alpha * slope * x)
    return ((W.dtype.type(2 * g_x / x) * (E @ W)).astype(W.dtype, copy=False),)
