"""SimCore sampling on CuPy: the similarity matrix and its column sorts on the device, the walk on the host.

Mirrors ``refimpl/data_selection/simcore.py``: unit rows (the Dataset Quantization module's),
``S[o, k] = Σ_d u_od·v_kd`` accumulated over the features in order with separate multiply
and add kernels (no FMA contraction, no reduction tree: S equals the reference's bit for
bit), every column sorted by decreasing S with CuPy's stable sort (thrust's; NumPy's
``kind="stable"`` on the host), ties to the lower index. The round-robin walk is sequential
(one pointer per centroid, a few operations per pick): S and the orders go to the host once
and the reference's ``round_robin_greedy`` walks them.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from refimpl.authoring import Impl
from refimpl.data_selection.simcore import round_robin_greedy

from .._fuse import kernel_set, xp_of
from .dataset_quantization import _unit_rows


def _kernels(xp, fuse):
    @fuse
    def descending_key(similarities):
        return -similarities  # an exact negation: ascending sort of −S = descending S

    return SimpleNamespace(descending_key=descending_key)


kernels_for = kernel_set(_kernels)


def simcore_sampling_forward(z, c, keys, *, budget, stop=False, stop_thresh=0.95, patience=20):
    xp = xp_of(z)
    kernels = kernels_for(z)
    u, v = _unit_rows(z), _unit_rows(c)
    similarities = xp.zeros((u.shape[0], v.shape[0]))
    for d in range(u.shape[1]):
        similarities += u[:, d, None] * v[None, :, d]
    descending = kernels.descending_key(similarities)
    order = xp.argsort(descending, axis=0) if xp is not np else np.argsort(descending, axis=0, kind="stable")
    host = (lambda a: a.get()) if xp is not np else (lambda a: a)
    indices, round_values = round_robin_greedy(
        host(similarities), host(order), host(keys), budget, stop, float(stop_thresh), patience
    )
    return (
        xp.asarray(np.asarray(indices, dtype=np.int64)),
        xp.asarray(np.asarray(round_values, dtype=z.dtype)),
    ), None


IMPLS = {"simcore_sampling": Impl(simcore_sampling_forward)}
