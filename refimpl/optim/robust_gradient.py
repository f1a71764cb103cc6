"""Robust aggregations of per-example gradients (On the Generalization Mystery in Deep Learning)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, IntArray, IntScalar, Paper, op

__all__ = ["median_of_means_gradient", "winsorized_gradient"]

PAPER = Paper(
    "On the Generalization Mystery in Deep Learning",
    arxiv="2203.10036",
    year=2022,
)


def group_counts(groups):
    """Sizes of the groups ``0 … K−1`` with ``K = max(groups) + 1``; every group must be non-empty."""
    return np.bincount(np.asarray(groups).reshape(-1))


def _check_groups(args):
    counts = group_counts(args["groups"])
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        raise ArgumentError(
            "groups",
            "every group 0 … max(groups) non-empty",
            f"group {int(empty[0])} has no example (groups present: {np.flatnonzero(counts).tolist()})",
        )


@op(
    inputs={"grads": FloatArray("M", "P"), "groups": IntArray("M", low=0, high="M")},
    outputs=("grad",),
    check=_check_groups,
)
def median_of_means_gradient(grads, groups):
    r"""Median of means of per-example gradients: average within groups, median across groups.

    With per-example gradients ``g_i`` (rows of ``grads``, m × P) and a group assignment
    ``groups[i] ∈ {0, …, K−1}`` (explicit: a sampled partition is an input), every group
    ``k`` non-empty::

        μ_k   = (1/|G_k|) Σ_{i ∈ G_k} g_i                     (the group means, K × P)
        ĝ_p   = median_k μ_{k,p}                               (per coordinate p)

    Tie rule for the median: for odd K the middle order statistic; for even K the mean of
    the two middle ones, ``(μ_(K/2) + μ_(K/2+1))/2`` (NumPy's ``np.median``; PyTorch's
    ``torch.median`` returns the lower one instead). One group gives the plain mean; K = m
    singleton groups give the coordinate-wise median of the examples.

    The paper names robust averaging of per-example gradients as the modification of GD
    that attenuates memorization but its exact variant is not pinned here (PENDING): the
    grouping (how many groups, how they are drawn) is therefore an input with no default.
    The coordinate-based median of means with three groups ("M3") is the variant of the
    same research line (Zielinski, Krishnan, Chatterjee, arXiv:2003.07422).

    Not differentiable (a per-step gradient aggregation: its output feeds the optimizer);
    no backward, hence no VJP.

    Args:
        grads: per-example gradients, shape (m, P), float32 or float64.
        groups: group of each example, shape (m,), integers in ``[0, K)``; every group
            ``0 … max(groups)`` must have at least one example.

    Returns:
        grad: the aggregated gradient, shape (P,).

    Reference: Chatterjee & Zielinski, *On the Generalization Mystery in Deep Learning*,
    arXiv:2203.10036 (robust averaging of per-example gradients).

    >>> import numpy as np, refimpl
    >>> g = np.array([[1.0, 0.0], [3.0, 2.0], [10.0, -4.0], [0.0, 6.0]])
    >>> refimpl.optim.median_of_means_gradient(g, np.array([0, 0, 1, 2]))  # means (2, 1), (10, −4), (0, 6)
    array([2., 1.])
    """
    counts = group_counts(groups)
    means = np.stack([grads[groups == k].mean(axis=0) for k in range(counts.size)])
    return np.median(means, axis=0).astype(grads.dtype), None


def _check_level(args):
    m, level = args["grads"].shape[0], args["level"]
    if 2 * level >= m:
        raise ArgumentError(
            "level", f"2·level < m = {m} (the clip bounds must not cross)", f"level = {level}"
        )


@op(
    inputs={"grads": FloatArray("M", "P"), "level": IntScalar(0)},
    outputs=("grad",),
    check=_check_level,
)
def winsorized_gradient(grads, *, level):
    r"""Coordinate-wise winsorized mean of per-example gradients.

    For each coordinate p, sort the m values ``g_{1,p}, …, g_{m,p}`` (order statistics
    ``g_(1) ≤ … ≤ g_(m)``), clip every value to ``[g_(c+1), g_(m−c)]`` and average::

        ĝ_p = (1/m) Σ_i clip(g_{i,p}, g_(c+1),p, g_(m−c),p)

    so the c smallest values are raised to the (c+1)-th smallest and the c largest lowered
    to the (c+1)-th largest; ``c = 0`` is the plain mean, and ``2c + 1 = m`` gives the
    median (both bounds are the middle value). The clip bounds are order statistics, so
    ties need no rule (equal values clip alike). Requires ``2c < m``.

    The winsorization level c is not pinned here (PENDING: the paper's exact variant), so
    it is a required argument.

    Not differentiable (a per-step gradient aggregation feeding the optimizer); no VJP.

    Args:
        grads: per-example gradients, shape (m, P), float32 or float64.
        level: the winsorization level c ≥ 0 with 2c < m (required).

    Returns:
        grad: the aggregated gradient, shape (P,).

    Reference: Chatterjee & Zielinski, *On the Generalization Mystery in Deep Learning*,
    arXiv:2203.10036 (winsorized averaging of per-example gradients).

    >>> import numpy as np, refimpl
    >>> g = np.array([[0.0], [1.0], [2.0], [100.0]])
    >>> refimpl.optim.winsorized_gradient(g, level=1)  # clip to [1, 2]: (1 + 1 + 2 + 2)/4
    array([1.5])
    """
    m = grads.shape[0]
    ordered = np.sort(grads, axis=0)
    lower, upper = ordered[level], ordered[m - 1 - level]
    return np.clip(grads, lower, upper).mean(axis=0), None
