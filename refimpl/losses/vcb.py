"""Vertex-level class-balanced (VCB) weights and loss (Learning Dense Hand Contact Estimation
from Imbalanced Data, HACO)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    Example,
    Flag,
    FloatArray,
    IntArray,
    IntScalar,
    Paper,
    RealScalar,
    known_deviation,
    op,
    sigmoid,
    sigmoid_and_slope,
    softplus,
)
from ..reweighting.class_balanced import class_balanced_weights

__all__ = ["BCE_LOG_FLOOR", "PAPER", "vcb_class_weights", "vcb_loss"]

PAPER = Paper(
    "Learning Dense Hand Contact Estimation from Imbalanced Data",
    arxiv="2505.11152",
    year=2025,
    code="dqj5182/HACO_RELEASE",
)

# the official denominator clamp (``.clamp(min=1e-6)`` in ``get_samples_per_cls``): a vertex
# that was never counted gets the share 0 instead of 0/0
_DENOMINATOR_FLOOR = 1e-6
# PyTorch's ``nn.BCELoss`` clamps each log at −100 (the official loss calls it on σ(z)), so no
# per-element term exceeds 100: the ``bce_log_clamp=True`` convention
BCE_LOG_FLOOR = -100.0


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


def weight_table(
    vertex_counts, global_counts, *, epoch, total_epochs, beta, total_samples, vertex_weight_max, min_samples
):
    """The (V, 2) VCB weights of this epoch: ``vcb_class_weights``'s forward (shared by the backends)."""
    weights, _ = vcb_class_weights.forward(
        vertex_counts,
        global_counts,
        epoch=epoch,
        total_epochs=total_epochs,
        beta=beta,
        total_samples=total_samples,
        vertex_weight_max=vertex_weight_max,
        min_samples=min_samples,
    )
    return weights


@op(
    inputs={
        "z": FloatArray("B", "V"),
        "y": IntArray("B", "V", low=0, high=2),
        "vertex_counts": FloatArray("V", 2),
        "global_counts": FloatArray(2),
        "epoch": IntScalar(0),
        "total_epochs": IntScalar(2),
        "beta": RealScalar(0, 1, high_open=True),
        "total_samples": RealScalar(0, low_open=True),
        "vertex_weight_max": RealScalar(0, 1),
        "min_samples": RealScalar(0, low_open=True),
        "fp_weight": RealScalar(),
        "bce_log_clamp": Flag(),
    },
    outputs=("loss",),
    differentiable=("z",),
    check=_check_counts,
)
def vcb_loss(
    z,
    y,
    vertex_counts,
    global_counts,
    *,
    epoch,
    total_epochs,
    beta=0.9999,
    total_samples=1000.0,
    vertex_weight_max=0.3,
    min_samples=20.0,
    fp_weight=0.5,
    bce_log_clamp=False,
):
    r"""VCB loss: per-vertex class-balanced binary cross-entropy plus a false-positive penalty.

    HACO predicts one contact logit per hand-mesh vertex. Its vertex-level class-balanced
    (VCB) loss weighs each vertex's binary cross-entropy by the weight of the label it
    carries, taken from the vertex's own (V, 2) table of ``vcb_class_weights`` (the blend of
    per-vertex and global class counts of this epoch), so rare contacts at a vertex that
    seldom touches count more. A second term penalizes the contact probability on
    non-contact vertices, against over-confident positive predictions.

    Forward, for a batch b = 1 … B and vertices v = 1 … V, with ``w`` the (V, 2) table of
    ``vcb_class_weights`` (same counts and hyperparameters) and λ = ``fp_weight``::

        u_bv = z_bv if y_bv = 0, −z_bv if y_bv = 1        (the signed logit of the wrong class)
        ℓ_bv = softplus(u_bv)                             (= BCE(σ(z_bv), y_bv), logit form)
        ℓ_bv ← min(ℓ_bv, 100)                             (bce_log_clamp only)
        p_bv = σ(z_bv)
        L    = (1/BV) Σ_{b,v} w_{v,y_bv}·ℓ_bv + λ·(1/BV) Σ_{b,v} (1 − y_bv)·p_bv

    ``BCE(σ(z), y) = −y log σ(z) − (1 − y) log(1 − σ(z))`` equals ``softplus(−z)`` for y = 1
    and ``softplus(z)`` for y = 0: the softplus ``max(u, 0) + log1p(e^{−|u|})`` never
    overflows and never rounds ``1 − σ(z)`` to 0, where ``log`` of the probability would.

    Backward, for the cotangent ḡ of the scalar loss. ``∂softplus(u)/∂u = σ(u)`` and
    ``∂u/∂z = 1 − 2y``, so ``∂ℓ/∂z = (1 − 2y)·σ(u)``: σ(z) for y = 0 and ``−σ(−z) = σ(z) − 1``
    for y = 1, i.e. ``σ(z) − y`` (computed as ``(1 − 2y)σ(u)``: no cancellation near
    σ(z) = 1). Where the clamp is active (ℓ > 100, bce_log_clamp) the term is constant and
    its derivative 0. ``∂p/∂z = σ(z)(1 − σ(z))``, evaluated as ``e/(1 + e)²`` with
    ``e = exp(−|z|)``. The weights w are data (built from counts), not differentiated::

        z̄_bv = ḡ/(BV) · [w_{v,y_bv}·(1 − 2y_bv)·σ(u_bv)·1{ℓ_bv ≤ 100 or no clamp}
                          + λ·(1 − y_bv)·σ(z_bv)(1 − σ(z_bv))]

    Defaults, from HACO_RELEASE ``lib/core/loss.py``, ``VCBLoss``: those of
    ``vcb_class_weights`` (β = 0.9999, T = 1000, ω_max = 0.3, m = 20; E is the training's
    number of epochs, ``cfg.TRAIN.epoch = 10``, required), and ``fp_weight=0.5`` (``forward``:
    ``vcb_loss.mean() + 0.5 * fp_reg_loss``). The official code applies ``nn.BCELoss`` to
    ``pred.sigmoid()``; PyTorch clamps its logs at −100, so a term is at most 100
    (``bce_log_clamp=True``, see the recorded deviation ``haco-bce-log-clamp-100``; it also
    loses precision wherever σ(z) rounds to 1 in the dtype, which the flag does not copy: it
    is the clamped function in exact arithmetic). The official ``valid`` argument selects
    rows before the loss (and returns 0 when none is valid); pass the valid rows here.

    Args:
        z: contact logits (B, V), float32 or float64.
        y: contact labels (B, V), integers 0 (no contact) or 1 (contact).
        vertex_counts: per-vertex class counts (V, 2), same dtype as ``z``, >= 0.
        global_counts: global class counts (2,), >= 0, not both 0.
        epoch: the current epoch e >= 0 (0-based; past E − 1 uses the last table).
        total_epochs: the number of epochs E >= 2 (required).
        beta, total_samples, vertex_weight_max, min_samples: as in ``vcb_class_weights``.
        fp_weight: λ, the weight of the false-positive penalty (default 0.5).
        bce_log_clamp: cap each cross-entropy term at 100, as ``nn.BCELoss`` (default False).

    Returns:
        loss: the scalar L, in the dtype of ``z``.

    Reference: Jung, Lee, *Learning Dense Hand Contact Estimation from Imbalanced Data*,
    arXiv:2505.11152 (2025), official code dqj5182/HACO_RELEASE, ``lib/core/loss.py``
    (``VCBLoss.forward``, ``VCBLoss.expand_class_weight``).

    >>> import numpy as np, refimpl
    >>> # ω = 1, counts [3, 1], β = 1/2: w = [4/11, 7/11] (vcb_class_weights's example);
    >>> # z = 0: ℓ = log 2 for both labels, p = 1/2 on the y = 0 vertex
    >>> loss = refimpl.losses.vcb_loss(
    ...     np.zeros((1, 2)), np.array([[0, 1]]), np.array([[3.0, 1.0], [3.0, 1.0]]),
    ...     np.array([1.0, 1.0]), epoch=1, total_epochs=2, beta=0.5, total_samples=4.0,
    ...     vertex_weight_max=1.0, min_samples=1.0)
    >>> bool(np.isclose(loss, (4 / 11 + 7 / 11) * np.log(2) / 2 + 0.5 * 0.5 / 2))
    True
    """
    dtype = z.dtype.type
    weights = weight_table(
        vertex_counts,
        global_counts,
        epoch=epoch,
        total_epochs=total_epochs,
        beta=beta,
        total_samples=total_samples,
        vertex_weight_max=vertex_weight_max,
        min_samples=min_samples,
    )
    is_contact = y == 1
    # each (b, v) takes its vertex's weight of its own label (the official gather)
    w_y = np.where(is_contact, weights[:, 1], weights[:, 0]).astype(z.dtype, copy=False)
    # BCE in logit form: softplus of the logit of the wrong class
    u = np.where(is_contact, -z, z)
    bce = softplus(u)
    active = np.ones(z.shape, dtype=bool)
    if bce_log_clamp:
        active = bce <= dtype(-BCE_LOG_FLOOR)  # nn.BCELoss: max(log p, −100), flat beyond
        bce = np.minimum(bce, dtype(-BCE_LOG_FLOOR))
    p, slope = sigmoid_and_slope(z)
    not_contact = (~is_contact).astype(z.dtype)
    count = z.size
    loss = np.sum(w_y * bce) / dtype(count) + dtype(fp_weight) * (np.sum(not_contact * p) / dtype(count))
    residuals = (u, is_contact, w_y, active, slope, not_contact, dtype(fp_weight))
    return dtype(loss), residuals


@vcb_loss.defvjp
def vcb_loss_backward(residuals, g_loss):
    u, is_contact, w_y, active, slope, not_contact, fp_weight = residuals
    dtype = u.dtype.type
    scale = dtype(np.asarray(g_loss, dtype=u.dtype)) / dtype(u.size)
    # ∂ℓ/∂z = (1 − 2y)·σ(u): σ(z) for y = 0, −σ(−z) for y = 1; 0 where the clamp holds ℓ at 100
    d_bce = np.where(is_contact, -sigmoid(u), sigmoid(u)) * active
    g_z = scale * (w_y * d_bce + fp_weight * not_contact * slope)
    return (g_z.astype(u.dtype, copy=False),)


known_deviation(
    vcb_loss,
    name="haco-bce-log-clamp-100",
    source="dqj5182/HACO_RELEASE, lib/core/loss.py, VCBLoss.forward (`nn.BCELoss(reduction='none')` applied "
    "to `pred.sigmoid()`)",
    official="PyTorch's BCELoss clamps log σ(z) and log(1 − σ(z)) at −100, so a confidently wrong vertex "
    "contributes at most 100 (times its weight) and no gradient; in float32 σ(z) also rounds to 1 once "
    "z > ~17, where log(1 − σ) becomes −inf and is clamped",
    paper="binary cross-entropy −y log σ(z) − (1 − y) log(1 − σ(z)), unbounded; refimpl evaluates it as "
    "softplus(±z) (bce_log_clamp=True caps each term at 100, the clamp in exact arithmetic)",
    example=Example(
        args=(np.array([[200.0]]), np.array([[0]]), np.array([[90.0, 10.0]]), np.array([90.0, 10.0])),
        kwargs={"epoch": 0, "total_epochs": 10},
        official={"loss": 10.8627},
        reference={"loss": 21.2255},
        note="w_{v,0} = 0.103627 (epoch 0: the global counts [900, 100]); L = w·ℓ + 0.5·σ(200), "
        "ℓ = 100 (official) or 200",
    ),
    flag={"bce_log_clamp": True},
    convention=True,
)
