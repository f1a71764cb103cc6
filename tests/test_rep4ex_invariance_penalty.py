"""Rep4Ex invariance penalty: zero for affine Φ, affine invariance, HSIC/MMD identity, the VJP's structure."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.regularizers import hsic, rep4ex_invariance_penalty

KW = {"sigma_residual": 1.0, "sigma_action": 1.5}


@pytest.fixture
def data():
    rng = np.random.default_rng(181)
    A = rng.standard_normal((10, 2))
    Phi = A @ rng.standard_normal((2, 3)) + np.sin(2 * A[:, :1]) + 0.1 * rng.standard_normal((10, 3))
    return Phi, A


def _gaussian(Z, sigma):
    D = ((Z[:, None, :] - Z[None, :, :]) ** 2).sum(-1)
    return np.exp(-D / (2 * sigma**2))


def test_penalty_hand_computed_value():
    # Φ = [0, 1, 0] on a = [0, 1, 2]: slope 0, R = [−1, 2, −1]/3, HKH = 2(1 − e^{−1/2}) r rᵀ
    r = np.array([-1.0, 2.0, -1.0]) / 3
    L = np.exp(-0.5 * (np.arange(3)[:, None] - np.arange(3)[None, :]) ** 2)
    trace = 2 * (1 - math.exp(-0.5)) * r @ L @ r
    Phi, A = np.array([[0.0], [1.0], [0.0]]), np.array([[0.0], [1.0], [2.0]])
    kw = {"sigma_residual": 1.0, "sigma_action": 1.0}
    np.testing.assert_allclose(
        rep4ex_invariance_penalty(Phi, A, **kw, dependence="hsic"), trace / 4, rtol=1e-13
    )
    np.testing.assert_allclose(
        rep4ex_invariance_penalty(Phi, A, **kw, dependence="mmd"), trace / 9, rtol=1e-13
    )


def test_penalty_is_the_hsic_of_the_ols_residual(data):
    Phi, A = data
    A_tilde = np.column_stack([np.ones(len(A)), A])
    beta, *_ = np.linalg.lstsq(A_tilde, Phi, rcond=None)  # the paper's OLS fit with intercept
    R = Phi - A_tilde @ beta
    expected = hsic(_gaussian(R, 1.0), _gaussian(A, 1.5))
    np.testing.assert_allclose(
        rep4ex_invariance_penalty(Phi, A, **KW, dependence="hsic"), expected, rtol=1e-12
    )


def test_mmd_choice_is_the_mmd_between_joint_and_product_of_marginals(data):
    Phi, A = data
    n = len(A)
    A_tilde = np.column_stack([np.ones(n), A])
    R = Phi - A_tilde @ np.linalg.lstsq(A_tilde, Phi, rcond=None)[0]
    K, L = _gaussian(R, 1.0), _gaussian(A, 1.5)
    # ‖μ_joint − μ_R ⊗ μ_A‖² with the product kernel, pair by pair (no trace identity used)
    joint = np.mean(K * L)
    cross = np.mean(K[:, :, None] * L[:, None, :])  # (1/n³) Σ_ijl K_ij L_il
    product = K.mean() * L.mean()
    mmd2 = joint - 2 * cross + product
    assert mmd2 > 1e-4
    np.testing.assert_allclose(rep4ex_invariance_penalty(Phi, A, **KW, dependence="mmd"), mmd2, rtol=1e-12)
    np.testing.assert_allclose(
        rep4ex_invariance_penalty(Phi, A, **KW, dependence="hsic"), mmd2 * n**2 / (n - 1) ** 2, rtol=1e-12
    )


def test_penalty_is_zero_for_affine_phi_and_invariant_to_adding_affine_terms(data):
    Phi, A = data
    rng = np.random.default_rng(1)
    affine = 2.0 + A @ rng.standard_normal((2, 3))
    np.testing.assert_allclose(rep4ex_invariance_penalty(affine, A, **KW, dependence="hsic"), 0.0, atol=1e-14)
    base = float(rep4ex_invariance_penalty(Phi, A, **KW, dependence="hsic"))
    assert base > 1e-3
    np.testing.assert_allclose(
        rep4ex_invariance_penalty(Phi + affine, A, **KW, dependence="hsic"), base, rtol=1e-10
    )


def test_penalty_handles_collinear_actions(data):
    Phi, A = data
    collinear = np.column_stack([A, 3 * A[:, 0] - A[:, 1], np.ones(len(A))])  # rank-deficient [1, A]
    A_tilde = np.column_stack([np.ones(len(A)), A])  # spans the same columns: the same residual
    R = Phi - A_tilde @ np.linalg.solve(A_tilde.T @ A_tilde, A_tilde.T @ Phi)
    expected = hsic(_gaussian(R, 1.0), _gaussian(collinear, 1.5))
    np.testing.assert_allclose(
        rep4ex_invariance_penalty(Phi, collinear, **KW, dependence="hsic"), expected, rtol=1e-10
    )


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_gradient_is_orthogonal_to_the_actions(data, backend):
    Phi, A = data
    _, pullback = refimpl.vjp("rep4ex_invariance_penalty", Phi, A, **KW, dependence="mmd", backend=backend)
    (g_Phi,) = pullback(np.array(1.0))
    A_tilde = np.column_stack([np.ones(len(A)), A])
    np.testing.assert_allclose(A_tilde.T @ g_Phi, 0.0, atol=1e-13)  # Φ̄ = (I − P_Ã) R̄
    assert np.abs(g_Phi).max() > 1e-4


def test_dependence_measure_is_a_required_choice(data):
    Phi, A = data
    with pytest.raises(refimpl.InputError):
        rep4ex_invariance_penalty(Phi, A, **KW)
    with pytest.raises(refimpl.InputError, match="dependence"):
        rep4ex_invariance_penalty(Phi, A, **KW, dependence="coco")
