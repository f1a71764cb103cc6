"""Quantile monotonization (sorting, isotonic regression by PAV) and conformalized quantile
regression (Flexible Model Aggregation for Quantile Regression, Fakoor et al.)."""

from __future__ import annotations

import math

import numpy as np

from ..authoring import ArgumentError, FloatArray, Paper, RealScalar, op

__all__ = ["PAPER", "cqr_calibration", "isotonic_regression_pav", "quantile_sort"]

PAPER = Paper(
    "Flexible Model Aggregation for Quantile Regression",
    arxiv="2103.00083",
    year=2023,
    code="amazon-research/quantile-aggregation",
)


# -- quantile_sort -----------------------------------------------------------------------------
@op(
    inputs={"quantiles": FloatArray("...", "L")},
    outputs=("sorted",),
    differentiable=("quantiles",),
)
def quantile_sort(quantiles):
    r"""Sort each predicted quantile vector: the simplest fix of crossing quantiles.

    Predicted quantiles at increasing levels τ_1 < … < τ_L must be nondecreasing, but
    separately trained heads (or an aggregate of models) can cross. Sorting each vector
    restores the order and never increases the pinball loss or the weighted interval score
    against any target (a rearrangement argument).

    Forward, per vector (stable sort: equal values keep their order)::

        π      = argsort(q)            (stable)
        sorted = q[π]

    Backward. Away from ties the sort is a fixed permutation, so the VJP is the inverse
    permutation, a scatter of the cotangent back to where each value came from::

        q̄[π_l] = s̄_l

    At ties (equal values) the sort is not differentiable; this is the VJP of the stable
    permutation.

    Args:
        quantiles: q (..., L), float32 or float64; sorted along the last axis.

    Returns:
        sorted: q sorted along the last axis, same shape and dtype.

    Reference: Fakoor, Kim, Mueller, Smola, Tibshirani, *Flexible Model Aggregation for
    Quantile Regression*, JMLR 2023, arXiv:2103.00083 (post-sorting of the aggregated
    quantiles); Chernozhukov, Fernández-Val, Galichon (2010), quantile rearrangement.

    >>> import numpy as np, refimpl
    >>> refimpl.other.quantile_sort(np.array([[0.5, 0.2, 0.9]]))
    array([[0.2, 0.5, 0.9]])
    """
    order = np.argsort(quantiles, axis=-1, kind="stable")
    return np.take_along_axis(quantiles, order, axis=-1), order


@quantile_sort.defvjp
def quantile_sort_backward(order, g_sorted):
    g_quantiles = np.empty_like(g_sorted)
    np.put_along_axis(g_quantiles, order, g_sorted, axis=-1)  # q̄[π_l] = s̄_l
    return (g_quantiles,)


# -- isotonic_regression_pav ---------------------------------------------------------------------
def _check_pav(arguments) -> None:
    weights = arguments["weights"]
    if weights is not None:
        values = np.asarray(weights.get() if hasattr(weights, "get") else weights)
        if values.size and not np.all(values > 0):
            index = tuple(int(i) for i in np.argwhere(~(values > 0))[0])
            raise ArgumentError(
                "weights", "positive weights (w > 0)", f"{float(values[index])!r} at index {index}"
            )


def _pav_blocks(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pool adjacent violators on one ordered sequence; return each point's block index.

    A stack of blocks (weighted mean, total weight, length); each new point starts a block,
    and while the last two blocks violate the order (mean before > mean after, strictly)
    they are pooled into one with the weighted mean. Blocks with equal means stay apart.
    """
    means: list[float] = []
    totals: list[float] = []
    lengths: list[int] = []
    for value, weight in zip(values.tolist(), weights.tolist(), strict=True):
        means.append(value)
        totals.append(weight)
        lengths.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            total = totals[-2] + totals[-1]
            means[-2] = (totals[-2] * means[-2] + totals[-1] * means[-1]) / total
            totals[-2] = total
            lengths[-2] += lengths[-1]
            del means[-1], totals[-1], lengths[-1]
    return np.repeat(np.arange(len(lengths)), lengths)


@op(
    inputs={
        "y": FloatArray("...", "n"),
        "weights": FloatArray("...", "n", optional=True),
        "x": FloatArray("...", "n", optional=True),
    },
    outputs=("fitted",),
    differentiable=("y",),
    check=_check_pav,
)
def isotonic_regression_pav(y, weights=None, x=None):
    r"""Isotonic regression: the weighted L2 projection onto nondecreasing sequences, by
    pool-adjacent-violators (PAV).

    Used to repair crossing quantiles (and for calibration): the closest nondecreasing vector
    to the predicted quantiles, in the weighted least-squares sense. PAV scans left to right
    and pools any block whose mean exceeds the next block's mean into one block at their
    weighted mean; the result is exact after one pass (O(n) amortized).

    Forward, per row (the last axis), with positive weights w (default 1)::

        f = argmin_{f_1 ≤ f_2 ≤ … ≤ f_n} Σ_i w_i (y_i − f_i)²

    The solution is piecewise constant on consecutive blocks B, ``f_i = Σ_{j∈B} w_j y_j /
    Σ_{j∈B} w_j`` (the block's weighted mean), found by PAV in float64. With ``x`` the order
    is that of x (a stable sort) and points with equal x are tied: they are first merged into
    one point (weight Σ w, value the weighted mean of their y) and so get one fitted value —
    the "secondary" rule for ties of x, as in scikit-learn's IsotonicRegression; the result is
    returned in the input order.

    Backward. On each block f is the weighted mean, so ``∂f_k/∂y_i = w_i/Σ_{j∈B} w_j`` for
    i, k in the same block B and 0 otherwise (the blocks do not move under small changes of y
    away from ties between adjacent block means, where f is not differentiable). So::

        ȳ_i = w_i · Σ_{k∈B(i)} f̄_k / Σ_{j∈B(i)} w_j

    (the plain block mean of f̄ without weights). At a tie of adjacent block means the
    blocks are kept apart (only a strict violation pools), one element of the generalized
    Jacobian; a sequence that is already nondecreasing is its own projection with the
    identity VJP. Weights and x are not differentiated.

    Args:
        y: values (..., n), float32 or float64; each row is regressed separately.
        weights: positive weights w, same shape (None, the default: all 1).
        x: the abscissae (same shape) that order each row (None, the default: the given
            order). Equal x values share one fitted value.

    Returns:
        fitted: the nondecreasing fit f (in the order of x when given), same shape and dtype
        as ``y``.

    Reference: Fakoor, Kim, Mueller, Smola, Tibshirani, *Flexible Model Aggregation for
    Quantile Regression*, JMLR 2023, arXiv:2103.00083 (isotonic monotonization of the
    quantiles); Barlow, Bartholomew, Bremner, Brunk, *Statistical Inference under Order
    Restrictions* (1972), PAV; de Leeuw, Hornik, Mair, *Isotone Optimization in R* (2009),
    the secondary approach to ties.

    >>> import numpy as np, refimpl
    >>> refimpl.other.isotonic_regression_pav(np.array([1.0, 3.0, 2.0, 4.0]))  # pool 3, 2
    array([1. , 2.5, 2.5, 4. ])
    """
    shape = y.shape
    n = shape[-1]
    rows = y.reshape(-1, n).astype(np.float64)
    w = np.ones_like(rows) if weights is None else weights.reshape(-1, n).astype(np.float64)
    labels = np.empty(rows.shape, dtype=np.int64)  # each point's block, numbered across rows
    offset = 0
    for r in range(rows.shape[0]):
        if x is None:
            order = np.arange(n)
            tied = np.arange(n)  # every point its own x
        else:
            keys = np.asarray(x.reshape(-1, n)[r], dtype=np.float64)
            order = np.argsort(keys, kind="stable")
            sorted_keys = keys[order]
            # points with equal x: one merged point (its weight the sum, its value the mean)
            tied = np.concatenate([[0], np.cumsum(sorted_keys[1:] != sorted_keys[:-1])])
        row_w, row_y = np.asarray(w[r][order]), np.asarray(rows[r][order])
        merged_w = np.bincount(tied, weights=row_w)
        merged_y = np.bincount(tied, weights=row_w * row_y) / merged_w
        blocks = _pav_blocks(merged_y, merged_w)[tied]
        labels[r, order] = blocks + offset
        offset += int(blocks[-1]) + 1
    flat = labels.ravel()
    # each block's weighted mean Σ w y / Σ w, read back at its points
    block_means = np.bincount(flat, weights=(w * rows).ravel()) / np.bincount(flat, weights=w.ravel())
    fitted = block_means[flat].reshape(shape).astype(y.dtype)
    return fitted, (flat, w, shape)


@isotonic_regression_pav.defvjp
def isotonic_regression_pav_backward(residuals, g_fitted):
    flat, w, shape = residuals
    g = g_fitted.astype(np.float64).ravel()
    # ȳ_i = w_i · Σ_{k∈B} f̄_k / Σ_{j∈B} w_j
    per_block = np.bincount(flat, weights=g) / np.bincount(flat, weights=w.ravel())
    g_y = w.ravel() * per_block[flat]
    return (g_y.reshape(shape).astype(g_fitted.dtype),)


# -- cqr_calibration -------------------------------------------------------------------------
@op(
    inputs={
        "cal_lower": FloatArray("n"),
        "cal_upper": FloatArray("n"),
        "cal_y": FloatArray("n"),
        "lower": FloatArray("m"),
        "upper": FloatArray("m"),
        "alpha": RealScalar(0, 1, low_open=True, high_open=True),
    },
    outputs=("lower", "upper", "correction"),
    nonfinite_outputs={"lower": ("-inf",), "upper": ("inf",), "correction": ("inf",)},
)
def cqr_calibration(cal_lower, cal_upper, cal_y, lower, upper, *, alpha):
    r"""Conformalized quantile regression (CQR): widen predicted intervals by a correction
    calibrated on held-out data, for finite-sample coverage 1 − α.

    A quantile model's interval ``[l(x), u(x)]`` at nominal level 1 − α covers the target
    only approximately. CQR measures on a calibration set how far the targets fall outside
    (or inside) their intervals and widens (or narrows) every new interval by the
    ⌈(n + 1)(1 − α)⌉-th smallest of those scores: with exchangeable data the result covers a
    new target with probability at least 1 − α.

    Forward::

        E_i = max(l(x_i) − y_i, y_i − u(x_i))          i = 1..n (calibration)
        k   = ⌈(n + 1)(1 − α)⌉                          (evaluated in double precision)
        Q   = E_(k), the k-th smallest E_i;  Q = +∞ when k > n
        interval = [l − Q, u + Q]                        (each new point)

    k is evaluated in double precision exactly as written, ``ceil((n + 1)*(1 − α))``, as the
    usual implementations do; where (n + 1)(1 − α) is an integer in decimal its rounding can
    make k one larger (α = 0.7, n = 9: 1 − α rounds to 0.30000000000000004 and k = 4, not 3),
    a slightly conservative Q.

    E_i is negative when y_i lies inside its interval, so Q may be negative (the intervals
    shrink). Q = +∞ (k > n: too few calibration points for level 1 − α) gives the whole line.
    Not differentiated (a calibration step).

    Args:
        cal_lower, cal_upper: predicted lower and upper quantiles l(x_i), u(x_i) on the
            calibration set (n,), float32 or float64.
        cal_y: calibration targets y_i (n,).
        lower, upper: predicted intervals to calibrate (m,).
        alpha: miscoverage level α in (0, 1) (required: the coverage is the user's choice).

    Returns:
        lower: ``l − Q`` (m,); −∞ when Q = +∞.
        upper: ``u + Q`` (m,); +∞ when Q = +∞.
        correction: Q, a 0-d array. All in the input dtype.

    Reference: Fakoor, Kim, Mueller, Smola, Tibshirani, *Flexible Model Aggregation for
    Quantile Regression*, JMLR 2023, arXiv:2103.00083 (conformal calibration of the
    aggregated quantiles); Romano, Patterson, Candès, *Conformalized Quantile Regression*,
    NeurIPS 2019 (Theorem 1).

    >>> import numpy as np, refimpl
    >>> cal_y = np.array([0.5, 2.0, -1.5, 1.2])          # intervals [0, 1]: E = −0.5, 1, 1.5, 0.2
    >>> lo, hi, q = refimpl.other.cqr_calibration(
    ...     np.zeros(4), np.ones(4), cal_y, np.array([0.0]), np.array([1.0]), alpha=0.4)
    >>> float(q), lo, hi                                  # k = ⌈5·0.6⌉ = 3: the 3rd smallest
    (1.0, array([-1.]), array([2.]))
    """
    dtype = lower.dtype
    scores = np.maximum(cal_lower - cal_y, cal_y - cal_upper)
    n = scores.shape[0]
    rank = math.ceil((n + 1) * (1 - alpha))
    correction = np.sort(scores)[rank - 1] if rank <= n else np.inf
    correction = np.asarray(correction, dtype=dtype)
    return (lower - correction, upper + correction, correction), None
