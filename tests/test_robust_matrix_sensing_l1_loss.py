"""ℓ1 matrix-sensing loss: the loop form, the sub-gradient (A_i + A_iᵀ)U with sign(0) = 0, finite
differences away from the kinks, hand values."""

import numpy as np

import refimpl
from refimpl.solvers import robust_matrix_sensing_l1_loss


def _problem(seed, m=9, d=4, r=3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((d, r)), rng.standard_normal((m, d, d)), rng.standard_normal(m) * 3


def test_loss_equals_the_loop_over_measurements():
    U, A, y = _problem(0)
    loop = np.mean([abs(np.trace(a.T @ U @ U.T) - yi) for a, yi in zip(A, y, strict=True)])
    np.testing.assert_allclose(robust_matrix_sensing_l1_loss(U, A, y), loop, rtol=1e-14)


def test_subgradient_equals_the_loop_form_with_nonsymmetric_matrices():
    U, A, y = _problem(1)
    loss, pullback = refimpl.vjp(robust_matrix_sensing_l1_loss, U, A, y)
    (g_u,) = pullback(np.array(2.0))
    loop = sum(np.sign(np.sum(a * (U @ U.T)) - yi) * (a + a.T) @ U for a, yi in zip(A, y, strict=True))
    np.testing.assert_allclose(g_u, 2.0 * loop / len(y), rtol=1e-13)
    # 2 A_i U (the symmetric-A shortcut) is wrong here
    wrong = sum(np.sign(np.sum(a * (U @ U.T)) - yi) * 2 * a @ U for a, yi in zip(A, y, strict=True))
    assert not np.allclose(g_u, 2.0 * wrong / len(y), rtol=1e-3)


def test_subgradient_matches_central_differences_away_from_kinks():
    U, A, y = _problem(2)
    _, pullback = refimpl.vjp(robust_matrix_sensing_l1_loss, U, A, y)
    (g_u,) = pullback(np.array(1.0))
    h = 1e-6
    numeric = np.zeros_like(U)
    for index in np.ndindex(U.shape):
        e = np.zeros_like(U)
        e[index] = h
        numeric[index] = (
            robust_matrix_sensing_l1_loss(U + e, A, y) - robust_matrix_sensing_l1_loss(U - e, A, y)
        ) / (2 * h)
    np.testing.assert_allclose(g_u, numeric, rtol=1e-7, atol=1e-9)


def test_exactly_fitted_measurements_contribute_zero_to_the_subgradient():
    U = np.array([[1.0, 0.0], [2.0, 1.0]])
    A = np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 0.0]], [[2.0, -1.0], [1.0, 0.0]]])
    X = U @ U.T
    y = np.array([np.sum(a * X) for a in A]) + np.array([0.0, -3.0, 0.0])  # r = (0, 3, 0)
    loss, pullback = refimpl.vjp(robust_matrix_sensing_l1_loss, U, A, y)
    assert float(loss) == 1.0
    (g_u,) = pullback(np.array(1.0))
    np.testing.assert_array_equal(g_u, (A[1] + A[1].T) @ U / 3)  # only the measurement with r = 3


def test_hand_value():
    U = np.array([[1.0], [2.0]])
    A = np.stack([np.eye(2), np.array([[0.0, 1.0], [0.0, 0.0]])])
    loss, pullback = refimpl.vjp(robust_matrix_sensing_l1_loss, U, A, np.array([4.0, 0.0]))
    assert float(loss) == 1.5  # r = (5 − 4, 2 − 0)
    np.testing.assert_allclose(pullback(np.array(1.0))[0], [[2.0], [2.5]], rtol=1e-15)


def test_outliers_change_the_loss_by_their_count_times_their_shift():
    # at the truth, each outlier s_i contributes |s_i|/m and the sub-gradient only sees its sign
    rng = np.random.default_rng(3)
    u_star, A = rng.standard_normal((3, 1)), rng.standard_normal((20, 3, 3))
    y = A.reshape(20, 9) @ (u_star @ u_star.T).ravel()
    y_corrupt = y.copy()
    y_corrupt[:4] += 1e3
    np.testing.assert_allclose(robust_matrix_sensing_l1_loss(u_star, A, y_corrupt), 4 * 1e3 / 20, rtol=1e-10)
    _, pullback = refimpl.vjp(robust_matrix_sensing_l1_loss, u_star, A, y_corrupt)
    _, pullback_far = refimpl.vjp(
        robust_matrix_sensing_l1_loss, u_star, A, y_corrupt + np.r_[np.full(4, 1e6), np.zeros(16)]
    )
    np.testing.assert_allclose(pullback(np.array(1.0))[0], pullback_far(np.array(1.0))[0], rtol=1e-12)
