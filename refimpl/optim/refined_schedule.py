"""Linear decay and refined schedules from gradient norms (Learning Rate Scheduling by Refinement)."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import median_filter

from ..authoring import ArgumentError, FloatArray, IntArray, IntScalar, OneOf, Paper, RealScalar, op

__all__ = ["PAPER", "linear_decay_schedule", "official_filter_width", "refined_schedule"]

EXPORTS = ("official_filter_width",)

PAPER = Paper(
    "When, Why and How Much? Adaptive Learning Rate Scheduling by Refinement",
    arxiv="2310.07831",
    year=2023,
    code="facebookresearch/adaptive_scheduling",
)

#: the share of the run the official median filter spans (``visual.py``: ``sigma2 = 0.1``)
FILTER_SHARE = 0.1
#: the power of the norm in the weights: w_t = ‖g_t‖^(−p)
NORM_POWER = {"l2": 2.0, "l1": 1.0}


MAX_POINTS = 2**24  # the largest resampled schedule: far beyond the official 10 000 points


def official_filter_width(num_points: int) -> int:
    """The official median-filter width for a sequence of ``num_points`` points: the odd
    number ``2⌊⌊0.1·n⌋/2⌋ + 1`` (10 % of the run; ``visual.py`` and the README)."""
    return 2 * (int(FILTER_SHARE * num_points) // 2) + 1


# -- linear decay ----------------------------------------------------------------------------
def _check_steps(arguments) -> None:
    steps, total = arguments["steps"], arguments["total_steps"]
    if steps.size and int(steps.max()) > total:
        raise ArgumentError(
            "steps",
            f"step indices t in [0, total_steps] = [0, {total}] (η_t would be negative past T)",
            f"step {int(steps.max())}",
        )


@op(
    inputs={
        "steps": IntArray("N", low=0),
        "total_steps": IntScalar(1),
        "lr": RealScalar(0),
    },
    outputs=("lr",),
    check=_check_steps,
)
def linear_decay_schedule(steps, *, total_steps, lr):
    r"""Linear decay: the learning rate falls in a straight line from η to 0 at step T.

    For the *last* iterate of SGD on convex Lipschitz problems, linear decay is the
    worst-case optimal schedule (the paper's main result): no warm-up, no plateau, a
    straight line to zero. ::

        η_t = η·(1 − t/T)

    with t the iteration as in the paper, which counts the steps t = 1, …, T, so the last
    step has η_T = 0 (the refined schedule's last entry is 0 too); t = 0 gives η.

    Args:
        steps: step indices t (N,), integers in [0, T].
        total_steps: the number of steps T ≥ 1 (required).
        lr: the peak learning rate η ≥ 0 (required: tuned per task).

    Returns:
        lr: η_t (N,), float64.

    Reference: Defazio, Cutkosky, Mehta, Mishchenko, *When, Why and How Much? Adaptive
    Learning Rate Scheduling by Refinement*, arXiv:2310.07831.

    >>> import numpy as np, refimpl
    >>> refimpl.optim.linear_decay_schedule(np.array([0, 1, 3, 4]), total_steps=4, lr=0.2)
    array([0.2 , 0.15, 0.05, 0.  ])
    """
    return lr * (1.0 - steps.astype(np.float64) / total_steps), None


# -- refinement ------------------------------------------------------------------------------
def _check_refined(arguments) -> None:
    grad_norms, width, eps = arguments["grad_norms"], arguments["width"], arguments["eps"]
    if grad_norms.shape[0] < 2:
        raise ArgumentError(
            "grad_norms", "T >= 2 norms (a one-step schedule is 0/0)", f"shape {tuple(grad_norms.shape)}"
        )
    if width is not None and width % 2 == 0:
        raise ArgumentError("width", "an odd median-filter width (a centred window)", f"width {width}")
    smallest = float(grad_norms.min())
    if smallest < 0:
        raise ArgumentError("grad_norms", "norms >= 0", f"{smallest!r} at index {int(grad_norms.argmin())}")
    if eps == 0 and smallest == 0:
        raise ArgumentError(
            "grad_norms",
            "norms > 0 when eps = 0 (the weight ‖g‖^(−p) of a zero norm is infinite; pass eps > 0)",
            f"0 at index {int(grad_norms.argmin())}",
        )


def _resample(values, num_points):
    """Linear interpolation onto ``num_points`` points spread over the same run (``np.interp``)."""
    return np.interp(np.linspace(0, 1.0, num_points), np.linspace(0, 1.0, len(values)), values)


def _smoothed_norms(norms, width, num_points):
    """The official median-filter recipe (``visual.py``, README), on float64 norms."""
    points = len(norms) if num_points is None else num_points
    if num_points is not None and len(norms) < num_points:
        norms = _resample(norms, num_points)  # short runs are first stretched to n points
    if width is None:
        width = official_filter_width(points)
    pad = 2 * width
    # right-pad with a mirror image of the end (NumPy's "reflect": the last point is not
    # repeated), filter with SciPy's "nearest" boundary (the first point repeated), crop
    padded = np.pad(norms, (0, pad), mode="reflect")
    filtered = median_filter(padded, size=width, mode="nearest")[:-pad]
    if num_points is not None:
        filtered = _resample(filtered, num_points)  # long runs: filtered, then thinned to n points
    return filtered


@op(
    inputs={
        "grad_norms": FloatArray("T"),
        "width": IntScalar(1, optional=True),
        "num_points": IntScalar(2, MAX_POINTS, optional=True),
        "norm": OneOf("l2", "l1"),
        "eps": RealScalar(0),
    },
    outputs=("schedule",),
    check=_check_refined,
)
def refined_schedule(grad_norms, *, width=None, num_points=None, norm="l2", eps=0.0):
    r"""Refined schedule: a learning-rate schedule fitted to the gradient norms of a previous run.

    The paper bounds the last iterate of SGD for any schedule in terms of the gradient
    norms seen along the way; minimizing that bound for the norms of a previous run gives
    a closed form. Where the norms are constant it is linear decay; where they rise at the
    end it anneals faster; where they start large (as they usually do) it ramps up first:
    a warm-up appears by itself (small early norms give the opposite, large first steps,
    since ``η_t`` grows with ``Ĝ_t^(−p)``). Only the shape is fitted: the result is scaled to a peak of 1 and
    multiplied by a tuned peak learning rate outside.

    Forward, with the norms ``G_1, …, G_T`` of the previous run::

        Ĝ    = median_filter(G, width)             (smoothing, the official recipe below)
        w_t  = Ĝ_t^(−p)                            (p = 2 for ℓ2 norms, p = 1 for ℓ1 / Adam)
        η_t  = w_t · Σ_{s = t+1}^{T} w_s            (η_T = 0: an empty sum)
        out  = η / max_t η_t

    The official ``find_closed_form_schedule`` divides η_t by the last weight w_T and the
    plots then by the maximum: the same result, since any positive constant cancels in
    ``η/max η``. Here the weights are first divided by their maximum
    (``w_t = (min Ĝ/Ĝ_t)^p`` when eps = 0), which cannot overflow and changes nothing after
    the normalization. The tail sums are a reversed cumulative sum, in float64.

    Smoothing (the official median-filter recipe, ``visual.py`` and the README): with
    ``num_points = n`` given, a run shorter than n is first linearly interpolated to n
    points; the norms are right-padded by twice the width with a mirror image of the end
    (NumPy's ``reflect``), filtered with ``scipy.ndimage.median_filter(..., size=width,
    mode="nearest")`` (the first value repeated on the left) and the padding is cropped;
    the result is interpolated to n points (a run longer than n is filtered at full length,
    then thinned), and the schedule has n entries. The official scripts use n = 10 000.
    Without ``num_points`` the sequence is filtered as given and the schedule has T
    entries. ``width`` defaults to the official ``2⌊⌊0.1·n⌋/2⌋ + 1`` (10 % of the run; n
    = T without ``num_points``); ``width=1`` turns the smoothing off.

    For Adam-like methods the paper uses ℓ1 norms with power 1 (``norm="l1"``; the
    official ``visual.py`` passes ``G**-1`` as the weights of its ℓ1 sequences and
    ``G**-2`` otherwise).

    Not pinned by the paper or the code: a guard for zero norms. With ``eps > 0`` the
    weights are ``1/(Ĝ_t^p + eps)``; the default ``eps = 0`` is the official formula, and
    then every norm must be positive.

    Args:
        grad_norms: the per-step gradient norms G (T,) of a previous run, T ≥ 2, ≥ 0,
            float32 or float64.
        width: the odd median-filter width, or None (default) for the official 10 % rule.
        num_points: resample to this many points as the official scripts do (10 000 there),
            or None (default): filter the T norms as given. At most 2^24 (a schedule of 16 M
            points, 1600× the official resolution): a larger count is refused, not allocated.
        norm: "l2" (default; w = Ĝ^(−2), SGD) or "l1" (w = Ĝ^(−1), ℓ1 norms for Adam).
        eps: guard added to Ĝ^p in the weights (default 0, the official formula).

    Returns:
        schedule: the refined schedule (T,) (or (num_points,)), peak 1, last entry 0, in
        the dtype of ``grad_norms``.

    Reference: Defazio, Cutkosky, Mehta, Mishchenko, *When, Why and How Much? Adaptive
    Learning Rate Scheduling by Refinement*, arXiv:2310.07831; official code
    facebookresearch/adaptive_scheduling (``find_schedule.py``:
    ``find_closed_form_schedule``; ``visual.py`` and ``README.md``: the median filter).

    >>> import numpy as np, refimpl
    >>> refimpl.optim.refined_schedule(np.full(5, 3.0))  # constant norms: linear decay
    array([1.  , 0.75, 0.5 , 0.25, 0.  ])
    >>> # G = [1, 2, 2]: w = [1, 1/4, 1/4], η = [1/2, 1/16, 0], scaled by 2
    >>> refimpl.optim.refined_schedule(np.array([1.0, 2.0, 2.0]), width=1)
    array([1.   , 0.125, 0.   ])
    """
    power = NORM_POWER[norm]
    smoothed = _smoothed_norms(grad_norms.astype(np.float64), width, num_points)
    if eps == 0:
        weights = (smoothed.min() / smoothed) ** power  # w / max w, in (0, 1]
    else:
        weights = 1.0 / (smoothed**power + eps)
        weights = weights / weights.max()
    # Σ_{s > t} w_s: the reversed cumulative sum, shifted by one (0 after the last step)
    tail = np.concatenate([np.cumsum(weights[::-1])[::-1][1:], [0.0]])
    schedule = weights * tail
    return (schedule / schedule.max()).astype(grad_norms.dtype), None
