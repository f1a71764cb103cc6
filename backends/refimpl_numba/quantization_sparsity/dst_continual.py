"""Prune-and-grow mask update: linear-time selections, a Numba kernel for the weights.

Mirrors ``refimpl/quantization_sparsity/dst_continual.py`` (``prune_grow_update``). The k
smallest |w| among the active weights and the k largest growth scores among the candidates
are found with ``np.partition`` (linear time) instead of a sort: every score strictly past
the k-th value is selected, then those equal to it in index order (the reference's stable
sort picks the same set). One parallel kernel takes |w| and one writes ``w ⊙ kept``. The ERK
allocation stays reference-only.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@parallel_kernel()
def _magnitudes(w, out):
    for i in prange(w.shape[0]):
        out[i] = abs(np.float64(w[i]))


@parallel_kernel()
def _kept_weights(w, kept, out):
    for i in prange(w.shape[0]):
        out[i] = w[i] if kept[i] else 0.0


def _smallest(scores, candidates, count):
    """Indices of the ``count`` smallest ``scores`` among ``candidates``; ties: lower index."""
    index = np.flatnonzero(candidates)
    if count == 0:
        return index[:0]
    values = scores[index]
    cut = np.partition(values, count - 1)[count - 1]
    below = index[values < cut]
    equal = index[values == cut]  # increasing index: the lower one first
    return np.concatenate([below, equal[: count - below.size]])


def prune_grow_update_forward(
    w, mask, grow_scores, reserved, *, step, end_step, drop_fraction=0.3, regrow_pruned=False
):
    fraction = drop_fraction / 2 * (1 + math.cos(math.pi * step / end_step))
    active = np.asarray(mask, dtype=bool)
    reserved = np.asarray(reserved, dtype=bool)
    count = int(math.floor(fraction * int(np.count_nonzero(active))))
    if not regrow_pruned:
        count = min(count, int(np.count_nonzero(~active & ~reserved)))
    magnitudes = np.empty(w.shape[0])
    _magnitudes(np.ascontiguousarray(w), magnitudes)
    pruned = _smallest(magnitudes, active, count)
    kept = active.copy()
    kept[pruned] = False
    grow_candidates = (~kept if regrow_pruned else ~active) & ~reserved
    grown = _smallest(-np.asarray(grow_scores, dtype=np.float64), grow_candidates, count)
    new_mask = kept.copy()
    new_mask[grown] = True
    new_w = np.empty_like(w)
    _kept_weights(np.ascontiguousarray(w), kept, new_w)
    return (new_mask, new_w, np.asarray(count, dtype=np.int64)), None


IMPLS = {"prune_grow_update": Impl(prune_grow_update_forward)}
