"""The MGDA min-norm direction (Sener & Koltun; used by Pareto Domain Adaptation)."""

from __future__ import annotations

import numpy as np

from ..authoring import FloatArray, IntScalar, Paper, RealScalar, op

__all__ = ["min_norm_gradient_combination"]

PAPER = Paper("Pareto Domain Adaptation", arxiv="2112.04137", year=2021, code="BIT-DA/ParetoDA")

MAX_ITER = 250  # intel-isl/MultiObjectiveOptimization, min_norm_solvers.py, MinNormSolver.MAX_ITER
STOP_CRIT = 1e-5  # the same file, MinNormSolver.STOP_CRIT: stop when ‖Δα‖₁ < this


def two_point_weight(aa, ab, bb):
    """``argmin_{γ∈[0,1]} ‖γa + (1 − γ)b‖²`` from the inner products (½ when a = b)."""
    denominator = aa - 2.0 * ab + bb  # ‖a − b‖²
    if denominator <= 0.0:
        return 0.5
    return min(1.0, max(0.0, (bb - ab) / denominator))


def solve_simplex(gram, max_iter, tol):
    """Min-norm weights α on the simplex for a float64 Gram matrix: ``(α, iterations, gap)``."""
    m = gram.shape[0]
    if m == 1:
        alpha = np.ones(1)
        iterations = 0
    elif m == 2:  # closed form
        weight = two_point_weight(gram[0, 0], gram[0, 1], gram[1, 1])
        alpha = np.array([weight, 1.0 - weight])
        iterations = 0
    else:  # Frank–Wolfe with exact line search from the barycentre
        alpha = np.full(m, 1.0 / m)
        iterations = 0
        while iterations < max_iter:
            gram_alpha = gram @ alpha
            t = int(np.argmin(gram_alpha))  # the vertex of steepest descent (first on ties)
            keep = two_point_weight(alpha @ gram_alpha, gram_alpha[t], gram[t, t])
            new_alpha = keep * alpha
            new_alpha[t] += 1.0 - keep
            change = np.sum(np.abs(new_alpha - alpha))
            alpha = new_alpha
            iterations += 1
            if change < tol:
                break
    gram_alpha = gram @ alpha
    gap = max(0.0, float(alpha @ gram_alpha - np.min(gram_alpha)))  # Frank–Wolfe duality gap
    return alpha, iterations, gap


@op(
    inputs={
        "grads": FloatArray("M", "P"),
        "max_iter": IntScalar(1),
        "tol": RealScalar(0),
    },
    outputs=("alpha", "direction", "iterations", "gap"),
)
def min_norm_gradient_combination(grads, *, max_iter=MAX_ITER, tol=STOP_CRIT):
    r"""The MGDA common descent direction: minus the min-norm point of the gradients' convex hull.

    For objectives L_1..L_M with gradients g_i (rows of ``grads``), MGDA looks for the convex
    combination of the gradients with the smallest norm. Its negative decreases every
    objective at once (``d·g_i ≤ −‖d‖²`` by the optimality conditions), and it is 0 exactly at
    Pareto-stationary points, where no such direction exists. Pareto Domain Adaptation uses
    the same quadratic program as its MGDA baseline and its building block.

    Forward. With the Gram matrix ``K = G Gᵀ`` (float64, one BLAS product)::

        α = argmin_{α ∈ Δ_M} αᵀ K α,      d = −Σ_i α_i g_i = −αᵀG

    * M = 1: α = (1).
    * M = 2, closed form: ``α_1 = clip(((g_2 − g_1)·g_2)/‖g_1 − g_2‖², 0, 1)``, ``α_2 = 1 − α_1``;
      ``g_1 = g_2`` (0/0) takes α_1 = ½ by convention.
    * M > 2: Frank–Wolfe (the paper's Algorithm 2) from the barycentre ``α = 1/M``: the vertex
      ``t = argmin_i (Kα)_i`` (first index on ties), then the exact line search between the
      current point and ``g_t`` (the two-point closed form on ``αᵀKα``, ``(Kα)_t``, ``K_tt``),
      ``α ← γα + (1 − γ)e_t``; stop after ``max_iter`` steps or when ``‖Δα‖₁ < tol``.

    The convergence record: ``iterations`` (Frank–Wolfe steps taken; 0 for M ≤ 2) and ``gap``,
    the Frank–Wolfe duality gap ``αᵀKα − min_i (Kα)_i ≥ 0`` at the returned α (0 at the
    optimum: it bounds the suboptimality of ``αᵀKα``).

    Note: the official MGDA solver clips the two-point weight to [0.001, 0.999] in its corner
    cases (``_min_norm_element_from2`` returns 0.999/0.001 instead of 1/0); this reference keeps
    the exact minimizer, as the paper.

    Not differentiable: a gradient combination applied before the optimizer step (the
    solution map is piecewise and the weights are treated as constants in training).

    Args:
        grads: objective gradients g_i, shape (M, P), float32 or float64.
        max_iter: Frank–Wolfe iterations at most, ≥ 1 (default 250, the official MGDA
            ``MAX_ITER``); unused for M ≤ 2.
        tol: stop when an iteration changes α by less than this in ℓ1 (default 1e-5, the
            official ``STOP_CRIT``); 0 runs all ``max_iter`` iterations.

    Returns:
        alpha: the simplex weights α, shape (M,).
        direction: d = −αᵀG, shape (P,). Both in the dtype of ``grads``.
        iterations: int64 scalar array, Frank–Wolfe steps taken.
        gap: the Frank–Wolfe duality gap at α (computed in float64), a scalar array in the dtype of ``grads``.

    Reference: Sener & Koltun, *Multi-Task Learning as Multi-Objective Optimization*, NeurIPS
    2018, arXiv:1810.04650 (Algorithm 2; official code intel-isl/MultiObjectiveOptimization,
    ``min_norm_solvers.py``, ``MinNormSolver``); Shi et al., *Pareto Domain Adaptation*,
    NeurIPS 2021, arXiv:2112.04137.

    >>> import numpy as np, refimpl
    >>> alpha, d, iterations, gap = refimpl.optim.min_norm_gradient_combination(
    ...     np.array([[1.0, 0.0], [0.0, 1.0]]))
    >>> alpha, d  # the midpoint of (1, 0) and (0, 1) is the closest point to 0
    (array([0.5, 0.5]), array([-0.5, -0.5]))
    """
    gram = np.dot(grads.astype(np.float64), grads.astype(np.float64).T)
    alpha, iterations, gap = solve_simplex(gram, max_iter, tol)
    direction = -np.dot(alpha, grads.astype(np.float64))
    dtype = grads.dtype
    return (
        alpha.astype(dtype),
        direction.astype(dtype),
        np.asarray(iterations, np.int64),
        np.asarray(gap, dtype),
    ), None
