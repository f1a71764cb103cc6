"""Equity-scaled segmentation metrics, ES-Dice and ES-IoU (FairSeg, Tian et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, IntArray, IntScalar, OneOf, Paper, RealScalar, op

__all__ = ["PAPER", "equity_scaled_metric"]

PAPER = Paper(
    "FairSeg: A Large-Scale Medical Image Segmentation Dataset for Fairness Learning Using Segment "
    "Anything Model with Fair Error-Bound Scaling",
    arxiv="2311.02189",
    year=2024,
    code="Harvard-Ophthalmology-AI-Lab/FairSeg",
)


def _check(arguments) -> None:
    groups, num_groups = arguments["groups"], arguments["num_groups"]
    labels = np.asarray(groups.get() if hasattr(groups, "get") else groups)
    if num_groups > labels.size:  # every group needs an image: refused before any count is allocated
        raise ArgumentError(
            "num_groups",
            f"at most as many groups as images ({labels.size}): every group needs an image",
            f"{num_groups}",
        )
    if labels.size and int(labels.max()) >= num_groups:
        raise ArgumentError(
            "groups", f"group labels in [-1, num_groups) = [-1, {num_groups})", f"label {int(labels.max())}"
        )
    counts = np.bincount(labels[labels >= 0], minlength=num_groups)
    if np.any(counts == 0):
        empty = int(np.argmin(counts))
        raise ArgumentError(
            "groups",
            "at least one image in every group 0 .. num_groups − 1 (a group's metric is the mean "
            "over its images)",
            f"no image in group {empty}",
        )
    if arguments["variant"] == "std" and num_groups < 2:
        raise ArgumentError(
            "num_groups", "at least 2 groups for variant='std' (the sample standard deviation)", "1 group"
        )


@op(
    inputs={
        "metric": FloatArray("N"),
        "groups": IntArray("N", low=-1),
        "overall": FloatArray(optional=True),
        "num_groups": IntScalar(1),
        "alpha": RealScalar(0),
        "variant": OneOf("sum", "std"),
    },
    outputs=("es_metric", "overall", "group_metrics"),
    check=_check,
)
def equity_scaled_metric(metric, groups, overall=None, *, num_groups, alpha=1.0, variant="sum"):
    r"""Equity-scaled metric: the overall metric divided by one plus the groups' spread.

    A segmentation model can score well on average while doing worse on a demographic group.
    FairSeg's equity-scaled metric (ES-Dice, ES-IoU, for any metric M where higher is better)
    discounts the overall value by how far the per-group values are from it: equal groups
    leave it unchanged, any disparity lowers it.

    Forward, with per-image metric values m_i, group labels g_i (−1: no group), G groups::

        M_all = mean_i m_i                 (over every image, those without a group included;
                                            or ``overall`` when given)
        M_g   = mean_{i: g_i = g} m_i      (each group's mean over its images)
        Δ     = Σ_g |M_g − M_all|          variant="sum" (default, the reported ES numbers)
        Δ     = std_g(M_g), ddof = 1        variant="std" (the sample standard deviation)
        ES-M  = M_all/(1 + α·Δ)

    The sum is the published definition and what the official evaluation reports; the
    first arXiv version's abstract described the standard-deviation form, which the official
    code keeps as ``equity_scaled_std_perf`` (variant="std").

    For a metric in [0, 1] (and α ≥ 0) ``ES-M ≤ M_all``, with equality when every group
    scores M_all. Not differentiated (an evaluation metric).

    Args:
        metric: per-image metric values m (N,), float32 or float64 (Dice, IoU, ...).
        groups: group label of each image (N,), integers in [−1, G); −1 marks an image in no
            group (it counts for M_all only, as in the official evaluation loop). Every group
            needs at least one image.
        overall: M_all as a 0-d array, when it is computed otherwise than as the mean of
            ``metric`` (None, the default: the mean over all N images).
        num_groups: G ≥ 1, the number of groups of the attribute (required: 3 for race or
            language, 2 for gender or ethnicity in FairSeg; at least 2 for variant="std").
        alpha: α ≥ 0 (default 1, as in the paper).
        variant: "sum" (default) or "std".

    Returns:
        es_metric: ES-M, a 0-d array.
        overall: M_all, a 0-d array.
        group_metrics: M_g (G,). All in the dtype of ``metric``.

    Reference: Tian et al., *FairSeg: A Large-Scale Medical Image Segmentation Dataset for
    Fairness Learning Using Segment Anything Model with Fair Error-Bound Scaling*, ICLR 2024,
    arXiv:2311.02189; official code Harvard-Ophthalmology-AI-Lab/FairSeg, ``SAMed/utils.py``
    (``equity_scaled_perf``; ``equity_scaled_std_perf`` with ``statistics.stdev``, whose calls
    are commented out in ``SAMed/test.py``) and ``SAMed/test.py`` (``inference``: M_all the
    mean over all test images, each group's values appended per image).

    >>> import numpy as np, refimpl
    >>> dice = np.array([0.9, 0.7, 0.8, 0.8])      # groups 0, 0, 1, 1: M_0 = M_1 = M_all = 0.8
    >>> es, _, _ = refimpl.other.equity_scaled_metric(dice, np.array([0, 0, 1, 1]), num_groups=2)
    >>> round(float(es), 12)
    0.8
    >>> es, _, _ = refimpl.other.equity_scaled_metric(
    ...     np.array([0.9, 0.7]), np.array([0, 1]), num_groups=2)   # Δ = 0.1 + 0.1
    >>> round(float(es), 12)                                       # 0.8/1.2
    0.666666666667
    """
    dtype = metric.dtype
    values = metric.astype(np.float64)
    m_all = values.mean() if overall is None else np.float64(overall)
    in_group = groups >= 0
    sums = np.bincount(groups[in_group], weights=values[in_group], minlength=num_groups)
    counts = np.bincount(groups[in_group], minlength=num_groups)
    group_metrics = sums / counts
    if variant == "sum":
        spread = np.abs(group_metrics - m_all).sum()
    else:
        spread = group_metrics.std(ddof=1)
    es = m_all / (1 + alpha * spread)
    return (
        np.asarray(es, dtype=dtype),
        np.asarray(m_all, dtype=dtype),
        group_metrics.astype(dtype),
    ), None
