"""IV-like (IVL) regression, the anchor-style regularized IV estimator (An Analysis of Causal
Effect Estimation using Outcome Invariant Data Augmentation, Akbar et al.)."""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular

from ..authoring import ArgumentError, FloatArray, Paper, op

__all__ = ["PAPER", "ivl_regression"]

PAPER = Paper(
    "An Analysis of Causal Effect Estimation using Outcome Invariant Data Augmentation",
    arxiv="2510.25128",
    year=2025,
    code="uzairakbar/causal-data-augmentation",
)


def _host(array):
    return np.asarray(array.get() if hasattr(array, "get") else array)


def _check(arguments) -> None:
    X, G, alpha = _host(arguments["X"]), _host(arguments["G"]), float(_host(arguments["alpha"]))  # noqa: N806
    if alpha < 0:
        raise ArgumentError("alpha", "α >= 0", f"α = {alpha}")
    n, m = G.shape
    if m > n or np.linalg.matrix_rank(G) < m:
        raise ArgumentError(
            "G", "instruments of full column rank (m <= n, rank m)", f"rank {np.linalg.matrix_rank(G)} of {m}"
        )
    if alpha == 0 and m < X.shape[1]:
        raise ArgumentError(
            "alpha",
            f"α > 0 when there are fewer instruments than regressors (2SLS needs m >= p = {X.shape[1]})",
            f"α = 0, m = {m}",
        )


def stacked_system(X, y, G, alpha):  # noqa: N803
    """``A = [QᵀX; √α X]``, ``b = [Qᵀy; √α y]`` with Q an orthonormal basis of range(G):
    ``‖Ab − …‖²`` is the IVL objective, ``AᵀA = Xᵀ(P_G + αI)X``."""
    q, _ = np.linalg.qr(G)
    root = np.sqrt(alpha)
    design = np.concatenate([q.T @ X, root * X])
    target = np.concatenate([q.T @ y, root * y])
    return design, target


@op(
    inputs={
        "X": FloatArray("n", "p"),
        "y": FloatArray("n"),
        "G": FloatArray("n", "m"),
        "alpha": FloatArray(),
    },
    outputs=("beta",),
    differentiable=("alpha",),
    check=_check,
)
def ivl_regression(X, y, G, alpha):  # noqa: N803 - the paper's matrices
    r"""IVL regression: least squares regularized towards instrument-projected least squares.

    Outcome-invariant data augmentation acts like an intervention on the treatment, so its
    parameters G can play the role of instruments even when they are not valid instruments
    (irrelevant to the outcome). IVL regression interpolates between the IV (2SLS) fit, which
    only asks the residual to be unexplained by G, and ordinary least squares::

        β̂(α) = argmin_β ‖P_G(y − Xβ)‖² + α‖y − Xβ‖² = (Xᵀ(P_G + αI)X)⁻¹ Xᵀ(P_G + αI) y,
        P_G = G(GᵀG)⁻¹Gᵀ;   α → 0: 2SLS;   α → ∞: OLS.

    Forward: with Q an orthonormal basis of range(G) (QR of G), ``‖P_G r‖ = ‖Qᵀr‖``, so β̂ solves the
    least-squares problem ``[QᵀX; √α X] β ≈ [Qᵀy; √α y]`` (QR / SVD least squares, never an inverse
    or the normal equations: weak instruments make ``XᵀP_G X`` ill-conditioned).

    Backward (α only). The normal equations ``H β = Xᵀ(P_G + αI)y`` with ``H = Xᵀ(P_G + αI)X``,
    differentiated in α: ``XᵀX β + H β' = Xᵀy``, so ``β' = dβ̂/dα = −H⁻¹Xᵀ(Xβ̂ − y)``. For a cotangent
    β̄: ``ᾱ = β̄ᵀβ' = −β̄ᵀH⁻¹Xᵀ(Xβ̂ − y)``; with ``H = RᵀR`` (R from the QR of the stacked design)
    the code computes ``ᾱ = −⟨R⁻ᵀβ̄, R⁻ᵀXᵀ(Xβ̂ − y)⟩``: two triangular solves, each factor at the
    scale of its input (``R⁻¹R⁻ᵀβ̄`` alone underflows in float32 for X ~ 1e30).

    The estimator is the official code's: ``LeastSquaresClosedFormIVlike._fit`` in
    uzairakbar/causal-data-augmentation (``src/regressors/ivl.py``) runs least squares on
    ``K·GX`` and ``K·y`` with ``K = (√(1+α) − √α)P_G + √α I``, and ``KᵀK = P_G + αI``, so it
    minimizes the objective above (its ``GeneralizedMomentMethodIVlike.loss`` is the same
    ``(P_G + αI)``-weighted squared error). The official ``P_G`` uses ``pinv(GᵀG)``; here G must
    have full column rank (a rank-deficient G is refused rather than silently projected). α is a
    required argument: the class default 1.0 is a placeholder the experiments tune.

    Args:
        X: treatments / regressors (n, p), float32 or float64.
        y: outcomes (n,).
        G: augmentation parameters used as instrument-like variables (n, m), full column rank.
        alpha: α >= 0, a 0-d array (differentiable); α = 0 (2SLS) needs m >= p.

    Returns:
        beta: β̂(α) (p,), in the dtype of X.

    Reference: Akbar, Kilbertus, Shen, Muandet, Dai, *An Analysis of Causal Effect Estimation
    using Outcome Invariant Data Augmentation*, NeurIPS 2025, arXiv:2510.25128 (IVL regression;
    official code uzairakbar/causal-data-augmentation); the form is that of anchor regression
    (Rothenhäusler et al., 2021).

    >>> import numpy as np, refimpl
    >>> X, y, G = np.array([[1.0], [2.0], [3.0]]), np.array([1.0, 1.0, 4.0]), np.array([[1.0], [0.0], [0.0]])
    >>> refimpl.solvers.ivl_regression(X, y, G, np.array(1.0))   # (1 + 14)β = 1 + 1 + 2 + 12 → β = 16/15
    array([1.06666667])
    """
    design, target = stacked_system(X, y, G, float(alpha))
    beta = np.linalg.lstsq(design, target, rcond=None)[0].astype(X.dtype, copy=False)
    return beta, (X, y, design, beta)


@ivl_regression.defvjp
def ivl_regression_backward(residuals, g_beta):
    X, y, design, beta = residuals  # noqa: N806
    r_factor = np.linalg.qr(design, mode="r")
    # ᾱ = −⟨R⁻ᵀβ̄, R⁻ᵀXᵀ(Xβ̂ − y)⟩: each factor at the scale of its own input (R⁻¹R⁻ᵀβ̄ alone
    # underflows in float32 when X ~ 1e30)
    whitened_g = solve_triangular(r_factor, g_beta, trans="T")
    whitened_gradient = solve_triangular(r_factor, X.T @ (X @ beta - y), trans="T")
    g_alpha = -whitened_g @ whitened_gradient
    return (np.asarray(g_alpha, dtype=X.dtype),)
