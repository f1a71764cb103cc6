"""Pinball loss, WIS and quantile aggregation (Flexible Model Aggregation for Quantile Regression)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    Example,
    FloatArray,
    OneOf,
    Paper,
    known_deviation,
    op,
    reduce_rows,
    row_weights,
    softmax,
    softmax_backward,
)

__all__ = ["PAPER", "pinball_loss", "quantile_aggregation", "weighted_interval_score"]

PAPER = Paper(
    "Flexible Model Aggregation for Quantile Regression",
    arxiv="2103.00083",
    year=2023,
    code="amazon-research/quantile-aggregation",
)

REDUCTIONS = ("mean", "sum", "none")


def _check_levels(arguments) -> None:
    tau = arguments["tau"]
    xp_tau = np.asarray(tau.get() if hasattr(tau, "get") else tau)
    if not np.all((xp_tau > 0) & (xp_tau < 1)):
        raise ArgumentError(
            "tau", "quantile levels strictly inside (0, 1)", f"values in [{xp_tau.min()!r}, {xp_tau.max()!r}]"
        )


def _heaviside_half(v: np.ndarray) -> np.ndarray:
    """``H(v)``: 1 for v > 0, 0 for v < 0 and ½ at v = 0 (the midpoint of the subdifferential)."""
    return (np.sign(v) + 1) / 2


@op(
    inputs={
        "y": FloatArray("N"),
        "q": FloatArray("N", "L"),
        "tau": FloatArray("L"),
        "reduction": OneOf(*REDUCTIONS),
    },
    outputs=("loss",),
    differentiable=("q",),
    check=_check_levels,
)
def pinball_loss(y, q, tau, *, reduction="mean"):
    r"""Pinball (quantile, check) loss of predicted quantiles at levels τ.

    The τ-quantile of a distribution minimizes the expected pinball loss, so training L
    quantile heads against it makes head l estimate the τ_l-quantile of y given x. Under-
    prediction (y > q) costs τ per unit, over-prediction (y < q) costs 1 − τ per unit.

    Forward, for targets ``y_n`` and predictions ``q_nl`` at levels ``τ_l``::

        u_nl = y_n − q_nl
        ρ_τ(u) = max(τ·u, (τ − 1)·u)
        L = (1/(N·L)) Σ_nl ρ_τl(u_nl)      reduction="mean" (default);
            "sum" sums, "none" returns ρ (N, L)

    Backward. ρ_τ is piecewise linear in u with slopes τ (u > 0) and τ − 1 (u < 0), and
    ``∂u/∂q = −1``, so::

        ∂ρ/∂q = −τ      if y > q
                1 − τ   if y < q
                ½ − τ   if y = q   (the midpoint of the subdifferential [−τ, 1 − τ])

    ``q̄_nl = ḡ·∂ρ/∂q_nl / (N·L)`` (mean), ``ḡ·∂ρ/∂q_nl`` (sum), ``ḡ_nl·∂ρ/∂q_nl`` (none).
    The tie value is what this reference returns at y = q exactly; an autograd framework
    returns one end of the interval (PyTorch's ``max`` picks a branch), so compare away from ties.

    Args:
        y: targets (N,), float32 or float64.
        q: predicted quantiles (N, L), the same dtype (need not be sorted).
        tau: quantile levels (L,) strictly inside (0, 1), the same dtype.
        reduction: "mean" (default, over N and L), "sum" or "none".

    Returns:
        loss: a scalar, or ρ of shape (N, L) for reduction="none", in the input dtype.

    Reference: Fakoor, Kim, Mueller, Smola, Tibshirani, *Flexible Model Aggregation for
    Quantile Regression*, arXiv:2103.00083 (JMLR 2023); Koenker & Bassett (1978). Official
    code amazon-research/quantile-aggregation (not checked against here: standard math).

    >>> import numpy as np, refimpl
    >>> y, q, tau = np.array([1.0]), np.array([[0.5, 1.5]]), np.array([0.1, 0.9])
    >>> round(float(refimpl.losses.pinball_loss(y, q, tau)), 12)
    0.05
    """
    u = y[:, None] - q
    rho = np.maximum(tau * u, (tau - 1) * u)
    return reduce_rows(rho, reduction, q.dtype), (u, tau, reduction)  # over all N·L entries


@pinball_loss.defvjp
def pinball_loss_backward(residuals, g_loss):
    u, tau, reduction = residuals
    # −τ for u > 0, 1 − τ for u < 0, ½ − τ at a tie: H(−u) − τ with H(0) = ½
    slope = _heaviside_half(-u) - tau
    # mean: ḡ/(N·L) on every entry; sum: ḡ; none: ḡ_nl, the same shape as u
    g_q = slope * (g_loss / u.size if reduction == "mean" else g_loss)
    return (g_q.astype(u.dtype, copy=False),)


def _check_interval_levels(arguments) -> None:
    _check_levels(arguments)
    tau = arguments["tau"]
    tau = np.asarray(tau.get() if hasattr(tau, "get") else tau)
    levels = tau.shape[0]
    if levels % 2 == 0:
        raise ArgumentError(
            "tau", "an odd number 2K + 1 of levels (K central intervals and the median ½)", f"{levels} levels"
        )
    if levels > 1 and not np.all(np.diff(tau) > 0):
        raise ArgumentError("tau", "strictly increasing levels", f"levels {tau.tolist()}")
    if tau[levels // 2] != 0.5:
        raise ArgumentError("tau", "the median level ½ in the middle", f"middle level {tau[levels // 2]!r}")
    # 4 float32 ulp of 1, also for float64: levels like 0.05/0.95 rounded to float32 and then
    # promoted to float64 must still pass
    tolerance = 4 * float(np.finfo(np.float32).eps)
    gap = np.abs(tau + tau[::-1] - 1).max()
    if gap > tolerance:
        raise ArgumentError(
            "tau",
            "levels symmetric about ½ (τ_k + τ_{L−1−k} = 1: the pairs α/2, 1 − α/2)",
            f"largest |τ_k + τ_(L-1-k) − 1| = {gap:.3g}",
        )


@op(
    inputs={
        "y": FloatArray("N"),
        "q": FloatArray("N", "L"),
        "tau": FloatArray("L"),
        "reduction": OneOf(*REDUCTIONS),
    },
    outputs=("loss",),
    differentiable=("q",),
    check=_check_interval_levels,
)
def weighted_interval_score(y, q, tau, *, reduction="mean"):
    r"""Weighted interval score (WIS) of a set of central prediction intervals and the median.

    The quantiles at the 2K + 1 levels ``α_1/2 < … < α_K/2 < ½ < 1 − α_K/2 < … < 1 − α_1/2``
    form K central intervals ``[l_k, u_k]`` of nominal coverage ``1 − α_k`` and the median m.
    The interval score rewards narrow intervals and charges ``2/α`` per unit of a miss; WIS
    averages the α-weighted interval scores with the absolute error of the median.

    Forward, per sample n (l_k = q_{n,k}, u_k = q_{n,L−1−k}, m = q_{n,K}, α_k = 2τ_k)::

        IS_α(l, u; y) = (u − l) + (2/α)(l − y)_+ + (2/α)(y − u)_+
        WIS_n = (1/(K + ½))·[½|y − m| + Σ_k (α_k/2)·IS_{α_k}(l_k, u_k; y)]
        L = mean_n WIS_n     reduction="mean" (default); "sum"; "none" returns WIS (N,)

    Identity (tested): ``WIS = (2/(2K + 1))·Σ_l ρ_τl(y − q_l)`` over the 2K + 1 levels, i.e.
    twice the per-sample mean pinball loss over the levels.

    Backward, with ``c = 1/(K + ½)`` and ``H(v)`` = 1 (v > 0), 0 (v < 0), ½ (v = 0)::

        ∂WIS/∂m   = c·½·sign(m − y)                (0 at a tie: midpoint of [−½, ½])
        ∂WIS/∂l_k = c·(α_k/2)·(−1 + (2/α_k)·H(l_k − y)) = c·(H(l_k − y) − α_k/2)
        ∂WIS/∂u_k = c·(α_k/2)·(1 − (2/α_k)·H(y − u_k))  = c·(α_k/2 − H(y − u_k))

    These are the pinball-loss subgradients of the identity above (including the tie
    midpoints ½ − τ), times ``2/(2K + 1) = c``. Each is scaled by ``ḡ/N`` (mean), ``ḡ`` (sum)
    or ``ḡ_n`` (none).

    Args:
        y: targets (N,), float32 or float64.
        q: predicted quantiles (N, 2K + 1) at the levels ``tau`` (need not be sorted).
        tau: levels (2K + 1,), strictly increasing, symmetric about ½ (``τ_k + τ_{L−1−k} = 1``
            to 4 float32 ulp), with ½ in the middle; e.g. [0.025, 0.1, 0.25, 0.5, 0.75, 0.9, 0.975].
        reduction: "mean" (default), "sum" or "none".

    Returns:
        loss: a scalar, or WIS per sample (N,) for reduction="none", in the input dtype.

    Reference: arXiv:2103.00083 (the WIS evaluation of the aggregated quantiles);
    Bracher, Ray, Gneiting, Reich, *Evaluating epidemic forecasts in an interval format* (2021).

    >>> import numpy as np, refimpl
    >>> y, q, tau = np.array([3.0]), np.array([[1.0, 2.0, 4.0]]), np.array([0.1, 0.5, 0.9])
    >>> round(float(refimpl.losses.weighted_interval_score(y, q, tau)), 12)
    0.533333333333
    """
    levels = tau.shape[0]
    k = levels // 2
    lower = q[:, :k]  # l_k at α_k/2
    upper = q[:, levels - 1 : k : -1]  # u_k at 1 − α_k/2, paired with l_k
    median = q[:, k]
    alpha = 2 * tau[:k]
    target = y[:, None]
    interval_score = (
        (upper - lower)
        + (2 / alpha) * np.maximum(lower - target, 0)
        + (2 / alpha) * np.maximum(target - upper, 0)
    )
    c = q.dtype.type(1 / (k + 0.5))
    per_sample = c * (np.abs(y - median) / 2 + (alpha / 2 * interval_score).sum(axis=-1))
    return reduce_rows(per_sample, reduction, q.dtype), (y, q, tau, reduction)


@weighted_interval_score.defvjp
def weighted_interval_score_backward(residuals, g_loss):
    y, q, tau, reduction = residuals
    levels = tau.shape[0]
    k = levels // 2
    alpha = 2 * tau[:k]
    target = y[:, None]
    c = q.dtype.type(1 / (k + 0.5))
    g_q = np.empty_like(q)
    g_q[:, :k] = c * (_heaviside_half(q[:, :k] - target) - alpha / 2)
    g_q[:, levels - 1 : k : -1] = c * (alpha / 2 - _heaviside_half(target - q[:, levels - 1 : k : -1]))
    g_q[:, k] = c * np.sign(q[:, k] - y) / 2
    g_q *= row_weights(g_loss, reduction, q.shape[0])[:, None]
    return (g_q,)


def _check_theta(arguments) -> None:
    members, levels = arguments["member_quantiles"].shape[1:]
    shape = tuple(arguments["theta"].shape)
    if shape not in ((members,), (members, levels)):
        raise ArgumentError(
            "theta",
            f"weight logits of shape (J,) = ({members},) (global) or (J, L) = ({members}, {levels}) "
            "(one weight vector per quantile level), J and L from 'member_quantiles' (N, J, L)",
            f"shape {shape}",
        )


@op(
    inputs={
        "member_quantiles": FloatArray("N", "J", "L"),
        "theta": FloatArray("..."),
    },
    outputs=("quantiles",),
    differentiable=("member_quantiles", "theta"),
    check=_check_theta,
)
def quantile_aggregation(member_quantiles, theta):
    r"""Aggregate the quantile predictions of J models with softmax weights (global or per level).

    Each of J base models predicts L quantiles; the ensemble's τ-quantile is a convex
    combination of the members' τ-quantiles. The weights are a softmax of free logits θ,
    shared by all levels (``theta`` (J,)) or one weight vector per level (``theta`` (J, L)),
    and are fitted by minimizing the average pinball loss of the output (compose with
    ``pinball_loss``). Feature-dependent (network) weights are out of scope.

    Forward::

        w_{·,l} = softmax_j(θ_{·,l})           (θ (J,): the same w for every l)
        q̂_nl   = Σ_j w_jl · Q_njl

    Backward, with cotangent ``q̂̄`` (N, L)::

        Q̄_njl = q̂̄_nl · w_jl
        w̄_jl  = Σ_n q̂̄_nl · Q_njl
        θ̄_{·,l} = w_{·,l} ⊙ (w̄_{·,l} − ⟨w_{·,l}, w̄_{·,l}⟩)     (the softmax VJP, per level)

    For a global θ the same w is used by every level, so ``w̄_j = Σ_l w̄_jl`` before the
    softmax VJP. ``θ̄`` sums to 0 over the members (softmax is shift-invariant).

    Args:
        member_quantiles: Q (N, J, L): member j's prediction of the τ_l-quantile of sample n.
        theta: weight logits (J,) or (J, L), the same dtype.

    Returns:
        quantiles: q̂ (N, L), in the input dtype.

    Reference: arXiv:2103.00083 (global and per-quantile aggregation weights).

    >>> import numpy as np, refimpl
    >>> Q = np.array([[[1.0, 2.0], [3.0, 6.0]]])        # N = 1, J = 2 members, L = 2 levels
    >>> refimpl.losses.quantile_aggregation(Q, np.array([0.0, 0.0]))
    array([[2., 4.]])
    """
    if theta.ndim == 1:
        w = softmax(theta)
        w_full = np.broadcast_to(w[:, None], member_quantiles.shape[1:])
    else:
        w = softmax(theta.T).T  # softmax over the members (axis 0), one column per level
        w_full = w
    quantiles = np.einsum("njl,jl->nl", member_quantiles, w_full)
    return quantiles, (member_quantiles, w, w_full)


@quantile_aggregation.defvjp
def quantile_aggregation_backward(residuals, g_quantiles):
    member_quantiles, w, w_full = residuals
    g_members = g_quantiles[:, None, :] * w_full[None, :, :]
    g_w_full = np.einsum("nl,njl->jl", g_quantiles, member_quantiles)
    if w.ndim == 1:
        g_theta = softmax_backward(w, g_w_full.sum(axis=1))
    else:
        g_theta = softmax_backward(w.T, g_w_full.T).T
    return g_members, np.ascontiguousarray(g_theta)


# -- known deviations of the official code (``refimpl deviations``) -----------------------------------
known_deviation(
    weighted_interval_score,
    name="scoringrules-wis-median-term",
    source="scoringrules 0.10.0, scoringrules/core/interval/_score.py, weighted_interval_score (every "
    "backend, NumPy included)",
    official="adds w_median·median instead of w_median·|y − median|, so the score depends on where the "
    "median is, not on its error",
    paper="WIS = (1/(K + ½))·[½|y − m| + Σ_k (α_k/2)·IS_{α_k}] (Bracher et al. 2021)",
    example=Example(
        args=(np.array([1.0]), np.array([[0.0, 2.0, 3.0]]), np.array([0.25, 0.5, 0.75])),
        kwargs={"reduction": "none"},
        official={"loss": [1.1667]},
        reference={"loss": [0.8333]},
    ),
)
