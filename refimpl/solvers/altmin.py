"""The exact row half-step of alternating minimization for matrix completion (Low Rank Matrix Completion via
Robust Alternating Minimization in Nearly Linear Time, Gu, Song, Yin, Zhang)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, Paper, RealScalar, op

__all__ = ["PAPER", "altmin_row_update"]

PAPER = Paper(
    "Low Rank Matrix Completion via Robust Alternating Minimization in Nearly Linear Time",
    arxiv="2302.11068",
    year=2024,
)


def _check(arguments) -> None:
    weights = arguments["W"]
    weights = np.asarray(weights.get() if hasattr(weights, "get") else weights)
    if bool(np.any(weights < 0)):
        row, col = np.argwhere(weights < 0)[0]
        raise ArgumentError(
            "W",
            "observation weights >= 0 (multiplicities; 0 = not observed)",
            f"{weights[row, col]} at ({row}, {col})",
        )


@op(
    inputs={
        "M": FloatArray("n", "m"),
        "W": FloatArray("n", "m"),
        "V": FloatArray("m", "k"),
        "lam": RealScalar(0),
    },
    outputs=("U", "objective"),
    check=_check,
)
def altmin_row_update(M, W, V, *, lam=0.0):  # noqa: N803 - the paper's matrices
    r"""Alternating minimization, U half-step: each row of U is a (weighted) k × k least-squares solve.

    Matrix completion factors a partially observed matrix as ``M ≈ UVᵀ`` by minimizing the squared
    error on the observed entries Ω. With V fixed the problem splits into one small regression
    per row of U, solved exactly here; alternating with the same step on Mᵀ (for V) is AltMin.
    The paper's contribution is to solve these weighted regressions only approximately, with a
    sketching-based high-accuracy solver, in nearly linear time (and to keep incoherence with a
    QR/clipping step); that solver is not pinned (see below).

    Forward, per row i (``W_ij`` = multiplicity of (i, j) in Ω: an Ω sampled with replacement
    counts a duplicate twice; 0 = unobserved; general weights give the weighted regression)::

        u_i = argmin_u Σ_j W_ij (M_ij − v_jᵀu)² + λ‖u‖²
            = (Σ_j W_ij v_j v_jᵀ + λI)⁻¹ Σ_j W_ij M_ij v_j
        objective = Σ_ij W_ij (M_ij − u_iᵀv_j)² + λ‖U‖_F²      (at the new U)

    solved as the least-squares problem ``[diag(√W_i) V; √λ I] u = [√W_i ⊙ M_i; 0]`` (no normal
    equations: their condition number is squared); a row with fewer than k observations and
    λ = 0 gets the minimum-norm solution (a row with none gets u_i = 0). Entries of M where W = 0
    are never read (any finite placeholder).

    Not pinned: the paper's sketching solver (sketch size, iteration
    count, accuracy) and its QR/clipping step; only the exact half-step, the object the sketched
    solver approximates, is implemented. λ defaults to 0 (the plain half-step; the ridge is an
    option, not a value from the paper).

    Reference-only: n small dense least-squares solves; not differentiable (a solver step).

    Args:
        M: (n, m) matrix with the observed values, float32 or float64.
        W: (n, m) observation weights >= 0 (0/1 mask, multiplicities, or weights), same dtype.
        V: (m, k) the fixed right factor.
        lam: ridge λ >= 0 (default 0).

    Returns:
        U: (n, k) the minimizer. objective: the weighted squared error plus ridge at U (0-d).

    Reference: Gu, Song, Yin, Zhang, *Low Rank Matrix Completion via Robust Alternating
    Minimization in Nearly Linear Time*, ICLR 2024, arXiv:2302.11068 (the alternating
    minimization framework; the exact weighted regression its sketched solver approximates).

    >>> import numpy as np, refimpl
    >>> M, W, V = np.array([[2.0, 4.0, 9.0]]), np.array([[1.0, 1.0, 0.0]]), np.array([[1.0], [2.0], [3.0]])
    >>> U, objective = refimpl.solvers.altmin_row_update(M, W, V)
    >>> U, float(objective)          # u = (2·1 + 4·2)/(1 + 4) = 2; M_13 = 9 unobserved
    (array([[2.]]), 0.0)
    """
    dtype = M.dtype
    k = V.shape[1]
    root_weights = np.sqrt(W)
    ridge = np.sqrt(lam) * np.eye(k, dtype=dtype)
    U = np.empty((M.shape[0], k), dtype=dtype)  # noqa: N806
    for i in range(M.shape[0]):
        design = np.concatenate([root_weights[i][:, None] * V, ridge])
        target = np.concatenate([root_weights[i] * np.where(W[i] > 0, M[i], 0), np.zeros(k, dtype=dtype)])
        U[i] = np.linalg.lstsq(design, target, rcond=None)[0]
    error = np.where(W > 0, M - U @ V.T, 0)
    objective = np.sum(W * error * error) + lam * np.sum(U * U)
    return (U, np.asarray(objective, dtype=dtype)), None
