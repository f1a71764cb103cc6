"""The ℓ1 matrix-sensing loss and the sub-gradient method (Global Convergence of Sub-gradient Method for
Robust Matrix Recovery: Small Initialization, Noisy Measurements, and Over-parameterization, Ma & Fattahi)."""

from __future__ import annotations

import numpy as np

from ..authoring import FloatArray, IntScalar, OneOf, Paper, RealScalar, op

__all__ = ["PAPER", "robust_matrix_sensing_l1_loss", "subgm_step"]

PAPER = Paper(
    "Global Convergence of Sub-gradient Method for Robust Matrix Recovery: Small Initialization, Noisy "
    "Measurements, and Over-parameterization",
    arxiv="2202.08788",
    year=2022,
)


def sensing_residuals(U, A, y):  # noqa: N803 - the paper's names
    """``r_i = ⟨A_i, UUᵀ⟩ − y_i`` as one matrix-vector product over the flattened A_i."""
    m, d, _ = A.shape
    return A.reshape(m, d * d) @ (U @ U.T).reshape(d * d) - y


def l1_subgradient(U, A, signs):  # noqa: N803
    """``(1/m) Σ_i s_i (A_i + A_iᵀ) U = (1/m)(S + Sᵀ) U`` with ``S = Σ_i s_i A_i`` (one product)."""
    m, d, _ = A.shape
    s = (signs @ A.reshape(m, d * d)).reshape(d, d)
    return (s + s.T) @ U / U.dtype.type(m)


@op(
    inputs={"U": FloatArray("d", "r"), "A": FloatArray("m", "d", "d"), "y": FloatArray("m")},
    outputs=("loss",),
    differentiable=("U",),
)
def robust_matrix_sensing_l1_loss(U, A, y):  # noqa: N803 - the paper's names
    r"""The ℓ1 loss of symmetric matrix sensing in the factor U: ``f(U) = (1/m) Σ_i |⟨A_i, UUᵀ⟩ − y_i|``.

    Robust matrix recovery looks for a low-rank PSD matrix ``M* = U*U*ᵀ`` from linear
    measurements ``y_i = ⟨A_i, M*⟩ + s_i``, some of them grossly corrupted. The ℓ1 loss (instead of
    the squared one) makes a sparse set of outliers cost only their count, not their size, and
    the factorization ``M = UUᵀ`` with U of r' ≥ r columns (over-parameterized) keeps the iterate
    PSD and of bounded rank. ``subgm_step`` minimizes it with a sub-gradient method from a small
    initialization.

    Forward::

        X   = U Uᵀ                             (d, d)
        r_i = ⟨A_i, X⟩ − y_i = Σ_jk A_ijk X_jk  (one product with A flattened to (m, d²))
        f   = (1/m) Σ_i |r_i|

    Backward (a sub-gradient: f is not differentiable where some r_i = 0; sign(0) = 0 is
    chosen there, the minimum-norm element of each term's sub-differential [−1, 1]). With
    ``d|r_i| = sign(r_i) dr_i`` and ``dr_i = ⟨A_i, dU Uᵀ + U dUᵀ⟩ = ⟨A_i U, dU⟩ + ⟨A_iᵀ U, dU⟩``::

        ∂f/∂U = (1/m) Σ_i sign(r_i) (A_i + A_iᵀ) U = (1/m)(S + Sᵀ) U,   S = Σ_i sign(r_i) A_i

    and ``Ū = ḡ ∂f/∂U`` for the cotangent ḡ of the loss. The code forms S with one product
    (sign vector times the flattened A) instead of m matrix products.

    Args:
        U: the factor (d, r'), float32 or float64.
        A: sensing matrices (m, d, d) (not necessarily symmetric), same dtype.
        y: measurements (m,), same dtype.

    Returns:
        loss: f(U), a scalar in the dtype of U.

    Reference: Ma, Fattahi, *Global Convergence of Sub-gradient Method for Robust Matrix
    Recovery: Small Initialization, Noisy Measurements, and Over-parameterization*,
    arXiv:2202.08788 (JMLR 2023), the ℓ1 objective of Section 1 and its sub-differential.

    >>> import numpy as np, refimpl
    >>> U, A = np.array([[1.0], [2.0]]), np.stack([np.eye(2), np.array([[0.0, 1.0], [0.0, 0.0]])])
    >>> float(refimpl.solvers.robust_matrix_sensing_l1_loss(U, A, np.array([4.0, 0.0])))  # (|5 − 4| + |2|)/2
    1.5
    """
    residuals = sensing_residuals(U, A, y)
    loss = np.abs(residuals).mean()
    return np.asarray(loss, dtype=U.dtype), (U, A, np.sign(residuals))


@robust_matrix_sensing_l1_loss.defvjp
def robust_matrix_sensing_l1_loss_backward(residuals, g_loss):
    U, A, signs = residuals  # noqa: N806
    g_u = U.dtype.type(g_loss) * l1_subgradient(U, A, signs)
    return (g_u.astype(U.dtype, copy=False),)


@op(
    inputs={
        "U": FloatArray("d", "r"),
        "A": FloatArray("m", "d", "d"),
        "y": FloatArray("m"),
        "eta0": RealScalar(0, low_open=True),
        "rho": RealScalar(0, 1, low_open=True),
        "t": IntScalar(0),
        "normalization": OneOf("none", "frobenius"),
    },
    outputs=("U_new", "loss"),
)
def subgm_step(U, A, y, *, eta0, rho, t, normalization):  # noqa: N803 - the paper's names
    r"""One sub-gradient step on the ℓ1 matrix-sensing loss, with a geometrically decaying step.

    SubGM runs ``U_{t+1} = U_t − η_t G_t`` with G_t the sub-gradient of
    ``robust_matrix_sensing_l1_loss`` (sign(0) = 0) and ``η_t = η_0 ρ^t``. Started from a small
    ``U_0 = α B`` (α ≪ 1, B given; done outside), it recovers M* even when U has more columns
    than the rank of M* and a fraction of the measurements are arbitrary outliers: the small
    start keeps the extra directions small while the signal directions grow.

    Step (the loop lives outside; t is the iteration index)::

        r_i  = ⟨A_i, U Uᵀ⟩ − y_i,   f = (1/m) Σ|r_i|          (f is returned: the record)
        G    = (1/m) Σ_i sign(r_i)(A_i + A_iᵀ) U
        η_t  = η_0 ρ^t                  (normalization="none")
             = η_0 ρ^t / ‖G‖_F          (normalization="frobenius"; G = 0 takes no step)
        U'   = U − η_t G

    Not pinned: the paper's exact normalization of η_t (the paper's text was not available in
    full here, and no official code was found), so the choice is a REQUIRED argument, as are
    η_0 and ρ (no invented default): ``"none"`` is the plain geometric step ``η_0 ρ^t``,
    ``"frobenius"`` the normalized sub-gradient step.

    Reference-only in the sense of the loop (one step, state in, state out); the step itself
    has Numba and CuPy versions (the same two products as the loss). Not differentiable.

    Args:
        U: the current factor U_t (d, r'), float32 or float64.
        A: sensing matrices (m, d, d), same dtype. y: measurements (m,).
        eta0: η_0 > 0 (required). rho: decay ρ in (0, 1] (required). t: iteration index t >= 0.
        normalization: ``"none"`` or ``"frobenius"`` (required, see above).

    Returns:
        U_new: U_{t+1} (d, r'). loss: f(U_t) (0-d), the objective at the input.

    Reference: Ma, Fattahi, arXiv:2202.08788, the SubGM algorithm (sub-gradient step with
    exponentially decaying step size, small initialization).

    >>> import numpy as np, refimpl
    >>> U, A, y = np.array([[1.0]]), np.ones((1, 1, 1)), np.array([4.0])   # r = 1 − 4 < 0
    >>> U_new, loss = refimpl.solvers.subgm_step(U, A, y, eta0=0.5, rho=0.5, t=1, normalization="none")
    >>> U_new, float(loss)                   # G = −2U = −2, η = 0.25: U + 0.5
    (array([[1.5]]), 3.0)
    """
    dtype = U.dtype.type
    residuals = sensing_residuals(U, A, y)
    loss = np.abs(residuals).mean()
    g = l1_subgradient(U, A, np.sign(residuals))
    eta = eta0 * rho**t
    if normalization == "frobenius":
        norm = float(np.linalg.norm(g))
        eta = eta / norm if norm > 0 else 0.0
    U_new = U - dtype(eta) * g  # noqa: N806
    return (U_new.astype(U.dtype, copy=False), np.asarray(loss, dtype=U.dtype)), None
