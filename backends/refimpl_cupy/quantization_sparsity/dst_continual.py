"""Prune-and-grow mask update on CuPy: partition-based selections, one fused weight kernel.

Mirrors ``refimpl/quantization_sparsity/dst_continual.py`` (``prune_grow_update``): the k
smallest |w| among the active weights and the k largest growth scores among the candidates
come from ``partition`` (every score strictly past the k-th value, then those equal to it in
index order: the reference's stable-sort set), and one fused kernel writes ``w ⊙ kept``. The
ERK allocation stays reference-only.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def kept_weights(w, kept):
        return xp.where(kept, w, 0).astype(w.dtype)

    return SimpleNamespace(kept_weights=kept_weights)


kernels_for = kernel_set(_kernels)


def _smallest(xp, scores, candidates, count):
    index = xp.flatnonzero(candidates)
    if count == 0:
        return index[:0]
    values = scores[index]
    cut = xp.partition(values, count - 1)[count - 1]
    below = index[values < cut]
    equal = index[values == cut]  # increasing index: the lower one first
    return xp.concatenate([below, equal[: count - int(below.size)]])


def prune_grow_update_forward(
    w, mask, grow_scores, reserved, *, step, end_step, drop_fraction=0.3, regrow_pruned=False
):
    xp = xp_of(w)
    fraction = drop_fraction / 2 * (1 + math.cos(math.pi * step / end_step))
    active = mask.astype(bool)
    reserved = reserved.astype(bool)
    count = int(math.floor(fraction * int(active.sum())))
    if not regrow_pruned:
        count = min(count, int((~active & ~reserved).sum()))
    pruned = _smallest(xp, xp.abs(w.astype(xp.float64)), active, count)
    kept = active.copy()
    kept[pruned] = False
    grow_candidates = (~kept if regrow_pruned else ~active) & ~reserved
    grown = _smallest(xp, -grow_scores.astype(xp.float64), grow_candidates, count)
    new_mask = kept.copy()
    new_mask[grown] = True
    new_w = kernels_for(w).kept_weights(w, kept)
    return (new_mask, new_w, xp.asarray(count, dtype=xp.int64)), None


IMPLS = {"prune_grow_update": Impl(prune_grow_update_forward)}
