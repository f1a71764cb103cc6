"""DATM trajectory-matching loss on CuPy: fused kernels + sums.

Mirrors ``refimpl/data_selection/datm.py`` (``trajectory_matching_loss``): the squared
differences ``(θ̂ − θ*)²`` and ``(θ*_t − θ*)²`` in one fused kernel (float64), summed; the
backward is one fused kernel ``(2ḡ/‖θ*_t − θ*‖²)(θ̂ − θ*)``. ``unrolled_sgd_softmax_linear``
is reference-only (BLAS products).
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def squared_distances(student, target, start):
        difference = student.astype(xp.float64) - target
        travelled = start.astype(xp.float64) - target
        return difference * difference, travelled * travelled

    @fuse
    def scaled_difference(student, target, scale):
        return scale * (student.astype(xp.float64) - target)

    return SimpleNamespace(squared_distances=squared_distances, scaled_difference=scaled_difference)


kernels_for = kernel_set(_kernels)


def trajectory_matching_loss_forward(theta_student, theta_target, theta_start):
    xp = xp_of(theta_student)
    k = kernels_for(theta_student)
    numerator_terms, denominator_terms = k.squared_distances(theta_student, theta_target, theta_start)
    denominator = denominator_terms.sum()
    loss = xp.asarray(numerator_terms.sum() / denominator, dtype=theta_student.dtype)
    return loss, (theta_student, theta_target, denominator)


def trajectory_matching_loss_backward(residuals, g_loss):
    theta_student, theta_target, denominator = residuals
    k = kernels_for(theta_student)
    scale = 2 * g_loss.astype(denominator.dtype) / denominator
    return (k.scaled_difference(theta_student, theta_target, scale).astype(theta_student.dtype),)


IMPLS = {
    "trajectory_matching_loss": Impl(trajectory_matching_loss_forward, trajectory_matching_loss_backward)
}
