"""AltMin half-step: each row against a dense least-squares solve, optimality over U, duplicates
as weights, the minimum-norm solution, and a full alternating loop completing a low-rank matrix."""

import numpy as np
import pytest

import refimpl
from refimpl.solvers import altmin_row_update


def _objective(M, W, U, V, lam=0.0):  # noqa: N803
    error = np.where(W > 0, M - U @ V.T, 0)
    return np.sum(W * error**2) + lam * np.sum(U**2)


def test_rows_match_lstsq_on_the_observed_entries():
    rng = np.random.default_rng(0)
    M, V = rng.standard_normal((5, 9)), rng.standard_normal((9, 3))
    mask = rng.random((5, 9)) < 0.6
    mask[:, :3] = True
    U, objective = altmin_row_update(M, mask.astype(float), V)
    for i in range(5):
        direct = np.linalg.lstsq(V[mask[i]], M[i, mask[i]], rcond=None)[0]
        np.testing.assert_allclose(U[i], direct, rtol=1e-12)
    np.testing.assert_allclose(objective, _objective(M, mask.astype(float), U, V), rtol=1e-12)


def test_the_half_step_minimizes_the_objective_over_U():
    rng = np.random.default_rng(1)
    M, V, W = (
        rng.standard_normal((4, 7)),
        rng.standard_normal((7, 2)),
        rng.integers(0, 3, size=(4, 7)).astype(float),
    )
    W[:, :2] = 1.0
    for lam in (0.0, 0.7):
        U, objective = altmin_row_update(M, W, V, lam=lam)
        for _ in range(20):
            perturbed = U + 1e-3 * rng.standard_normal(U.shape)
            assert _objective(M, W, perturbed, V, lam) > float(objective)
        # ridge normal equations per row
        for i in range(4):
            gram = (V * W[i][:, None]).T @ V + lam * np.eye(2)
            np.testing.assert_allclose(U[i], np.linalg.solve(gram, (V * W[i][:, None]).T @ M[i]), rtol=1e-11)


def test_duplicates_in_omega_count_as_repeated_rows():
    rng = np.random.default_rng(2)
    M, V = rng.standard_normal((1, 5)), rng.standard_normal((5, 2))
    omega = [0, 1, 1, 3, 4, 4, 4]  # sampled with replacement
    W = np.bincount(omega, minlength=5).astype(float)[None]
    U, _ = altmin_row_update(M, W, V)
    direct = np.linalg.lstsq(V[omega], M[0, omega], rcond=None)[0]
    np.testing.assert_allclose(U[0], direct, rtol=1e-12)
    mask_only, _ = altmin_row_update(M, (W > 0).astype(float), V)
    assert not np.allclose(mask_only, U)  # the multiplicities matter


def test_underdetermined_rows_get_the_minimum_norm_solution_and_empty_rows_zero():
    V = np.array([[1.0, 2.0], [3.0, 4.0]])
    M = np.array([[5.0, 7.0], [5.0, 7.0]])
    W = np.array([[1.0, 0.0], [0.0, 0.0]])
    U, _ = altmin_row_update(M, W, V)
    np.testing.assert_allclose(U[0], np.linalg.pinv(V[:1]) @ [5.0], rtol=1e-13)
    np.testing.assert_array_equal(U[1], [0.0, 0.0])


def test_unobserved_values_are_never_read():
    rng = np.random.default_rng(3)
    M, V = rng.standard_normal((3, 6)), rng.standard_normal((6, 2))
    W = np.ones((3, 6))
    W[:, 4:] = 0
    poisoned = M.copy()
    poisoned[:, 4:] = 1e30
    np.testing.assert_array_equal(altmin_row_update(poisoned, W, V)[0], altmin_row_update(M, W, V)[0])


def test_alternating_loop_completes_a_low_rank_matrix():
    rng = np.random.default_rng(4)
    n, m, k = 30, 25, 2
    truth = rng.standard_normal((n, k)) @ rng.standard_normal((k, m))
    W = (rng.random((n, m)) < 0.5).astype(float)
    V = rng.standard_normal((m, k))
    for _ in range(200):
        U, _ = altmin_row_update(truth, W, V)
        V, _ = altmin_row_update(truth.T, W.T, U)  # the V half-step is the U step on Mᵀ
    np.testing.assert_allclose(U @ V.T, truth, atol=1e-6)  # the unobserved entries too


def test_negative_weights_are_refused():
    with pytest.raises(refimpl.InputError, match="'W'"):
        altmin_row_update(np.ones((2, 2)), -np.ones((2, 2)), np.ones((2, 1)))
