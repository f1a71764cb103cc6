"""The Kantorovich–Rubinstein estimate of the Wasserstein dependency measure (Wasserstein Dependency
Measure for Representation Learning)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, Paper, op

__all__ = ["PAPER", "wdm_kr_estimate"]

PAPER = Paper("Wasserstein Dependency Measure for Representation Learning", arxiv="1903.11780", year=2019)


def _check(arguments) -> None:
    scores = arguments["F"]
    if scores.shape[0] < 2:
        raise ArgumentError(
            "F", "N >= 2 pairs (the product of marginals is estimated by the N(N − 1) pairs i ≠ j)", "N = 1"
        )


@op(inputs={"F": FloatArray("N", "N")}, outputs=("estimate",), differentiable=("F",), check=_check)
def wdm_kr_estimate(F):  # noqa: N803 - the score matrix F
    r"""Minibatch estimate of the Wasserstein dependency measure from a critic's score matrix.

    Mutual information is the KL divergence between the joint p(x, y) and the product of
    marginals p(x)p(y); the Wasserstein dependency measure replaces the KL by the Wasserstein-1
    distance, whose Kantorovich–Rubinstein dual is a difference of expectations of a
    1-Lipschitz critic::

        I_W(x; y) = W_1(p(x, y), p(x)p(y)) = sup_{‖f‖_L ≤ 1} E_{p(x,y)} f − E_{p(x)p(y)} f

    A minibatch of N pairs (x_i, y_i) gives joint samples on the diagonal of the critic's
    score matrix ``F_ij = f(x_i, y_j)`` and product-of-marginals samples off the diagonal
    (shuffled pairs as negatives). Maximizing the estimate over a Lipschitz-constrained critic
    (and the encoders inside it) is the training signal; the Lipschitz constraint itself
    (gradient penalty, spectral normalization) acts on the critic's parameters, outside this op.

    Forward::

        Î = (1/N) Σ_i F_ii − (1/(N(N − 1))) Σ_{i≠j} F_ij

    The off-diagonal sum is taken over the off-diagonal entries themselves (not ΣF − tr F,
    which cancels when the diagonal dominates).

    Backward. Î is linear in F::

        ∂Î/∂F_ii = 1/N,      ∂Î/∂F_ij = −1/(N(N − 1))   (i ≠ j)
        F̄ = ḡ·(I/N − (11ᵀ − I)/(N(N − 1)))

    For the bilinear critic ``F = X W Yᵀ`` (rows x_i, y_j) the chain rule gives
    ``W̄ = Xᵀ F̄ Y = ḡ·(mean_i x_i y_iᵀ − mean_{i≠j} x_i y_jᵀ)``. The gradient sums to 0 over
    the whole matrix: adding a constant to every score does not change Î.

    Not pinned: the practical objective the paper trains ("Wasserstein predictive coding"),
    which the abstract describes as a Lipschitz-constrained version of an existing mutual
    information estimator; whether that is this KR difference or InfoNCE (``cosine_infonce``)
    with a Lipschitz critic, and the penalty's form and weight, could not be transcribed from
    the paper (no official code). This op is the WDM's dual definition itself, which needs no
    constant.

    Args:
        F: critic scores (N, N), N ≥ 2, float32 or float64; ``F[i, j] = f(x_i, y_j)``, the
            diagonal the positive (joint) pairs.

    Returns:
        estimate: Î, a scalar in the dtype of ``F`` (maximize it; its negative is the loss).

    Reference: Ozair, Lynch, Bengio, van den Oord, Levine, Sermanet, *Wasserstein Dependency
    Measure for Representation Learning*, NeurIPS 2019, arXiv:1903.11780 (the WDM definition;
    no official code).

    >>> import numpy as np, refimpl
    >>> F = np.array([[3.0, 1.0], [0.0, 1.0]])
    >>> float(refimpl.losses.wdm_kr_estimate(F))  # (3 + 1)/2 − (1 + 0)/2
    1.5
    """
    dtype = F.dtype
    num_pairs = F.shape[0]
    off_diagonal = ~np.eye(num_pairs, dtype=bool)
    joint = np.trace(F) / dtype.type(num_pairs)
    marginals = F[off_diagonal].sum() / dtype.type(num_pairs * (num_pairs - 1))
    return np.asarray(joint - marginals, dtype=dtype), (num_pairs, dtype)


@wdm_kr_estimate.defvjp
def wdm_kr_estimate_backward(residuals, g_estimate):
    num_pairs, dtype = residuals
    g = dtype.type(np.asarray(g_estimate))
    g_F = np.full((num_pairs, num_pairs), -g / dtype.type(num_pairs * (num_pairs - 1)), dtype=dtype)  # noqa: N806
    np.fill_diagonal(g_F, g / dtype.type(num_pairs))
    return (g_F,)
