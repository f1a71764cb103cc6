"""DATM trajectory-matching loss: DATM.py's normalized loss transcribed, hand values, the
invariance to a common scaling, the gradient formula."""

import numpy as np
import pytest

import refimpl
from refimpl.data_selection import trajectory_matching_loss

BACKENDS = ["numpy", "numba", "cupy[host]"]


def _backend(name):
    if name == "cupy[host]":
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


def _official(student, target, start):
    """NUS-HPC-AI-Lab/DATM distill/DATM.py: sum-MSEs each divided by num_params, then the ratio."""
    num_params = student.size
    param_loss = np.sum((student - target) ** 2) / num_params
    param_dist = np.sum((start - target) ** 2) / num_params
    return param_loss / param_dist


@pytest.mark.parametrize("backend", BACKENDS)
def test_trajectory_matching_loss_matches_datm_code(backend):
    rng = np.random.default_rng(0)
    start = rng.standard_normal(10_000)  # more than one Numba block
    target = start + 0.1 * rng.standard_normal(10_000)
    student = start + 0.7 * (target - start) + 0.01 * rng.standard_normal(10_000)
    got = _backend(backend).get("trajectory_matching_loss")(student, target, start)
    np.testing.assert_allclose(got, _official(student, target, start), rtol=1e-12)


def test_trajectory_matching_loss_hand_values():
    start, target = np.array([0.0, 0.0]), np.array([2.0, 0.0])
    assert float(trajectory_matching_loss(np.array([1.0, 1.0]), target, start)) == 0.5
    assert float(trajectory_matching_loss(start.copy(), target, start)) == 1.0  # no progress
    assert float(trajectory_matching_loss(target.copy(), target, start)) == 0.0  # at the target


@pytest.mark.parametrize("backend", BACKENDS)
def test_trajectory_matching_loss_is_invariant_to_a_common_scaling_of_the_differences(backend):
    rng = np.random.default_rng(1)
    start, target, student = (rng.standard_normal((3, 5)) for _ in range(3))
    loss = _backend(backend).get("trajectory_matching_loss")
    base = loss(student, target, start)
    scaled = loss(target + 37.0 * (student - target), target, target + 37.0 * (start - target))
    np.testing.assert_allclose(scaled, base, rtol=1e-12)
    # a shift of every checkpoint changes nothing either
    np.testing.assert_allclose(loss(student + 5.0, target + 5.0, start + 5.0), base, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_trajectory_matching_loss_gradient_is_twice_the_difference_over_the_expert_distance(backend):
    rng = np.random.default_rng(2)
    start, target, student = (rng.standard_normal(7) for _ in range(3))
    _, pullback = refimpl.vjp("trajectory_matching_loss", student, target, start, backend=_backend(backend))
    (g_student,) = pullback(np.array(3.0))
    expected = 3.0 * 2.0 * (student - target) / np.sum((start - target) ** 2)
    np.testing.assert_allclose(g_student, expected, rtol=1e-12)


def test_trajectory_matching_loss_float32_large_parameters_do_not_overflow():
    start = np.array([1e20, -1e20], dtype=np.float32)
    target = np.zeros(2, dtype=np.float32)
    student = np.array([5e19, 0.0], dtype=np.float32)
    np.testing.assert_allclose(trajectory_matching_loss(student, target, start), 0.125, rtol=1e-6)


def test_trajectory_matching_loss_refuses_equal_start_and_target():
    with pytest.raises(refimpl.InputError, match="theta_start"):
        trajectory_matching_loss(np.zeros(3), np.ones(3), np.ones(3))
