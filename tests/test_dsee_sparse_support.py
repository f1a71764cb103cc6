"""DSEE sparse support: one round by hand, the official GreBsmo loop, the tie rule, span invariance."""

import numpy as np
import pytest

import refimpl
from refimpl.adapters import dsee_sparse_support


def _official_grebsmo(torch, W, V0, num_sparse, rounds):
    """run_glue.py's apply_sparse block (grebsmo) transcribed with torch in float64: S reset each
    round, 2 alternations of QR / projection / 0.01 threshold, 5 rows of qr(E)'s R appended,
    then kthvalue(|S|, numel − N + 1) and |S| >= q."""
    Q_weight = torch.from_numpy(W)
    V_Q = torch.from_numpy(V0)
    for _ in range(rounds):
        S_Q = torch.zeros_like(Q_weight)
        for _ in range(2):
            U_Q = torch.linalg.qr((Q_weight - S_Q) @ V_Q.T)[0]
            V_Q = U_Q.T @ (Q_weight - S_Q)
            S_Q = Q_weight - U_Q @ V_Q
            S_Q[S_Q.abs() < 0.01] = 0
        E_Q = Q_weight - U_Q @ V_Q - S_Q
        V_Q = torch.cat([V_Q, torch.linalg.qr(E_Q)[1][:5]], 0)
    q, _ = torch.kthvalue(S_Q.abs().view(-1), S_Q.numel() - num_sparse + 1)
    return (S_Q.abs() >= q).numpy(), S_Q.numpy()


def test_dsee_sparse_support_one_round_by_hand():
    # V0 = e1: U = ±e1, U V = [[3, 0, 0], 0, 0] and S = diag(0, ½, ¼)
    W = np.diag([3.0, 0.5, 0.25])
    mask, sparse = dsee_sparse_support(W, np.array([[1.0, 0.0, 0.0]]), num_sparse=1, rounds=1)
    np.testing.assert_allclose(sparse, np.diag([0.0, 0.5, 0.25]), atol=1e-15)
    np.testing.assert_array_equal(mask, np.diag([False, True, False]))
    two, _ = dsee_sparse_support(W, np.array([[1.0, 0.0, 0.0]]), num_sparse=2, rounds=1)
    np.testing.assert_array_equal(two, np.diag([False, True, True]))


def test_dsee_sparse_support_small_residuals_are_thresholded():
    # 0.004 < 0.01 is set to 0 in S; with threshold 0.001 it is kept
    W = np.diag([3.0, 0.5, 0.004])
    V0 = np.array([[1.0, 0.0, 0.0]])
    _, sparse = dsee_sparse_support(W, V0, num_sparse=1, rounds=1)
    assert sparse[2, 2] == 0.0
    _, sparse_low = dsee_sparse_support(W, V0, num_sparse=1, rounds=1, threshold=0.001)
    np.testing.assert_allclose(sparse_low[2, 2], 0.004, rtol=1e-12)


def test_dsee_sparse_support_matches_the_official_grebsmo_loop():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    W = rng.standard_normal((48, 40)) * 0.05
    V0 = rng.standard_normal((1, 40))
    for rounds in (1, 2, 4):
        mask, sparse = dsee_sparse_support(W, V0, num_sparse=64, rounds=rounds)
        official_mask, official_sparse = _official_grebsmo(torch, W, V0, 64, rounds)
        np.testing.assert_allclose(sparse, official_sparse, atol=1e-12)
        np.testing.assert_array_equal(mask, official_mask)
        assert mask.sum() == 64  # continuous values: no tie at the threshold


def test_dsee_sparse_support_ties_keep_all_or_first():
    W = np.diag([3.0, 0.5, 0.5])
    V0 = np.array([[1.0, 0.0, 0.0]])
    keep_all, _ = dsee_sparse_support(W, V0, num_sparse=1, rounds=1)
    first, _ = dsee_sparse_support(W, V0, num_sparse=1, rounds=1, ties="first")
    np.testing.assert_array_equal(keep_all, np.diag([False, True, True]))  # more than N: official
    np.testing.assert_array_equal(first, np.diag([False, True, False]))  # exactly N, lowest index


def test_dsee_sparse_support_saturated_rank_keeps_everything_under_keep_all():
    # once V spans the row space, U V = W, S = 0, q = 0 and |S| >= 0 everywhere (official behaviour)
    rng = np.random.default_rng(1)
    mask, sparse = dsee_sparse_support(
        rng.standard_normal((4, 3)), rng.standard_normal((1, 3)), num_sparse=2, rounds=3
    )
    assert np.all(sparse == 0.0) and mask.all()
    first, _ = dsee_sparse_support(
        rng.standard_normal((4, 3)), rng.standard_normal((1, 3)), num_sparse=2, rounds=3, ties="first"
    )
    np.testing.assert_array_equal(first.ravel(), [True, True] + [False] * 10)


def test_dsee_sparse_support_depends_only_on_the_span_of_v0():
    rng = np.random.default_rng(2)
    W = rng.standard_normal((20, 16)) * 0.1
    V0 = rng.standard_normal((2, 16))
    mixed = np.array([[2.0, -1.0], [0.5, 3.0]]) @ V0  # same row span
    mask, sparse = dsee_sparse_support(W, V0, num_sparse=30, rounds=2)
    mask_mixed, sparse_mixed = dsee_sparse_support(W, mixed, num_sparse=30, rounds=2)
    np.testing.assert_allclose(sparse_mixed, sparse, atol=1e-12)
    np.testing.assert_array_equal(mask_mixed, mask)


def test_dsee_sparse_support_refuses_more_entries_than_the_matrix_has():
    with pytest.raises(refimpl.InputError, match="at most"):
        dsee_sparse_support(np.ones((2, 3)), np.ones((1, 3)), num_sparse=7)
