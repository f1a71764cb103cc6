"""Vertex-level class-balanced (VCB) weights and loss (Learning Dense Hand Contact Estimation
from Imbalanced Data, HACO)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, IntScalar, Paper, RealScalar, op
from ..reweighting.class_balanced import class_balanced_weights

__all__ = ["PAPER", "vcb_class_weights"]

PAPER = Paper(
    "Learning Dense Hand Contact Estimation from Imbalanced Data",
    arxiv="2505.11152",
    year=2025,
    code="dqj5182/HACO_RELEASE",
)

# the official denominator clamp (``.clamp(min=1e-6)`` in ``get_samples_per_cls``): a vertex
# that was never counted gets the share 0 instead of 0/0
_DENOMINATOR_FLOOR = 1e-6


def _first_bad(values: np.ndarray, bad: np.ndarray) -> str:
    index = np.unravel_index(int(np.flatnonzero(bad)[0]), values.shape)
    where = index[0] if len(index) == 1 else index
    return f"{values[index]:g} at index {where}"


def _check_counts(arguments) -> None:
    for name in ("vertex_counts", "global_counts"):
        counts = arguments[name]
        negative = counts < 0
        if bool(np.any(negative)):
            raise ArgumentError(name, "class counts >= 0", _first_bad(counts, negative))
    if not bool(np.any(arguments["global_counts"] > 0)):
        raise ArgumentError(
            "global_counts",
            "at least one counted label (the global class distribution every vertex is blended with)",
            "both counts 0",
        )


@op(
    inputs={
        "vertex_counts": FloatArray("V", 2),
        "global_counts": FloatArray(2),
        "epoch": IntScalar(0),
        "total_epochs": IntScalar(2),
        "beta": RealScalar(0, 1, high_open=True),
        "total_samples": RealScalar(0, low_open=True),
        "vertex_weight_max": RealScalar(0, 1),
        "min_samples": RealScalar(0, low_open=True),
    },
    outputs=("weights",),
    check=_check_counts,
)
def vcb_class_weights(
    vertex_counts,
    global_counts,
    *,
    epoch,
    total_epochs,
    beta=0.9999,
    total_samples=1000.0,
    vertex_weight_max=0.3,
    min_samples=20.0,
):
    r"""VCB class weights: per-vertex effective-number weights of "no contact"/"contact".

    Dense hand contact is a binary label per mesh vertex, and its imbalance differs from
    vertex to vertex (fingertips touch often, the back of the hand rarely). HACO's
    vertex-level class-balanced (VCB) loss weighs each vertex's two classes by Cui et al.'s
    effective-number weights, computed from class counts that blend the vertex's own
    statistics with the global ones: training starts from the global class balance
    (ω_0 = 0) and moves linearly towards the per-vertex balance (ω_{E−1} = 0.3). A floor on
    the blended counts keeps a class that a vertex (almost) never shows from receiving a
    huge weight.

    Forward, for vertices v = 1 … V and classes c ∈ {0 (no contact), 1 (contact)}, with
    T = ``total_samples``, ω_max = ``vertex_weight_max``, m = ``min_samples``::

        n^v_{v,c} = T · n_{v,c} / max(Σ_c' n_{v,c'}, 1e−6)      (per-vertex counts, rows sum to T)
        n^g_c     = T · n_c / max(Σ_c' n_c', 1e−6)              (global counts, sum to T)
        e'        = min(e, E − 1)                               (a later epoch uses the last table)
        ω         = ω_max · e' / (E − 1)
        ñ_{v,c}   = ω·n^v_{v,c} + (1 − ω)·n^g_c
        ñ_{v,c}  ← max(ñ_{v,c}, m)
        ñ_{v,c}  ← T · ñ_{v,c} / Σ_c' ñ_{v,c'}                  (renormalized rows, sum to T)
        u_{v,c}   = (1 − β)/(1 − β^{ñ_{v,c}})                   (1 / effective number)
        w_{v,c}   = u_{v,c} / (u_{v,0} + u_{v,1})               (w_{v,0} + w_{v,1} = 1)

    The last two lines are ``class_balanced_weights(ñ_v, mode="effective_number",
    normalization="sum_to_one")`` for each vertex (its forward is called row by row): the
    same formula, including its cancellation-free ``1 − β^n = −expm1(n·log1p(β − 1))``. The
    official code evaluates ``1 − torch.pow(β, ñ)`` directly; for ñ ≳ 19 (the floor after
    renormalization at the defaults) the two agree to float32 rounding. The max(·, 1e−6)
    denominators are the official code's clamp: a vertex with no counts at all gets the share
    0, so its blend is ``(1 − ω)·n^g`` and, after the renormalization, the global
    distribution. The floor m > 0 makes every ñ > 0, so no weight is infinite. Epochs are
    0-based, e ∈ [0, E − 1]; the official code builds one table per epoch and falls back to
    the last one for a later epoch, which ``e'`` reproduces. Not differentiable: counts are
    data. The official code then maps the (778, 2) MANO-vertex table to its 336- and
    84-vertex and joint heads by multiplying with regressor matrices; that is outside this op.

    Defaults, all from HACO_RELEASE ``lib/core/loss.py``, ``VCBLoss``: ``beta=0.9999`` (the
    constructor's default), ``total_samples=1000`` (``get_samples_per_cls``'s
    ``total_sample_num``, marked "heuristic" there), ``vertex_weight_max=0.3``
    (``v_weight_max``) and ``min_samples=20`` (``clamp(min=20.0)``). The number of epochs E
    is the training configuration's (``cfg.TRAIN.epoch = 10`` in ``lib/core/config.py``) and
    is required here.

    Args:
        vertex_counts: per-vertex class counts n_{v,c} (V, 2), float32 or float64, >= 0
            (column 0: no contact, column 1: contact); a row of zeros is allowed (the vertex
            gets the global weights).
        global_counts: class counts n_c over all vertices (2,), same dtype, >= 0, not both 0
            (in the official code the column sums of ``vertex_counts``).
        epoch: the current epoch e >= 0 (0-based).
        total_epochs: the number of epochs E >= 2 (E = 1 would divide by E − 1 = 0).
        beta: β in [0, 1) of the effective number (default 0.9999).
        total_samples: T > 0, the total every row of counts is scaled to (default 1000).
        vertex_weight_max: ω_max in [0, 1], the per-vertex share at the last epoch (default 0.3).
        min_samples: m > 0, the floor on the blended counts (default 20).

    Returns:
        weights: w (V, 2), in the dtype of the counts; every row sums to 1, and the rarer
        class of a vertex's blended counts gets the larger weight.

    Reference: Jung, Lee, *Learning Dense Hand Contact Estimation from Imbalanced Data*,
    arXiv:2505.11152 (2025), official code dqj5182/HACO_RELEASE, ``lib/core/loss.py``
    (``VCBLoss.get_samples_per_cls`` and ``VCBLoss.compute_class_weight``); the effective
    number from Cui et al., *Class-Balanced Loss Based on Effective Number of Samples*,
    CVPR 2019, arXiv:1901.05555.

    >>> import numpy as np, refimpl
    >>> # ω = 1 (last epoch, ω_max = 1): ñ = the vertex's own counts [3, 1]; β = 1/2:
    >>> # u = [(1/2)/(7/8), (1/2)/(1/2)] = [4/7, 1], w = [4/11, 7/11]
    >>> refimpl.losses.vcb_class_weights(
    ...     np.array([[3.0, 1.0]]), np.array([1.0, 1.0]), epoch=1, total_epochs=2, beta=0.5,
    ...     total_samples=4.0, vertex_weight_max=1.0, min_samples=1.0)
    array([[0.36363636, 0.63636364]])
    """
    dtype = vertex_counts.dtype.type
    total = dtype(total_samples)
    floor = dtype(_DENOMINATOR_FLOOR)
    # normalize the counts to the total T (the official code divides, then multiplies)
    vertex_share = vertex_counts / np.maximum(vertex_counts.sum(axis=1, keepdims=True), floor) * total
    global_share = global_counts / np.maximum(global_counts.sum(), floor) * total
    # the blend of this epoch: ω grows linearly from 0 to ω_max over epochs 0 … E − 1
    last_epoch = total_epochs - 1
    omega = vertex_weight_max * (min(epoch, last_epoch) / last_epoch)
    blended = dtype(omega) * vertex_share + dtype(1.0 - omega) * global_share
    # floor, then renormalize each row to T
    floored = np.maximum(blended, dtype(min_samples))
    n_tilde = floored / floored.sum(axis=1, keepdims=True) * total
    # w_{v,c} ∝ (1 − β)/(1 − β^ñ), normalized over the two classes of each vertex
    weights = np.empty_like(n_tilde)
    for v, row in enumerate(n_tilde):
        weights[v], _ = class_balanced_weights.forward(
            row, mode="effective_number", beta=beta, normalization="sum_to_one"
        )
    return weights, None
