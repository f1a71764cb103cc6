"""Proximal operators of the ℓ1 norm and of the group (ℓ2) norm: soft thresholding, as used by the Lasso
of active multi-task representation learning and by FISTA on the convex gated-ReLU program."""

from __future__ import annotations

import numpy as np

from ..authoring import FloatArray, Paper, RealScalar, op, row_norm

__all__ = ["PAPER", "group_soft_threshold", "soft_threshold"]

PAPER = Paper(
    "Improved Active Multi-Task Representation Learning via Lasso",
    arxiv="2306.02556",
    year=2023,
)


def soft_threshold_values(v, lam):
    """``S_λ(v) = sign(v)·max(|v| − λ, 0)`` elementwise, in the dtype of ``v`` (the op's math, for the
    solvers that call it inside their loops)."""
    return np.sign(v) * np.maximum(np.abs(v) - v.dtype.type(lam), 0)


def group_soft_threshold_values(u, threshold):
    """``max(0, 1 − τ/‖u_g‖)·u_g`` for each row ``u_g`` of ``u`` (τ = tβ), with the row's norm; rows
    with ``‖u_g‖ ≤ τ`` (the zero row among them) give exactly 0."""
    norm = row_norm(u)
    keep = (norm > threshold) | (threshold == 0)  # τ = 0: the identity, the zero row included
    scale = np.where(keep, 1 - threshold / np.where(norm > 0, norm, 1), 0).astype(u.dtype, copy=False)
    return scale * u, norm, keep


@op(
    inputs={"v": FloatArray("n"), "lam": RealScalar(0)},
    outputs=("x",),
    differentiable=("v",),
)
def soft_threshold(v, *, lam):
    r"""Soft thresholding: the proximal operator of ``λ‖·‖₁``.

    ``prox_{λ‖·‖₁}(v) = argmin_x ½‖x − v‖² + λ‖x‖₁`` separates over coordinates; each is
    shrunk towards 0 by λ and set to exactly 0 inside ``[−λ, λ]``. It is the step of ISTA/FISTA
    and of coordinate descent for the Lasso (``lasso_task_relevance``).

    Forward, elementwise::

        x_j = sign(v_j) · max(|v_j| − λ, 0)

    Backward. Outside the kink set ``|v_j| = λ`` the map is ``v_j − λ sign(v_j)`` (slope 1)
    for ``|v_j| > λ`` and 0 (slope 0) for ``|v_j| < λ``, so the Jacobian is the diagonal
    ``diag(1[|v| > λ])`` and::

        v̄ = 1[|v| > λ] ⊙ x̄

    At ``|v_j| = λ`` the map has a kink; the code takes the one-sided slope 0 there (the
    subgradient convention ``1[|v| > λ]``), which is why the op is differentiable
    almost everywhere only.

    Args:
        v: (n,) the point, float32 or float64 (ravel an array of any shape: the map is
            elementwise).
        lam: λ ≥ 0, the threshold (required: the ℓ1 weight times the step, chosen by the caller).

    Returns:
        x: (n,) ``S_λ(v)``, in the dtype of ``v``.

    Reference: the soft-thresholding operator of the Lasso step in Zhang, Yang, Chen, Du, Li,
    *Improved Active Multi-Task Representation Learning via Lasso*, arXiv:2306.02556 (ICML 2023),
    Section 3 (the ν¹ estimator ``argmin ½‖w_0 − Ŵν‖² + λ‖ν‖₁``); Donoho, *De-noising by
    soft-thresholding* (1995).

    >>> import numpy as np, refimpl
    >>> refimpl.solvers.soft_threshold(np.array([3.0, -0.5, -2.0, 1.0]), lam=1.0)
    array([ 2., -0., -1.,  0.])
    """
    x = soft_threshold_values(v, lam)
    return x, np.abs(v) > v.dtype.type(lam)


@soft_threshold.defvjp
def soft_threshold_backward(residuals, g_x):
    active = residuals
    g_x = np.asarray(g_x)
    return (np.where(active, g_x, 0).astype(g_x.dtype, copy=False),)


@op(
    inputs={"u": FloatArray("G", "d"), "t": RealScalar(0, low_open=True), "beta": RealScalar(0)},
    outputs=("y",),
    differentiable=("u",),
)
def group_soft_threshold(u, *, t, beta):
    r"""Group soft thresholding: the proximal operator of ``tβ Σ_g ‖u_g‖₂`` (block shrinkage).

    ``prox_{tβ‖·‖₂}(u) = argmin_y ½‖y − u‖² + tβ‖y‖₂`` shrinks the vector's length by tβ and
    keeps its direction, or returns 0 when the length is at most tβ. Applied row by row to the
    neurons ``u_i`` of the convex gated-ReLU program, it is the proximal step of
    ``fista_gated_relu`` (the group-ℓ1 penalty ``β Σ_i ‖u_i‖₂`` switches whole neurons off).

    Forward, per row g (τ = tβ)::

        ‖u_g‖ = sqrt(Σ_k u_gk²)                     (row_norm: scaled where u² over/underflows)
        y_g   = max(0, 1 − τ/‖u_g‖) · u_g            (y_g = 0 for ‖u_g‖ ≤ τ, the zero row included,
                                                    without dividing by ‖u_g‖ = 0)

    Backward, for ``‖u_g‖ > τ``: ``y = u − τ u/‖u‖``. With ``û = u/‖u‖``,
    ``∂‖u‖/∂u = ûᵀ`` and ``∂(u/‖u‖)/∂u = (I − ûûᵀ)/‖u‖``, so the Jacobian is the symmetric
    ``J = I − (τ/‖u‖)(I − ûûᵀ)`` and::

        ū_g = ȳ_g − (τ/‖u_g‖)(ȳ_g − û_g ⟨û_g, ȳ_g⟩)

    For ``‖u_g‖ < τ`` the map is 0 near u, so ``ū_g = 0``; at ``‖u_g‖ = τ`` (the kink) the code
    takes 0 as well (the one-sided convention of ``soft_threshold``). With τ = 0 the map is the
    identity everywhere, the zero row included, and so is its VJP.

    Args:
        u: (G, d) the groups, one per row, float32 or float64.
        t: t > 0, the step size of the proximal-gradient method (1/L for FISTA).
        beta: β ≥ 0, the group-ℓ1 weight; the threshold is tβ (both required: chosen by the caller).

    Returns:
        y: (G, d) the shrunk groups, in the dtype of ``u``.

    Reference: the group-ℓ1 proximal step of Bai, Gautam, Sojoudi, *Efficient Global Optimization
    of Two-layer ReLU Networks: Quadratic-time Algorithms and Adversarial Training*,
    arXiv:2201.01965 (SIAM J. Math. Data Sci. 2023), Section 3 (the gated-ReLU relaxation solved by
    proximal methods); the operator is the block soft threshold of the group Lasso (Yuan & Lin 2006).
    (The module's ``PAPER`` is the Lasso paper of ``soft_threshold``; both operators share it.)

    >>> import numpy as np, refimpl
    >>> refimpl.solvers.group_soft_threshold(np.array([[3.0, 4.0], [0.3, 0.4]]), t=1.0, beta=1.0)
    array([[2.4, 3.2],
           [0. , 0. ]])
    """
    threshold = float(t) * float(beta)
    y, norm, keep = group_soft_threshold_values(u, threshold)
    return y, (u, norm, keep, threshold)


@group_soft_threshold.defvjp
def group_soft_threshold_backward(residuals, g_y):
    u, norm, keep, threshold = residuals
    dtype = u.dtype
    g_y = np.asarray(g_y).astype(dtype, copy=False)
    safe_norm = np.where(norm > 0, norm, 1)
    u_hat = u / safe_norm
    shrink = (threshold / safe_norm).astype(dtype, copy=False)  # τ/‖u‖
    along = (u_hat * g_y).sum(axis=-1, keepdims=True)  # ⟨û, ȳ⟩
    g_u = g_y - shrink * (g_y - u_hat * along)
    return (np.where(keep, g_u, 0).astype(dtype, copy=False),)
