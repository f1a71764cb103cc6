"""Target–source task relevance by the Lasso and the source-sample allocation it drives (Improved
Active Multi-Task Representation Learning via Lasso, Wang et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import FloatArray, IntScalar, OneOf, RealScalar, op
from .prox import PAPER, soft_threshold_values

__all__ = ["PAPER", "lasso_task_relevance", "source_sample_allocation"]


def _lasso_objective(W, w0, nu, lam):  # noqa: N803 - the paper's matrix Ŵ
    residual = w0 - W @ nu
    return 0.5 * float(residual @ residual) + lam * float(np.abs(nu).sum())


@op(
    inputs={
        "W": FloatArray("d", "T"),
        "w0": FloatArray("d"),
        "lam": RealScalar(0),
        "max_iter": IntScalar(0),
        "tol": RealScalar(0),
    },
    outputs=("nu", "objectives", "iterations", "converged"),
)
def lasso_task_relevance(W, w0, *, lam, max_iter, tol):  # noqa: N803 - the paper's matrix Ŵ
    r"""The ν¹ task-relevance vector: the Lasso fit of the target head by the source heads.

    Multi-task representation learning pretrains a shared representation on T source tasks and
    fits the target on top. How much each source helps the target is measured by writing the
    target's head w_0 as a combination of the source heads Ŵ = [ŵ_1, …, ŵ_T]; the ℓ1 penalty
    keeps that combination sparse, so irrelevant sources get exactly ν_t = 0 and no samples
    (``source_sample_allocation``). The paper shows the ν¹ strategy strictly dominates the
    earlier ν² (minimum ℓ2-norm) one.

    Problem::

        ν̂ = argmin_ν ½‖w_0 − Ŵν‖² + λ‖ν‖₁

    solved by cyclic coordinate descent (each coordinate minimized exactly in turn): with the
    partial residual ``ρ_t = ŵ_tᵀ(w_0 − Ŵν) + ‖ŵ_t‖² ν_t``,
    ``ν_t ← S_λ(ρ_t)/‖ŵ_t‖²`` (``soft_threshold``); a zero column keeps ν_t = 0. One sweep updates
    t = 0, …, T−1; stop after the first sweep whose largest change ``max_t |Δν_t|`` is at most
    tol. Starts at ν = 0 (so λ ≥ ‖Ŵᵀw_0‖_∞, where 0 satisfies the optimality conditions, stops
    after one sweep at ν = 0). The objective decreases monotonically.

    Not pinned by the paper: the Lasso solver and its settings (ISTA or coordinate descent, the
    iteration budget, the tolerance); ``max_iter`` and ``tol`` are required. Reference-only: a
    whole solver, not differentiated. The solver runs in float64; outputs take the input dtype.

    Args:
        W: (d, T) the source-task heads ŵ_t as columns, float32 or float64.
        w0: (d,) the target head.
        lam: λ ≥ 0, the ℓ1 weight (required: the paper's λ is set by its theory per problem).
        max_iter: the most sweeps (required; 0 returns ν = 0).
        tol: tolerance on the largest coordinate change of a sweep (required).

    Returns:
        nu: (T,) ν̂.
        objectives: (iterations + 1,) the objective at ν = 0 and after each sweep.
        iterations: int64 0-d array, the sweeps run.
        converged: bool 0-d array, whether a sweep changed no coordinate by more than tol.

    Reference: Wang, Chen, Jamieson, Du, *Improved Active Multi-Task Representation Learning via
    Lasso*, arXiv:2306.02556 (ICML 2023), Section 4 (the Lasso estimate of ν¹); coordinate descent
    for the Lasso: Friedman, Hastie, Höfling, Tibshirani, *Pathwise coordinate optimization* (2007).

    >>> import numpy as np, refimpl
    >>> W, w0 = np.eye(2), np.array([3.0, 0.5])           # orthonormal heads: ν = S_λ(Ŵᵀw_0)
    >>> nu, _, k, ok = refimpl.solvers.lasso_task_relevance(W, w0, lam=1.0, max_iter=50, tol=1e-12)
    >>> nu, bool(ok)
    (array([2., 0.]), True)
    """
    out_dtype = W.dtype
    W, w0 = np.asarray(W, dtype=np.float64), np.asarray(w0, dtype=np.float64)  # noqa: N806
    tasks = W.shape[1]
    column_squares = (W * W).sum(axis=0)
    nu = np.zeros(tasks)
    residual = w0.copy()  # w_0 − Ŵν, kept up to date
    objectives = [_lasso_objective(W, w0, nu, lam)]
    converged = False
    iterations = 0
    while iterations < max_iter:
        largest_change = 0.0
        for t in range(tasks):
            if column_squares[t] == 0:
                continue  # a zero head: ν_t has no effect and stays 0
            rho = W[:, t] @ residual + column_squares[t] * nu[t]
            updated = float(soft_threshold_values(np.array([rho]), lam)[0]) / column_squares[t]
            change = updated - nu[t]
            if change != 0:
                residual -= change * W[:, t]
                nu[t] = updated
            largest_change = max(largest_change, abs(change))
        iterations += 1
        objectives.append(_lasso_objective(W, w0, nu, lam))
        if largest_change <= tol:
            converged = True
            break
    outputs = (
        nu.astype(out_dtype),
        np.asarray(objectives, dtype=out_dtype),
        np.asarray(iterations, dtype=np.int64),
        np.asarray(converged),
    )
    return outputs, None


@op(
    inputs={
        "nu": FloatArray("T"),
        "scale": RealScalar(0),
        "strategy": OneOf("nu1", "nu2"),
    },
    outputs=("allocation", "proportions"),
)
def source_sample_allocation(nu, *, scale, strategy="nu1"):
    r"""How many samples to draw from each source task, from its relevance to the target.

    Active multi-task representation learning samples more from the source tasks whose heads
    explain the target's: the ν¹ strategy (this paper) in proportion to ``|ν̂_t|`` from the Lasso
    (``lasso_task_relevance``), the earlier ν² strategy (Chen et al. 2022) in proportion to
    ``ν_t²`` from the minimum-ℓ2-norm solution. A source with ν_t = 0 gets no samples.

    Forward::

        w_t          = |ν_t|  (strategy "nu1")     or   ν_t²  (strategy "nu2")
        allocation_t = scale · w_t
        proportions_t = w_t / Σ_s w_s              (0 everywhere when ν = 0)

    Not pinned: the constant in front of the proportionality and its normalization (the
    paper's exact sample-count formula could not be checked against its text or code here), and
    the rounding to integer counts. Only the proportionality law is pinned, so ``scale`` is a
    required argument, the allocation is returned unrounded, and ``proportions`` gives the
    normalized shares for a fixed budget (``budget · proportions``). Reference-only: bookkeeping, not
    differentiated.

    Args:
        nu: (T,) the relevance vector (ν̂ from the Lasso for "nu1"; the minimum-norm ν for "nu2"),
            float32 or float64.
        scale: the constant in front (≥ 0; required, see above).
        strategy: "nu1" (default, this paper's strategy) or "nu2" (the earlier one).

    Returns:
        allocation: (T,) ``scale · |ν_t|`` or ``scale · ν_t²``, unrounded.
        proportions: (T,) the shares ``w_t / Σ w``, summing to 1 (all 0 when ν = 0).

    Reference: Wang, Chen, Jamieson, Du, arXiv:2306.02556 (ICML 2023), the ν¹-based sampling
    (``n_t ∝ |ν_t|``); Chen, Jamieson, Du, *Active Multi-Task Representation Learning* (ICML 2022),
    the ν²-based sampling (``n_t ∝ ν_t²``).

    >>> import numpy as np, refimpl
    >>> nu = np.array([2.0, -1.0, 0.0, 1.0])
    >>> refimpl.solvers.source_sample_allocation(nu, scale=10.0)
    (array([20., 10.,  0., 10.]), array([0.5 , 0.25, 0.  , 0.25]))
    """
    magnitude = np.abs(nu).astype(np.float64)  # float64: ν_t² of a float32 ν cannot overflow
    weights = magnitude if strategy == "nu1" else magnitude * magnitude
    total = weights.sum()
    allocation = (scale * weights).astype(nu.dtype)
    proportions = (weights / total if total > 0 else np.zeros_like(weights)).astype(nu.dtype)
    return (allocation, proportions), None
