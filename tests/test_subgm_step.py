"""SubGM: one step by hand, the step-size rules, and recovery of a rank-1 PSD matrix from a small
initialization with an over-parameterized factor, without and with outliers (the loop lives here)."""

import numpy as np
import pytest

import refimpl
from refimpl.solvers import robust_matrix_sensing_l1_loss, subgm_step


def _sensing(seed, d=6, m=300, outliers=0.0):
    rng = np.random.default_rng(seed)
    u_star = rng.standard_normal((d, 1))
    u_star /= np.linalg.norm(u_star)
    A = rng.standard_normal((m, d, d))
    A = (A + A.transpose(0, 2, 1)) / 2
    y = A.reshape(m, d * d) @ (u_star @ u_star.T).ravel()
    corrupt = rng.random(m) < outliers
    y[corrupt] += 10 * rng.standard_normal(int(corrupt.sum()))
    return rng, u_star @ u_star.T, A, y


def test_step_is_u_minus_eta_times_the_loss_subgradient():
    rng = np.random.default_rng(0)
    U, A, y = rng.standard_normal((4, 2)), rng.standard_normal((7, 4, 4)), rng.standard_normal(7)
    loss, pullback = refimpl.vjp(robust_matrix_sensing_l1_loss, U, A, y)
    (g,) = pullback(np.array(1.0))
    U_new, loss_step = subgm_step(U, A, y, eta0=0.3, rho=0.9, t=5, normalization="none")
    np.testing.assert_allclose(U_new, U - 0.3 * 0.9**5 * g, rtol=1e-14)
    assert float(loss_step) == float(loss)
    U_norm, _ = subgm_step(U, A, y, eta0=0.3, rho=0.9, t=5, normalization="frobenius")
    np.testing.assert_allclose(U_norm, U - 0.3 * 0.9**5 * g / np.linalg.norm(g), rtol=1e-14)
    np.testing.assert_allclose(np.linalg.norm(U_norm - U), 0.3 * 0.9**5, rtol=1e-14)


def test_hand_values():
    U, A, y = np.array([[1.0]]), np.ones((1, 1, 1)), np.array([4.0])
    U_new, loss = subgm_step(U, A, y, eta0=0.5, rho=0.5, t=1, normalization="none")
    assert U_new[0, 0] == 1.5 and float(loss) == 3.0
    U_new, _ = subgm_step(U, A, y, eta0=0.5, rho=0.5, t=1, normalization="frobenius")
    assert U_new[0, 0] == 1.25


def test_zero_subgradient_takes_no_step_even_normalized():
    U = np.array([[1.0, 0.0], [2.0, 1.0]])
    A = np.stack([np.eye(2), np.array([[0.0, 1.0], [0.0, 0.0]])])
    y = np.array([np.sum(a * (U @ U.T)) for a in A])
    with np.errstate(all="raise"):
        U_new, loss = subgm_step(U, A, y, eta0=1.0, rho=0.5, t=0, normalization="frobenius")
    np.testing.assert_array_equal(U_new, U)
    assert float(loss) == 0.0


@pytest.mark.parametrize(
    ("outliers", "normalization", "eta0", "rho"),
    [
        (0.0, "none", 0.5, 0.98),
        (0.2, "none", 0.5, 0.98),
        (0.0, "frobenius", 0.1, 0.97),
        (0.2, "frobenius", 0.1, 0.97),
    ],
)
def test_small_initialization_recovers_the_rank_one_matrix_with_an_overparameterized_factor(
    outliers, normalization, eta0, rho
):
    rng, m_star, A, y = _sensing(0, outliers=outliers)
    U = 1e-3 * rng.standard_normal((6, 3))  # r' = 3 > r = 1, U_0 = αB
    losses = []
    for t in range(400):
        U, loss = subgm_step(U, A, y, eta0=eta0, rho=rho, t=t, normalization=normalization)
        losses.append(float(loss))
    assert np.linalg.norm(U @ U.T - m_star) < 2e-3  # the ground truth is the direct solution
    # with outliers the truth is still the minimizer: the final loss is the outliers' mean |s_i|
    truth_loss = float(robust_matrix_sensing_l1_loss(_top(m_star), A, y))
    assert losses[-1] == pytest.approx(truth_loss, abs=5e-3)


def _top(m):
    values, vectors = np.linalg.eigh(m)
    return vectors[:, -1:] * np.sqrt(values[-1])


@pytest.mark.parametrize("bad", [{"rho": 0.0}, {"rho": 1.5}, {"eta0": 0.0}, {"t": -1}])
def test_bad_step_sizes_are_refused(bad):
    kwargs = {"eta0": 0.1, "rho": 0.9, "t": 0, "normalization": "none", **bad}
    with pytest.raises(refimpl.InputError):
        subgm_step(np.ones((2, 1)), np.ones((3, 2, 2)), np.ones(3), **kwargs)


def test_normalization_is_required_while_pending():
    with pytest.raises(refimpl.InputError, match="normalization"):
        subgm_step(np.ones((2, 1)), np.ones((3, 2, 2)), np.ones(3), eta0=0.1, rho=0.9, t=0)
