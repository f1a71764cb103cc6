"""The DCDM training loss (A Deep Conjugate Direction Method for Iteratively Solving Linear Systems)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, Paper, op

__all__ = ["PAPER", "dcdm_loss"]

PAPER = Paper(
    "A Deep Conjugate Direction Method for Iteratively Solving Linear Systems",
    arxiv="2205.10763",
    year=2023,
    code="ayano721/2023_DCDM",
)

# qᵀAq is refused below  CURVATURE_GUARD · n · eps · ‖A‖_max · ‖q‖²: the size of the rounding
# error of the product itself, so a smaller value carries no information about α
CURVATURE_GUARD = 16.0


def _host(array):
    return np.asarray(array.get() if hasattr(array, "get") else array)


def _check(arguments) -> None:
    a = _host(arguments["A"])
    q = _host(arguments["q"])
    eps = np.finfo(a.dtype).eps
    scale = float(np.abs(a).max()) if a.size else 0.0
    asymmetry = float(np.abs(a - a.T).max()) if a.size else 0.0
    if asymmetry > 64 * eps * scale:
        raise ArgumentError(
            "A",
            "a symmetric matrix (max |A − Aᵀ| within 64 ulp of max |A|)",
            f"max |A − Aᵀ| = {asymmetry:.3g}",
        )
    a64, q64 = a.astype(np.float64), q.astype(np.float64)
    curvature = np.einsum("bi,bi->b", q64 @ a64, q64)  # qᵀAq per row, the product through BLAS
    floor = CURVATURE_GUARD * a.shape[0] * eps * scale * (q64 * q64).sum(axis=1)
    bad = np.flatnonzero(~(curvature > floor))
    if bad.size:
        i = int(bad[0])
        raise ArgumentError(
            "q",
            "directions with qᵀAq > 0 beyond rounding (α = qᵀb/qᵀAq is undefined for a zero output "
            "or a null-space direction of A)",
            f"qᵀAq = {curvature[i]:.3g} in row {i}",
        )


@op(
    inputs={"A": FloatArray("n", "n"), "b": FloatArray("B", "n"), "q": FloatArray("B", "n")},
    outputs=("loss",),
    differentiable=("q",),
    check=_check,
)
def dcdm_loss(A, b, q):  # noqa: N803 - A is the paper's matrix
    r"""DCDM loss: the residual left after the A-projection of the solution onto span{q}.

    DCDM trains a network to output, for a residual b, a search direction q that a
    conjugate-direction solver of ``A x = b`` can use. The best multiple of q (in the energy
    norm of A) is ``α q`` with ``α = qᵀb/qᵀAq``, and the loss is the squared residual left after
    that step; it is 0 exactly when q ∝ A⁻¹b, and it does not depend on the scale of q.

    Forward, per sample (rows of b and q), then the batch mean::

        α(q) = qᵀb / (qᵀAq)
        r    = b − α A q
        ℓ    = ‖r‖²,   L = (1/B) Σ ℓ

    Backward (A symmetric). ``dℓ = 2 rᵀ dr = −2 rᵀ(dα·Aq + α A dq)``. With ``κ = qᵀAq``:
    ``dα = bᵀdq/κ − (qᵀb)·2(Aq)ᵀdq/κ² = (b − 2α Aq)ᵀdq / κ``. So, using ``rᵀA dq = (Ar)ᵀdq``::

        ∇_q ℓ = −2 [α A r + (qᵀA r)·(b − 2α A q)/κ]
        q̄     = ḡ · ∇_q ℓ / B

    Scale invariance gives ``qᵀ∇_q ℓ = 0``: with q·∇ the terms are ``−2[α qᵀAr + qᵀAr(qᵀb −
    2α κ)/κ] = −2[α qᵀAr − α qᵀAr] = 0``.

    Args:
        A: the system matrix (n, n), symmetric positive (semi)definite, float32 or float64.
        b: right-hand sides (B, n), the same dtype.
        q: network outputs (B, n); ``qᵀAq`` must be positive beyond rounding (a zero output,
            or a direction in the null space of a singular A, raises InputError).

    Returns:
        loss: a scalar in the input dtype. The official code trains in float32, so compare
        backends with relative tolerances.

    Reference: Kaneda, Akar, Chen, Kala, Hyde, Teran, *A Deep Conjugate Direction Method for
    Iteratively Solving Linear Systems*, arXiv:2205.10763 (ICML 2023); code ayano721/2023_DCDM.

    >>> import numpy as np, refimpl
    >>> A = np.array([[2.0, 0.0], [0.0, 1.0]]); b = np.array([[1.0, 1.0]])
    >>> round(float(refimpl.losses.dcdm_loss(A, b, np.array([[1.0, 0.0]]))), 12)  # α = ½, r = (0, 1)
    1.0
    >>> float(refimpl.losses.dcdm_loss(A, b, np.array([[0.5, 1.0]])))            # q = A⁻¹b
    0.0
    """
    a_q = q @ A  # rows (A q_i)ᵀ; A is symmetric
    curvature = (q * a_q).sum(axis=1)  # κ_i = q_iᵀ A q_i
    alpha = (q * b).sum(axis=1) / curvature
    r = b - alpha[:, None] * a_q
    loss = (r * r).sum(axis=1).mean()
    return np.asarray(loss, dtype=q.dtype), (A, b, a_q, curvature, alpha, r)


@dcdm_loss.defvjp
def dcdm_loss_backward(residuals, g_loss):
    A, b, a_q, curvature, alpha, r = residuals  # noqa: N806
    a_r = r @ A  # rows (A r_i)ᵀ
    q_a_r = (a_q * r).sum(axis=1)  # q_iᵀ A r_i = (A q_i)ᵀ r_i (A symmetric)
    grad = -2 * (alpha[:, None] * a_r + (q_a_r / curvature)[:, None] * (b - 2 * alpha[:, None] * a_q))
    g_q = grad * (g_loss / b.shape[0])
    return (g_q.astype(b.dtype, copy=False),)
