"""Sparsity-constrained optimal transport: the dual and semi-dual objectives, the sparse-simplex
projection they need, and the plan recovered from the potentials (Sparsity-Constrained Optimal
Transport)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..authoring import (
    ArgumentError,
    Example,
    FloatArray,
    IntScalar,
    Paper,
    RealScalar,
    array_namespace,
    known_deviation,
    op,
)

__all__ = [
    "PAPER",
    "sparse_simplex_projection",
    "sparsity_constrained_ot_dual",
    "sparsity_constrained_ot_plan",
    "sparsity_constrained_ot_semi_dual",
]

PAPER = Paper(
    "Sparsity-Constrained Optimal Transport",
    arxiv="2209.15466",
    year=2023,
    code="PythonOT/POT",
)


# -- the shared blocks, along the last axis ---------------------------------------------------------
def _top_k_order(x: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``min(k, m)`` largest entries of each row, largest first.

    Ties: the lowest index first (a stable sort of ``−x``; negation keeps ties tied), so the
    selection at a tie on the k-th value is defined, and the same in every backend.
    """
    return np.argsort(-x, axis=-1, kind="stable")[..., :k]


def _top_k_mask(x: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the ``min(k, m)`` largest entries of each row (ties: lowest index)."""
    mask = np.zeros(x.shape, dtype=bool)
    np.put_along_axis(mask, _top_k_order(x, k), True, axis=-1)
    return mask


def _project_rows(x: np.ndarray, k: int) -> np.ndarray:
    """``P_{Δ,k}`` of every row: keep the k largest, project them onto the simplex, zero the rest."""
    order = _top_k_order(x, k)
    kept = np.take_along_axis(x, order, axis=-1)  # the kept values, descending
    # shift by the largest: P_Δ(u − c·1) = P_Δ(u), and with u_1 = 0 the j = 1 test below is
    # exactly 1 > 0 at any magnitude (unshifted, u_1 − (u_1 − 1) rounds to 0 once |u_1| ≥ 2^53·ulp)
    u = kept - kept[..., :1]
    cumulative = np.cumsum(u, axis=-1) - 1
    ranks = np.arange(1, u.shape[-1] + 1, dtype=x.dtype)
    # ρ = #{j : u_j − (Σ_{l≤j} u_l − 1)/j > 0} (≥ 1: j = 1 gives 1 > 0), θ = (Σ_{l≤ρ} u_l − 1)/ρ
    rho = np.count_nonzero(u - cumulative / ranks > 0, axis=-1)
    theta = np.take_along_axis(cumulative, (rho - 1)[..., None], axis=-1) / rho[..., None].astype(x.dtype)
    y = np.zeros_like(x)
    np.put_along_axis(y, order, np.maximum(u - theta, 0), axis=-1)
    return y


def _check_marginals(arguments: Mapping[str, Any], *names: str) -> None:
    for name in names:
        value = arguments.get(name)
        if value is None:
            continue
        xp = array_namespace(value)
        if bool(xp.any(value <= 0)):
            index = int(xp.argmax(value <= 0))
            raise ArgumentError(
                name, "positive marginal weights (summing to 1)", f"{float(value[index]):g} at index {index}"
            )


# -- the projection ---------------------------------------------------------------------------------
@op(
    inputs={"x": FloatArray("...", "m"), "max_nz": IntScalar(1)},
    outputs=("y",),
    differentiable=("x",),
)
def sparse_simplex_projection(x, *, max_nz):
    r"""Euclidean projection of each row onto the k-sparse probability simplex.

    ``P_{Δ,k}(x) = argmin_y ‖y − x‖²`` over ``{y ≥ 0, 1ᵀy = 1, ‖y‖₀ ≤ k}``: the set is not
    convex, yet the projection is exact and cheap (Kyrillidis et al., 2013): keep the k
    largest entries, project them onto the simplex, zero the rest. It is what makes every
    column of a sparsity-constrained transport plan k-sparse.

    Forward, per row x (m entries, k = max_nz; k ≥ m is the plain simplex projection)::

        S      = the k largest entries of x, ties broken by the lowest index first
        u      = x_S sorted descending
        ρ      = #{j ≤ k : u_j − (Σ_{l≤j} u_l − 1)/j > 0}          (≥ 1)
        θ      = (Σ_{l≤ρ} u_l − 1)/ρ
        y_i    = max(x_i − θ, 0) for i ∈ S,   y_i = 0 otherwise

    At a tie on the k-th largest value the projection is not unique (each choice is a
    projection); the lowest-index rule picks one, in every backend.

    Backward (almost everywhere: away from ties at the k-th value and from entries exactly at
    θ). On the support ``Sp = {i : y_i > 0}`` the output is ``y_i = x_i − θ`` with
    ``θ = (Σ_{l∈Sp} x_l − 1)/|Sp|``, and 0 off it (locally constant), so::

        ∂y_i/∂x_j = [i ∈ Sp]([i = j] − [j ∈ Sp]/|Sp|)
        x̄_j       = [j ∈ Sp] (ȳ_j − (1/|Sp|) Σ_{i∈Sp} ȳ_i)

    (the Jacobian is symmetric: the projection of ȳ onto the sum-zero vectors of the support).

    Args:
        x: (..., m), float32 or float64; each row is projected.
        max_nz: k ≥ 1, the largest number of non-zeros per row (required; k ≥ m: no sparsity).

    Returns:
        y: (..., m), dtype of x; each row ≥ 0, sums to 1, at most k non-zeros.

    Reference: Liu, Puigcerver, Blondel, *Sparsity-Constrained Optimal Transport*, ICLR 2023,
    arXiv:2209.15466 (the projection: Kyrillidis, Becker, Cevher, Koch, *Sparse projections
    onto the simplex*, ICML 2013, arXiv:1206.1529); official code PythonOT/POT
    (``ot/utils.py``, ``projection_sparse_simplex``).

    >>> import numpy as np, refimpl
    >>> x = np.array([0.5, 0.2, 0.4])  # k = 2 keeps 0.5 and 0.4: θ = (0.9 − 1)/2 = −0.05
    >>> refimpl.transport.sparse_simplex_projection(x, max_nz=2).round(6)
    array([0.55, 0.  , 0.45])
    """
    y = _project_rows(x, max_nz)
    return y, y


@sparse_simplex_projection.defvjp
def sparse_simplex_projection_backward(residuals, g_y):
    y = residuals
    support = y > 0
    count = support.sum(axis=-1, keepdims=True).astype(y.dtype)
    mean_on_support = np.where(support, g_y, 0).sum(axis=-1, keepdims=True) / count
    g_x = np.where(support, g_y - mean_on_support, 0)
    return (g_x.astype(y.dtype, copy=False),)


# -- the dual ---------------------------------------------------------------------------------------
def _check_dual(arguments: Mapping[str, Any]) -> None:
    _check_marginals(arguments, "a", "b")


@op(
    inputs={
        "alpha": FloatArray("m"),
        "beta": FloatArray("n"),
        "a": FloatArray("m"),
        "b": FloatArray("n"),
        "C": FloatArray("m", "n"),
        "gamma": RealScalar(0, low_open=True),
        "max_nz": IntScalar(1),
    },
    outputs=("value",),
    differentiable=("alpha", "beta", "C"),
    check=_check_dual,
)
def sparsity_constrained_ot_dual(alpha, beta, a, b, C, *, gamma, max_nz):
    r"""Dual objective of quadratically regularized OT with k-sparse columns (to maximize).

    The primal ``min_T ⟨T, C⟩ + (γ/2)‖T‖²_F`` over plans with marginals a, b whose every
    column has at most k non-zeros (each target — an expert, in mixture-of-experts routing —
    takes mass from at most k sources) is not convex; its dual is a smooth, concave,
    unconstrained problem in the potentials (α, β), solved with L-BFGS, and the plan is read
    off the gradient.

    Forward (k = max_nz; ``x_j = α + β_j 1 − c_j`` the j-th column of ``X = α1ᵀ + 1βᵀ − C``)::

        δ_k(s)   = (1/(2γ)) Σ_{i ∈ top-k(s)} [s_i]_+²         (ties: lowest index first)
        D(α, β)  = ⟨α, a⟩ + ⟨β, b⟩ − Σ_j δ_k(x_j)

    k ≥ m keeps every entry: plain squared-L2-regularized OT (the POT dual raises there).
    ``X`` is a new array: POT's ``SparsityConstrained.delta_Omega`` writes 0 into its argument
    outside each column's top k (harmless in POT, whose callers pass a fresh X); refimpl never
    writes its inputs.

    Backward. ``δ_k`` is the conjugate of ``(γ/2)‖t‖² + ι{t ≥ 0, ‖t‖₀ ≤ k}``; away from ties
    at the k-th value its gradient is the maximizing t, ``∇δ_k(s) = [s]_+/γ`` on top-k(s) and
    0 elsewhere. Write ``T = [∇δ_k(x_j)]_j`` (m, n). With ``∂x_ij/∂α_i = ∂x_ij/∂β_j = 1`` and
    ``∂x_ij/∂C_ij = −1``, for a cotangent ḡ of D::

        ᾱ = ḡ (a − T 1)        β̄ = ḡ (b − Tᵀ1)        C̄ = ḡ T

    (the envelope theorem: the plan is the derivative of the dual w.r.t. the cost).

    Args:
        alpha: source potentials (m,); beta: target potentials (n,); float32 or float64.
        a: source marginal (m,), b: target marginal (n,), positive, each summing to 1 (the
            sums are not checked: the objective is defined for any positive weights, and its
            maximum is finite only when the masses agree).
        C: cost (m, n).
        gamma: the regularization γ > 0 (required; the paper tunes it per task).
        max_nz: k ≥ 1, the largest number of non-zeros per column (required).

    Returns:
        value: D(α, β), a scalar in the dtype of the inputs.

    Reference: arXiv:2209.15466 (section 3, the dual and ``δ_k``); official code PythonOT/POT
    (``ot/smooth.py``, ``SparsityConstrained.delta_Omega`` and ``dual_obj_grad``).

    >>> import numpy as np, refimpl
    >>> C = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> a = b = np.array([0.5, 0.5])
    >>> alpha = beta = np.array([0.25, 0.25])  # X = [[0.5, −0.5], [−0.5, 0.5]]: δ = 0.5²/2 per column
    >>> float(refimpl.transport.sparsity_constrained_ot_dual(alpha, beta, a, b, C, gamma=1.0, max_nz=1))
    0.25
    """
    x = alpha[:, None] + beta[None, :] - C  # a new array: the inputs are never written
    # each column's top k, as the rows of xᵀ
    kept = _top_k_mask(x.T, max_nz).T
    positive = np.where(kept, np.maximum(x, 0), 0)
    plan = positive / x.dtype.type(gamma)
    conjugates = (positive * positive).sum() / x.dtype.type(2 * gamma)
    value = alpha @ a + beta @ b - conjugates
    return np.asarray(value, dtype=x.dtype), (plan, a, b)


@sparsity_constrained_ot_dual.defvjp
def sparsity_constrained_ot_dual_backward(residuals, g_value):
    plan, a, b = residuals
    g = plan.dtype.type(g_value)
    g_alpha = g * (a - plan.sum(axis=1))
    g_beta = g * (b - plan.sum(axis=0))
    return g_alpha, g_beta, g * plan


# -- the semi-dual ----------------------------------------------------------------------------------
def _check_semi_dual(arguments: Mapping[str, Any]) -> None:
    _check_marginals(arguments, "a", "b")


def _semi_dual_columns(alpha, b, C, gamma, max_nz):
    """``x_j = α − c_j`` and ``g_j = P_{Δ,k}(x_j/(b_j γ))`` for every column, (m, n) each."""
    x = alpha[:, None] - C
    scaled = x / (b[None, :] * x.dtype.type(gamma))
    g = _project_rows(scaled.T, max_nz).T  # columns projected as the rows of the transpose
    return x, g


@op(
    inputs={
        "alpha": FloatArray("m"),
        "a": FloatArray("m"),
        "b": FloatArray("n"),
        "C": FloatArray("m", "n"),
        "gamma": RealScalar(0, low_open=True),
        "max_nz": IntScalar(1),
    },
    outputs=("value",),
    differentiable=("alpha", "C"),
    check=_check_semi_dual,
)
def sparsity_constrained_ot_semi_dual(alpha, a, b, C, *, gamma, max_nz):
    r"""Semi-dual objective of sparsity-constrained OT (to maximize over α alone).

    Maximizing the dual over β in closed form leaves a concave function of α whose inner
    problem is, per column, a projection onto the k-sparse simplex; the plan's column j is
    ``b_j`` times that projection.

    Forward (k = max_nz; ``x_j = α − c_j``)::

        g_j            = P_{Δ,k}(x_j / (b_j γ))             (sparse_simplex_projection)
        max_{Ω,k}(x_j) = ⟨x_j, g_j⟩ − (γ b_j/2)‖g_j‖²
        S(α)           = ⟨α, a⟩ − Σ_j b_j max_{Ω,k}(x_j)

    ``max_{Ω,k}(x) = max_{y ∈ Δ, ‖y‖₀ ≤ k} ⟨x, y⟩ − (γ b_j/2)‖y‖²``, and the maximizer is the
    projection (complete the square: ``‖y − x/(b_j γ)‖²``). k ≥ m: squared-L2 OT.

    Backward. ``max_{Ω,k}`` is a maximum over y of functions linear in x, so (Danskin, away
    from ties in the projection's support) ``∇max_{Ω,k}(x_j) = g_j``. With
    ``∂x_ij/∂α_i = 1``, ``∂x_ij/∂C_ij = −1`` and ``T = [b_j g_j]_j``, for a cotangent ḡ of S::

        ᾱ = ḡ (a − Σ_j b_j g_j) = ḡ (a − T 1)        C̄ = ḡ T

    Args:
        alpha: source potentials (m,), float32 or float64.
        a: source marginal (m,), b: target marginal (n,), positive (b_j divides), each
            summing to 1 (not checked).
        C: cost (m, n).
        gamma: the regularization γ > 0 (required).
        max_nz: k ≥ 1, the largest number of non-zeros per column (required).

    Returns:
        value: S(α), a scalar in the dtype of the inputs.

    Reference: arXiv:2209.15466 (section 3, the semi-dual); official code PythonOT/POT
    (``ot/smooth.py``, ``SparsityConstrained.max_Omega`` and ``semi_dual_obj_grad``).

    >>> import numpy as np, refimpl
    >>> C = np.array([[0.0, 1.0], [1.0, 0.0]])
    >>> a = b = np.array([0.5, 0.5])
    >>> # α = 0, k = 1: g_j = e_j (the cheaper source), max_Ω = 0 − γ b_j/2 = −0.25 per column
    >>> float(refimpl.transport.sparsity_constrained_ot_semi_dual(np.zeros(2), a, b, C, gamma=1.0, max_nz=1))
    0.25
    """
    x, g = _semi_dual_columns(alpha, b, C, gamma, max_nz)
    dtype = x.dtype.type
    maxima = (x * g).sum(axis=0) - dtype(gamma / 2) * b * (g * g).sum(axis=0)
    value = alpha @ a - b @ maxima
    return np.asarray(value, dtype=x.dtype), (g * b[None, :], a)


@sparsity_constrained_ot_semi_dual.defvjp
def sparsity_constrained_ot_semi_dual_backward(residuals, g_value):
    plan, a = residuals
    g = plan.dtype.type(g_value)
    return g * (a - plan.sum(axis=1)), g * plan


# -- the plan ---------------------------------------------------------------------------------------
def _check_plan(arguments: Mapping[str, Any]) -> None:
    beta, b = arguments["beta"], arguments["b"]
    if (beta is None) == (b is None):
        raise ArgumentError(
            "beta",
            "exactly one of beta (the plan of the dual) and b (the plan of the semi-dual)",
            "both" if beta is not None else "neither",
        )
    _check_marginals(arguments, "b")


@op(
    inputs={
        "alpha": FloatArray("m"),
        "C": FloatArray("m", "n"),
        "beta": FloatArray("n", optional=True),
        "b": FloatArray("n", optional=True),
        "gamma": RealScalar(0, low_open=True),
        "max_nz": IntScalar(1),
    },
    outputs=("T",),
    check=_check_plan,
)
def sparsity_constrained_ot_plan(alpha, C, beta=None, b=None, *, gamma, max_nz):
    r"""The transport plan recovered from (optimal) dual or semi-dual potentials.

    Forward (k = max_nz)::

        dual (beta given):    T[:, j] = ∇δ_k(α + β_j − c_j) = [x_j]_+/γ on top-k(x_j), 0 elsewhere
        semi-dual (b given):  T[:, j] = b_j P_{Δ,k}((α − c_j)/(b_j γ))

    At the maximizer of the (semi-)dual the plan has marginals a and b and at most k
    non-zeros per column; the value of the primal there equals the dual's (no gap). Ties at
    the k-th value: the lowest index first. Not differentiated (the solver's output).

    Args:
        alpha: source potentials (m,), float32 or float64.
        C: cost (m, n).
        beta: target potentials (n,) for the plan of the dual, or None.
        b: target marginal (n,), positive, for the plan of the semi-dual, or None (exactly
            one of beta and b).
        gamma: the regularization γ > 0 (required).
        max_nz: k ≥ 1 (required).

    Returns:
        T: the plan (m, n), dtype of the inputs, ≥ 0, at most k non-zeros per column.

    Reference: arXiv:2209.15466 (section 3, plan recovery); official code PythonOT/POT
    (``ot/smooth.py``, ``get_plan_from_dual`` and ``get_plan_from_semi_dual``).

    >>> import numpy as np, refimpl
    >>> C, b = np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([0.5, 0.5])
    >>> refimpl.transport.sparsity_constrained_ot_plan(np.zeros(2), C, b=b, gamma=1.0, max_nz=1)
    array([[0.5, 0. ],
           [0. , 0.5]])
    """
    if beta is not None:
        x = alpha[:, None] + beta[None, :] - C
        kept = _top_k_mask(x.T, max_nz).T
        plan = np.where(kept, np.maximum(x, 0), 0) / x.dtype.type(gamma)
    else:
        _, g = _semi_dual_columns(alpha, b, C, gamma, max_nz)
        plan = g * b[None, :]
    return plan.astype(C.dtype, copy=False), None


# -- known deviations of the official code (``refimpl deviations``) -----------------------------------
known_deviation(
    sparsity_constrained_ot_dual,
    name="pot-sparsity-dual-max-nz-at-least-m",
    source="PythonOT/POT, ot/smooth.py, SparsityConstrained.delta_Omega "
    "(`np.argpartition(-X, self.max_nz, axis=0)`)",
    official="partitions at index max_nz: for max_nz >= m (rows of the cost) the index is out of bounds "
    "and NumPy raises ValueError, so the dual, its gradient and the dual plan are undefined there",
    paper="k >= m removes the sparsity constraint: squared-L2-regularized OT (refimpl keeps every entry)",
    example=Example(
        args=(
            np.array([0.25, 0.25]),
            np.array([0.25, 0.25]),
            np.array([0.5, 0.5]),
            np.array([0.5, 0.5]),
            np.array([[0.0, 1.0], [1.0, 0.0]]),
        ),
        kwargs={"gamma": 1.0, "max_nz": 2},
        official={"raises": "ValueError"},
        reference={"value": 0.25},
        note="X = [[0.5, −0.5], [−0.5, 0.5]]: the negative entries add nothing, as with k = 1",
    ),
)
