"""SimCore sampling: cosine similarities and column sorts in parallel Numba kernels, the greedy in one.

Mirrors ``refimpl/data_selection/simcore.py`` operation for operation: unit rows (squared norm
summed over the features in order, the kernel of the Dataset Quantization module), the
similarity ``S[o, k] = Σ_d u_od·v_kd`` accumulated over the features in order (so S equals the
reference's bit for bit), every column sorted by decreasing S with a stable merge sort (ties:
the lower index first), and the round-robin walk with its stopping rule and key-subsampled
last round. Rows of S are independent: ``prange`` over them; columns' sorts likewise.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel
from .dataset_quantization import _unit_rows


@parallel_kernel()
def _similarities(u, v_t, similarities):
    count, features = u.shape
    for o in prange(count):
        for k in range(v_t.shape[1]):
            similarities[o, k] = 0.0
        for d in range(features):  # every S[o, k] summed over d in order; the k loop vectorizes
            u_od = u[o, d]
            for k in range(v_t.shape[1]):
                similarities[o, k] += u_od * v_t[d, k]


@parallel_kernel()
def _column_orders(similarities, order):
    for k in prange(similarities.shape[1]):
        column = -similarities[:, k]  # descending; the stable sort keeps ties in index order
        order[:, k] = np.argsort(column, kind="mergesort")


@njit(cache=True, nogil=True)
def _greedy(similarities, order, keys, target, stop, stop_thresh, patience, indices, round_values):
    count, centroids = similarities.shape
    selected = np.zeros(count, dtype=np.bool_)
    round_of = np.zeros(count, dtype=np.int64)
    pointer = np.zeros(centroids, dtype=np.int64)
    picks = np.empty(centroids, dtype=np.int64)
    taken = 0
    threshold = 0.0
    rounds = 0
    while taken < target:
        rounds += 1
        count_picks = 0
        value = 0.0
        for k in range(centroids):
            while selected[order[pointer[k], k]]:
                pointer[k] += 1
            o = order[pointer[k], k]
            pointer[k] += 1
            if round_of[o] != rounds:
                round_of[o] = rounds
                picks[count_picks] = o
                count_picks += 1
            value += similarities[o, k] / centroids
        round_values[rounds - 1] = value
        if rounds == patience:
            threshold = value * stop_thresh
        if stop and value < threshold:
            break
        if taken + count_picks > target:  # the last round: the picks with the smallest keys
            keep = target - taken
            round_keys = np.empty(count_picks)
            for a in range(count_picks):
                round_keys[a] = np.float64(keys[picks[a]])
            chosen = np.sort(np.argsort(round_keys, kind="mergesort")[:keep])
            for a in range(keep):
                picks[a] = picks[chosen[a]]
            count_picks = keep
        for a in range(count_picks):
            selected[picks[a]] = True
            indices[taken] = picks[a]
            taken += 1
    return taken, rounds


def simcore_sampling_forward(z, c, keys, *, budget, stop=False, stop_thresh=0.95, patience=20):
    count, features = z.shape
    u = np.empty((count, features), dtype=np.float64)
    v = np.empty((c.shape[0], features), dtype=np.float64)
    _unit_rows(np.ascontiguousarray(z), u)
    _unit_rows(np.ascontiguousarray(c), v)
    similarities = np.empty((count, c.shape[0]), dtype=np.float64)
    _similarities(u, np.ascontiguousarray(v.T), similarities)
    order = np.empty((count, c.shape[0]), dtype=np.int64)
    _column_orders(similarities, order)
    target = min(int(budget), count)
    indices = np.empty(target, dtype=np.int64)
    round_values = np.empty(target + 1, dtype=np.float64)  # every taken round adds a sample
    taken, rounds = _greedy(
        similarities, order, np.ascontiguousarray(keys), target, bool(stop), float(stop_thresh),
        int(patience), indices, round_values,
    )  # fmt: skip
    return (indices[:taken].copy(), round_values[:rounds].astype(z.dtype)), None


IMPLS = {"simcore_sampling": Impl(simcore_sampling_forward)}
