"""ERK layer-density allocation and the prune-and-grow mask update of dynamic sparse training
(Continual Learning with Dynamic Sparse Training, Yildirim et al.; RigL, Evci et al.)."""

from __future__ import annotations

import math

import numpy as np

from ..authoring import (
    ArgumentError,
    BoolArray,
    Flag,
    FloatArray,
    InputError,
    IntArray,
    IntScalar,
    OneOf,
    Paper,
    RealScalar,
    op,
)

__all__ = ["PAPER", "erk_density_allocation", "prune_grow_update", "smallest_first"]

PAPER = Paper(
    "Continual Learning with Dynamic Sparse Training: Exploring Algorithms for Effective Model Updates",
    arxiv="2308.14831",
    year=2023,
    code="google-research/rigl",
)


def _check_shapes(arguments) -> None:
    shapes = arguments["shapes"]
    for layer, shape in enumerate(shapes):
        dims = shape[shape > 0]
        if dims.size == 0 or bool(np.any(shape[: shape.size - dims.size] != 0)):
            raise ArgumentError(
                "shapes",
                "each row a layer shape of positive sizes, left-padded with 0",
                f"row {layer}: {shape.tolist()}",
            )
        if arguments["distribution"] == "er" and dims.size < 2:
            raise ArgumentError(
                "shapes", "at least two dimensions per layer for 'er'", f"row {layer}: {shape.tolist()}"
            )


@op(
    inputs={
        "shapes": IntArray("L", "K", low=0),
        "dense": BoolArray("L"),
        "sparsity": RealScalar(0, 1),
        "erk_power_scale": RealScalar(0),
        "distribution": OneOf("erk", "er", "uniform"),
    },
    outputs=("sparsities", "dense_final", "epsilon"),
    check=_check_shapes,
)
def erk_density_allocation(shapes, dense, *, sparsity, erk_power_scale=1.0, distribution="erk"):
    r"""Erdős–Rényi(-Kernel) allocation of a global sparsity S over layers.

    Reference-only (a one-off construction, not differentiable). ERK gives small layers
    (large ``Σ shape / Π shape``) more density than large ones while keeping the total
    number of nonzeros that uniform sparsity S would keep. Each sparse layer l gets density
    ``ε p_l``; ε is solved so that the nonzero counts match; layers whose density would exceed
    1 are made dense and ε is solved again (google-research/rigl ``sparse_utils.py``,
    ``get_sparsities_erdos_renyi``)::

        N_l   = Π shape_l,  zeros_l = ⌊S N_l⌋
        p_l   = (Σ shape_l / Π shape_l)^{erk_power_scale}     ("erk", kernel included)
              = (n_in + n_out)/(n_in n_out)                     ("er": last two dims, no power)
        ε     = [Σ_{l∉D} (N_l − zeros_l) − Σ_{l∈D} zeros_l] / Σ_{l∉D} p_l N_l
        if max_{l∉D} ε p_l > 1:  D ← D ∪ {ALL l∉D with p_l = max p}, repeat
        sparsity_l = 1 − ε p_l (l ∉ D),  0 (l ∈ D)

    ``"uniform"``: every layer S, except those in ``dense`` (0). Exact ties in the maximum
    raw density move together (``==`` on the float64 p_l, as the official loop). The floors
    make the total density differ from S by less than the number of layers.

    Args:
        shapes: (L, K) integer layer shapes, one row per layer, lower ranks left-padded with 0
            (a dense layer (in, out) in a K = 4 table is ``[0, 0, in, out]``).
        dense: (L,) layers kept dense from the start (rigl's ``custom_sparsity_map`` = 0).
        sparsity: the global target S in [0, 1] (required).
        erk_power_scale: the power on the raw density (default 1.0, rigl
            ``get_sparsities_erdos_renyi``); 0 gives uniform densities over sparse layers.
        distribution: "erk" (default; rigl's ``erdos_renyi_kernel``, every dimension),
            "er" (``erdos_renyi``: the last two dimensions), "uniform".

    Returns:
        sparsities: (L,) float64 per-layer sparsity.
        dense_final: (L,) bool, the layers that ended dense.
        epsilon: the final ε (float64 scalar; 0 for "uniform").

    Reference: Yildirim et al., arXiv:2308.14831 (ERK for continual DST); Evci et al.,
    *Rigging the Lottery*, ICML 2020, Appendix (ERK); official google-research/rigl
    ``rigl/sparse_utils.py``, ``get_sparsities_erdos_renyi``.

    >>> import numpy as np, refimpl
    >>> shapes = np.array([[10, 10], [100, 100]])
    >>> s, d, eps = refimpl.quantization_sparsity.erk_density_allocation(
    ...     shapes, np.array([False, False]), sparsity=0.9)
    >>> s.round(4), d                         # p = (0.2, 0.02), ε = 1010/220
    (array([0.0818, 0.9082]), array([False, False]))
    """
    dense_set = dense.astype(bool).copy()
    sizes = np.array([math.prod(int(x) for x in row[row > 0]) for row in shapes], dtype=np.float64)
    zeros = np.floor(sparsity * sizes)
    if distribution == "uniform":
        return (np.where(dense_set, 0.0, sparsity), dense_set, np.asarray(0.0)), None
    if distribution == "erk":
        raw = np.array([(row[row > 0].sum() / math.prod(int(x) for x in row[row > 0])) for row in shapes])
        raw = raw**erk_power_scale
    else:
        raw = np.array([(row[-2] + row[-1]) / (row[-2] * row[-1]) for row in shapes], dtype=np.float64)
    while True:
        sparse = ~dense_set
        if not bool(np.any(sparse)):  # defensive: with ε ≥ 0 a sparse layer always remains
            raise InputError(
                "erk_density_allocation: every layer ended dense; the target sparsity cannot be "
                "met with the remaining layers (lower 'sparsity' or the initial dense set)"
            )
        rhs = np.sum((sizes - zeros)[sparse]) - np.sum(zeros[dense_set])
        divisor = np.sum((raw * sizes)[sparse])
        epsilon = rhs / divisor
        if epsilon < 0:
            raise InputError(
                f"erk_density_allocation: ε = {epsilon:.6g} < 0: the zeros the dense layers would "
                "have held exceed the nonzeros the sparse layers may keep (lower 'sparsity' or "
                "the initial dense set)"
            )
        largest = np.max(raw[sparse])
        if largest * epsilon > 1:
            dense_set |= sparse & (raw == largest)  # all layers attaining the maximum
        else:
            break
    sparsities = np.where(dense_set, 0.0, 1.0 - epsilon * raw)
    return (sparsities, dense_set, np.asarray(epsilon, dtype=np.float64)), None


def smallest_first(scores, candidates, count):
    """The indices of the ``count`` smallest ``scores`` among ``candidates`` (a bool mask), in
    ascending order of score, ties by the lower index (a stable ascending sort)."""
    index = np.flatnonzero(candidates)
    order = np.argsort(scores[index], kind="stable")
    return index[order[:count]]


def _check_update(arguments) -> None:
    if int(arguments["step"]) > int(arguments["end_step"]):
        raise ArgumentError("step", "t ≤ T_end (no update after end_step)", f"{int(arguments['step'])}")
    if bool(np.any(arguments["mask"] & arguments["reserved"])):
        raise ArgumentError(
            "reserved", "no active weight reserved by another task (mask ∧ reserved empty)", "an overlap"
        )


@op(
    inputs={
        "w": FloatArray("N"),
        "mask": BoolArray("N"),
        "grow_scores": FloatArray("N"),
        "reserved": BoolArray("N"),
        "step": IntScalar(0),
        "end_step": IntScalar(1),
        "drop_fraction": RealScalar(0, 1),
        "regrow_pruned": Flag(),
    },
    outputs=("new_mask", "new_w", "n_updated"),
    check=_check_update,
)
def prune_grow_update(
    w, mask, grow_scores, reserved, *, step, end_step, drop_fraction=0.3, regrow_pruned=False
):
    r"""One prune-and-grow update of a sparse mask (SET/RigL dynamic sparse training).

    Not differentiable (a selection); fast backends exist. Every ΔT steps the mask drops the
    weakest active connections and grows as many new ones, so the number of nonzeros stays
    fixed while the connectivity moves::

        ζ_t   = (ζ/2)(1 + cos(π t / T_end))                     (cosine decay, RigL eq. 1)
        k     = ⌊ζ_t · nnz⌋                                     (rigl: int(n_ones · drop_fraction))
        prune = the k active weights with the smallest |w|       (ties: lower index first)
        grow  = the k candidates with the LARGEST grow_scores     (ties: lower index first)
        candidates = ¬mask ∧ ¬reserved                           (regrow_pruned: ¬kept ∧ ¬reserved)
        new_mask = mask − prune + grow,  new_w = w ⊙ new_mask with grown weights 0

    ``grow_scores`` selects the growth criterion: |∇L| for RigL, uniform random draws for SET
    (randomness is an input), |momentum| or "unfired" counts for the continual variants.
    ``reserved`` marks the weights other tasks own (continual learning): never grown. With
    ``regrow_pruned=True`` the just-pruned weights are candidates again (RigL's
    ``generic_mask_update`` ranks every weight outside the kept set); the default excludes
    every weight active before the update. If fewer than k candidates exist, only as many
    are pruned and grown (nnz is always preserved).

    Args:
        w: weights (N,), float32/float64 (flatten a layer).
        mask: (N,) the active set.
        grow_scores: (N,) growth scores, larger grows first.
        reserved: (N,) weights reserved by other tasks (all False outside continual learning).
        step: t, the current step (0 ≤ t ≤ T_end).
        end_step: T_end, the step at which updates stop.
        drop_fraction: ζ, the initial fraction (default 0.3, RigL §4 / rigl
            ``drop_fraction``).
        regrow_pruned: let just-pruned weights be regrown (RigL's code); default False.

    Returns:
        new_mask: (N,) bool.
        new_w: (N,) the weights under the new mask, grown ones 0.
        n_updated: k actually pruned (= grown), int64 scalar.

    Reference: Yildirim et al., arXiv:2308.14831; Evci et al., *Rigging the Lottery*, ICML
    2020 (eq. 1, cosine drop schedule; ``rigl/sparse_optimizers.py``); Mocanu et al., SET,
    2018.

    >>> import numpy as np, refimpl
    >>> w = np.array([0.5, -2.0, 0.0, 0.1, 3.0, 0.0])
    >>> mask = np.array([True, True, False, True, True, False])
    >>> m, w2, k = refimpl.quantization_sparsity.prune_grow_update(
    ...     w, mask, np.array([0, 0, 5.0, 0, 0, 7.0]), np.zeros(6, bool), step=0, end_step=10,
    ...     drop_fraction=0.5)
    >>> m.astype(int), w2, int(k)             # prune 0.1 and 0.5; grow 5 and 2
    (array([0, 1, 1, 0, 1, 1]), array([ 0., -2.,  0.,  0.,  3.,  0.]), 2)
    """
    fraction = drop_fraction / 2 * (1 + math.cos(math.pi * step / end_step))
    active = mask.astype(bool)
    count = int(math.floor(fraction * int(active.sum())))
    if not regrow_pruned:  # the candidates are known before pruning: at most that many move
        count = min(count, int(np.count_nonzero(~active & ~reserved)))
    pruned = smallest_first(np.abs(w), active, count)
    kept = active.copy()
    kept[pruned] = False
    # regrow_pruned: the pruned weights are candidates too (never reserved: checked), so ≥ count
    grow_candidates = (~kept if regrow_pruned else ~active) & ~reserved
    grown = smallest_first(-grow_scores, grow_candidates, count)  # largest score first
    new_mask = kept.copy()
    new_mask[grown] = True
    new_w = np.where(kept, w, w.dtype.type(0))  # grown weights start at 0
    return (new_mask, new_w, np.asarray(count, dtype=np.int64)), None
