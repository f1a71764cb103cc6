"""Median of means and winsorized mean of per-example gradients on CuPy.

Mirrors ``refimpl/optim/robust_gradient.py``: the group sums are one ``cupy.matmul`` with
the (K, m) one-hot assignment matrix, the median across groups ``cupy.median`` (mean of the
two middle values for even K, the reference's tie rule); the winsorized mean sorts each
column (``cupy.sort(axis=0)``) and clips with a fused elementwise kernel. On the host it
runs as plain NumPy.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def clip(values, lower, upper):
        return xp.minimum(xp.maximum(values, lower), upper)

    return SimpleNamespace(clip=clip)


kernels_for = kernel_set(_kernels)


def median_of_means_gradient_forward(grads, groups):
    xp = xp_of(grads)
    labels = groups.reshape(-1).astype(xp.int64)
    num_groups = int(labels.max()) + 1
    one_hot = (xp.arange(num_groups)[:, None] == labels[None, :]).astype(grads.dtype)
    means = xp.matmul(one_hot, grads) / one_hot.sum(axis=1, keepdims=True)
    return xp.median(means, axis=0).astype(grads.dtype), None


def winsorized_gradient_forward(grads, *, level):
    xp = xp_of(grads)
    m = grads.shape[0]
    ordered = xp.sort(grads, axis=0)
    clipped = kernels_for(grads).clip(grads, ordered[level][None, :], ordered[m - 1 - level][None, :])
    return clipped.mean(axis=0), None


IMPLS = {
    "median_of_means_gradient": Impl(median_of_means_gradient_forward),
    "winsorized_gradient": Impl(winsorized_gradient_forward),
}
