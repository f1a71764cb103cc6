"""SaRA: threshold mask, sparse reparameterization and masked nuclear norm (values, FD, deviations)."""

import numpy as np
import pytest

import refimpl
from refimpl.adapters import masked_nuclear_norm, sara_sparse_reparam, sara_threshold_mask

BACKENDS = ["numpy", "numba", "cupy[host]"]


def _backend(name):
    if name == "cupy[host]":
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


# -- sara_threshold_mask --------------------------------------------------------------------------
def test_threshold_mask_selects_small_magnitudes_strictly():
    W0 = np.array([[0.001, -0.0019, 0.002], [-0.002, 0.5, -0.0]])
    M = sara_threshold_mask(W0, tau=2e-3)
    np.testing.assert_array_equal(M, [[True, True, False], [False, False, True]])
    assert M.dtype == bool and M.shape == W0.shape


def test_threshold_mask_keeps_the_shape_of_any_parameter():
    rng = np.random.default_rng(0)
    kernel = 1e-2 * rng.standard_normal((4, 3, 3, 3))
    M = sara_threshold_mask(kernel, tau=5e-3)
    np.testing.assert_array_equal(M, np.abs(kernel) < 5e-3)
    assert 0 < M.sum() < M.size  # both sides of τ are present


def test_threshold_mask_has_no_default_threshold():
    with pytest.raises(refimpl.InputError, match="missing a required argument: 'tau'"):
        sara_threshold_mask(np.ones((2, 2)))
    with pytest.raises(refimpl.InputError, match="'tau'"):
        sara_threshold_mask(np.ones((2, 2)), tau=0.0)


# -- sara_sparse_reparam --------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_theta_equal_to_W0_on_the_mask_reproduces_W0(backend):
    rng = np.random.default_rng(1)
    W0 = 5e-3 * rng.standard_normal((6, 7))
    M = sara_threshold_mask(W0, tau=2e-3)
    assert M.any() and not M.all()
    Theta = np.where(M, W0, 123.0)  # entries off M are ignored
    W = _backend(backend).get("sara_sparse_reparam")(W0, M, Theta)
    np.testing.assert_array_equal(W, W0)  # exactly: negative masked weights keep their sign


@pytest.mark.parametrize("backend", BACKENDS)
def test_sparse_reparam_value_and_gradient_by_hand(backend):
    W0 = np.array([[0.5, -0.001], [0.002, -2.0]])
    M = np.array([[False, True], [True, False]])
    Theta = np.array([[9.0, 0.25], [-0.75, 9.0]])
    W, pullback = refimpl.vjp("sara_sparse_reparam", W0, M, Theta, backend=_backend(backend))
    np.testing.assert_array_equal(W, [[0.5, 0.25], [-0.75, -2.0]])
    (g_Theta,) = pullback(np.array([[1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_array_equal(g_Theta, [[0.0, 2.0], [3.0, 0.0]])  # the cotangent on M only


def test_dense_theta_matches_the_official_flat_parameter_layout():
    # sjtuplayer/SaRA stores θ = W0[M] (row-major order of the mask) and writes param[mask] = θ
    rng = np.random.default_rng(2)
    W0 = 5e-3 * rng.standard_normal((3, 2, 4))
    M = np.abs(W0) < 3e-3
    theta_flat = rng.standard_normal(int(M.sum()))
    official = W0.copy()
    official[M] = theta_flat
    Theta = W0.copy()
    Theta[M] = theta_flat
    np.testing.assert_array_equal(sara_sparse_reparam(W0, M, Theta), official)


def test_official_abs_is_a_recorded_deviation_not_reproduced():
    (deviation,) = sara_sparse_reparam.deviations
    assert deviation.name == "sara-official-abs-first-forward" and deviation.kind == "bug"
    W0, M, Theta = deviation.example.args
    np.testing.assert_array_equal(sara_sparse_reparam(W0, M, Theta), W0)
    assert (np.where(M, np.abs(Theta), W0) != W0).any()  # the official start differs


# -- masked_nuclear_norm --------------------------------------------------------------------------
def test_nuclear_norm_known_values():
    Theta = np.array([[3.0, 7.0, 0.5], [1.0, -4.0, 2.0], [6.0, 1.0, -0.5]])
    # a diagonal mask: ‖diag(3, −4, −0.5)‖_* = 7.5, subgradient sign(θ_ii)
    value, pullback = refimpl.vjp("masked_nuclear_norm", Theta, np.eye(3, dtype=bool))
    np.testing.assert_allclose(value, 7.5, rtol=1e-14)
    (g_Theta,) = pullback(np.array(2.0))
    np.testing.assert_allclose(g_Theta, np.diag([2.0, -2.0, -2.0]), atol=1e-14)
    # 2 × orthonormal columns, full mask: σ = (2, 2), norm 4, U Vᵀ = Θ/2 despite the repeated σ
    Q, _ = np.linalg.qr(np.random.default_rng(3).standard_normal((4, 2)))
    value, pullback = refimpl.vjp("masked_nuclear_norm", 2.0 * Q, np.ones((4, 2), dtype=bool))
    np.testing.assert_allclose(value, 4.0, rtol=1e-14)
    np.testing.assert_allclose(pullback(np.array(1.0))[0], Q, atol=1e-14)


def test_nuclear_norm_acts_on_the_masked_values_only():
    rng = np.random.default_rng(4)
    Theta = rng.standard_normal((5, 4))
    M = rng.random((5, 4)) < 0.6
    changed = np.where(M, Theta, 100.0 * rng.standard_normal((5, 4)))
    assert masked_nuclear_norm(Theta, M) == masked_nuclear_norm(changed, M)
    expected = np.linalg.svd(Theta * M, compute_uv=False).sum()
    np.testing.assert_allclose(masked_nuclear_norm(Theta, M), expected, rtol=1e-14)


@pytest.mark.parametrize("shape", [(5, 4), (3, 6), (4, 4)])
def test_nuclear_norm_gradient_matches_central_differences_at_full_rank(shape):
    rng = np.random.default_rng(5)
    M = rng.random(shape) < 0.8
    Theta = rng.standard_normal(shape)
    singular_values = np.linalg.svd(Theta * M, compute_uv=False)
    assert singular_values[-1] > 0.05  # full rank, away from the kink
    value, pullback = refimpl.vjp("masked_nuclear_norm", Theta, M)
    (g_Theta,) = pullback(np.array(1.0))
    step = 1e-6
    numeric = np.zeros(shape)
    for index in np.ndindex(*shape):
        plus, minus = Theta.copy(), Theta.copy()
        plus[index] += step
        minus[index] -= step
        numeric[index] = (masked_nuclear_norm(plus, M) - masked_nuclear_norm(minus, M)) / (2 * step)
    np.testing.assert_allclose(g_Theta, numeric, rtol=1e-7, atol=1e-8)
    assert np.all(g_Theta[~M] == 0)


def test_never_stepped_nuclear_norm_is_a_recorded_deviation():
    (deviation,) = masked_nuclear_norm.deviations
    assert deviation.name == "sara-official-nuclear-norm-never-stepped" and deviation.kind == "bug"
    Theta, M = deviation.example.args
    _, pullback = refimpl.vjp("masked_nuclear_norm", Theta, M)
    np.testing.assert_allclose(pullback(np.array(1.0))[0], [[1.0, 0.0], [0.0, -1.0]], atol=1e-14)
