"""DATM trajectory-matching loss: Numba kernels, parallel over blocks of the parameter vector.

Mirrors ``refimpl/data_selection/datm.py`` (``trajectory_matching_loss``): each block sums
``(θ̂ − θ*)²`` and ``(θ*_t − θ*)²`` in float64 (elements widened with ``np.float64``); the
block sums are added in NumPy. The backward is one scaling pass,
``θ̄̂ = (2ḡ/‖θ*_t − θ*‖²)(θ̂ − θ*)``. ``unrolled_sgd_softmax_linear`` is reference-only
(BLAS products).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel

_BLOCK = 4096


@parallel_kernel(fastmath={"reassoc"})
def _block_sums(student, target, start, block, numerators, denominators):
    size = student.shape[0]
    for j in prange(numerators.shape[0]):
        numerator = 0.0
        denominator = 0.0
        for i in range(j * block, min((j + 1) * block, size)):
            t = np.float64(target[i])
            difference = np.float64(student[i]) - t
            travelled = np.float64(start[i]) - t
            numerator += difference * difference
            denominator += travelled * travelled
        numerators[j] = numerator
        denominators[j] = denominator


@parallel_kernel(fastmath={"reassoc"})
def _scaled_difference(student, target, scale, block, g_student):
    size = student.shape[0]
    for j in prange((size + block - 1) // block):
        for i in range(j * block, min((j + 1) * block, size)):
            g_student[i] = scale * (np.float64(student[i]) - np.float64(target[i]))


def trajectory_matching_loss_forward(theta_student, theta_target, theta_start):
    student, target, start = (
        np.ascontiguousarray(a).reshape(-1) for a in (theta_student, theta_target, theta_start)
    )
    blocks = (student.size + _BLOCK - 1) // _BLOCK
    numerators, denominators = np.empty(blocks), np.empty(blocks)
    _block_sums(student, target, start, _BLOCK, numerators, denominators)
    denominator = denominators.sum()
    loss = np.asarray(numerators.sum() / denominator, dtype=theta_student.dtype)
    return loss, (student, target, denominator, theta_student.shape)


def trajectory_matching_loss_backward(residuals, g_loss):
    student, target, denominator, shape = residuals
    scale = 2.0 * float(np.asarray(g_loss)) / denominator
    g_student = np.empty(student.shape, dtype=student.dtype)
    _scaled_difference(student, target, scale, _BLOCK, g_student)
    return (g_student.reshape(shape),)


IMPLS = {
    "trajectory_matching_loss": Impl(trajectory_matching_loss_forward, trajectory_matching_loss_backward)
}
