"""The f-weighted VSD loss: one fused Numba pass per sample, parallel over the batch.

Mirrors ``refimpl/losses/f_distill.py`` (``vsd_loss``; the weights ``f_divergence_weight``
are a (B,) preprocessing step and stay in the reference). Per sample: the mean distance
``mean_d |x − x0_teacher|``, then ``w = h/(distance + 1e-6)``, ``vsd_grad = (x0_fake −
x0_teacher)·w`` and ``difference = x − (x − vsd_grad)`` (formed like the official code, in
the input dtype), whose squares accumulate in float64. The backward is ``ḡ·difference/numel``.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel

NORMALIZATION_EPS = 1e-6


@parallel_kernel(fastmath={"reassoc"})
def _vsd_rows(x, fake, teacher, h, difference, squares):
    features = x.shape[1]
    for i in prange(x.shape[0]):
        distance = 0.0
        for d in range(features):
            distance += abs(np.float64(x[i, d]) - np.float64(teacher[i, d]))
        w = x.dtype.type(h[i] / (distance / features + NORMALIZATION_EPS))
        total = 0.0
        for d in range(features):
            vsd_grad = (fake[i, d] - teacher[i, d]) * w
            value = x[i, d] - (x[i, d] - vsd_grad)
            difference[i, d] = value
            total += np.float64(value) * value
        squares[i] = total


@parallel_kernel(fastmath={"reassoc"})
def _scale_rows(difference, scale, g_x):
    for i in prange(difference.shape[0]):
        for d in range(difference.shape[1]):
            g_x[i, d] = difference[i, d] * scale


def vsd_loss_forward(x, x0_fake, x0_teacher, h):
    shape = x.shape
    batch = shape[0]
    rows = [np.ascontiguousarray(a).reshape(batch, -1) for a in (x, x0_fake, x0_teacher)]
    difference = np.empty_like(rows[0])
    squares = np.empty(batch)
    _vsd_rows(*rows, np.ascontiguousarray(h, dtype=np.float64), difference, squares)
    loss = 0.5 * squares.sum() / max(difference.size, 1)
    return np.asarray(loss, dtype=x.dtype), (difference, shape)


def vsd_loss_backward(residuals, g_loss):
    difference, shape = residuals
    g_x = np.empty_like(difference)
    _scale_rows(difference, difference.dtype.type(float(g_loss) / difference.size), g_x)
    return (g_x.reshape(shape),)


IMPLS = {"vsd_loss": Impl(vsd_loss_forward, vsd_loss_backward)}
