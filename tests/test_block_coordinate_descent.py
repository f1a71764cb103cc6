"""Greedy block coordinate descent: progress guarantees, GS-q against GSL, exhaustive searches,
the official ℓ1 scores, the proximal step's optimality, and the tree solve against a dense solve."""

import itertools

import numpy as np
import pytest

import refimpl
from refimpl.solvers import (
    bcd_block_selection,
    bcd_prox_block_update,
    tree_block_newton_solve,
    variable_block_selection,
)
from refimpl_conformance.cases.solvers.block_coordinate_descent import random_forest_spd


def _least_squares(seed, n=8, m=12):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, n)) * rng.uniform(0.3, 3.0, size=n)
    y = rng.standard_normal(m)
    x = rng.standard_normal(n)
    return a, y, x


def _f(a, y, x):
    residual = a @ x - y
    return 0.5 * residual @ residual


def _grad(a, y, x):
    return a.T @ (a @ x - y)


def _block_lipschitz(a, blocks):
    return np.array([np.linalg.eigvalsh(a[:, b].T @ a[:, b])[-1] for b in blocks])


BLOCKS = np.array([[0, 5], [1, 2], [7, 3], [4, 6]])


def test_gs_scores_and_the_official_l1_scores_by_hand():
    grad, blocks = np.array([3.0, 0.0, 2.0, 2.0]), np.array([[0, 1], [2, 3]])
    block, scores = bcd_block_selection(grad, blocks, rule="GS")
    assert int(block) == 0
    np.testing.assert_allclose(scores, [3.0, np.sqrt(8.0)], rtol=1e-15)
    block, scores = bcd_block_selection(grad, blocks, rule="GS", block_score_norm="l1")
    assert int(block) == 1
    np.testing.assert_array_equal(scores, [3.0, 4.0])
    # GSL: ‖g_b‖²/L_b = 9/1, 8/1.5 (paper) against Σ|g|/√L_b = 3, 4/√1.5 (official)
    lipschitz = np.array([1.0, 1.5])
    block, scores = bcd_block_selection(grad, blocks, rule="GSL", block_lipschitz=lipschitz)
    assert int(block) == 0 and np.allclose(scores, [9.0, 8.0 / 1.5], rtol=1e-15)
    block, scores = bcd_block_selection(
        grad, blocks, rule="GSL", block_lipschitz=lipschitz, block_score_norm="l1"
    )
    assert int(block) == 1 and np.allclose(scores, [3.0, 4.0 / np.sqrt(1.5)], rtol=1e-15)


def test_l1_and_l2_scores_pick_the_same_one_coordinate_block():
    a, y, x = _least_squares(0)
    grad, singles = _grad(a, y, x), np.arange(8)[:, None]
    lipschitz = (a * a).sum(axis=0)
    for rule in ("GS", "GSL"):
        b2, s2 = bcd_block_selection(grad, singles, rule=rule, block_lipschitz=lipschitz)
        b1, s1 = bcd_block_selection(
            grad, singles, rule=rule, block_lipschitz=lipschitz, block_score_norm="l1"
        )
        assert int(b1) == int(b2)
        np.testing.assert_allclose(s1**2 if rule == "GSL" else s1, s2, rtol=1e-14)


@pytest.mark.parametrize("seed", range(5))
def test_one_gsl_step_decreases_f_by_at_least_the_guarantee(seed):
    a, y, x = _least_squares(seed)
    grad = _grad(a, y, x)
    lipschitz = _block_lipschitz(a, BLOCKS)
    block, scores = bcd_block_selection(grad, BLOCKS, rule="GSL", block_lipschitz=lipschitz)
    chosen = BLOCKS[int(block)]
    new_x = bcd_prox_block_update(x, grad, chosen, lipschitz=float(lipschitz[int(block)]), lam=0.0)
    decrease = _f(a, y, x) - _f(a, y, new_x)
    guarantee = grad[chosen] @ grad[chosen] / (2 * lipschitz[int(block)])
    assert guarantee == pytest.approx(scores[int(block)] / 2, rel=1e-14)
    assert decrease >= guarantee * (1 - 1e-12)
    # and GSL's block has the largest guarantee: no other block's gradient step promises more
    for other, lb in zip(BLOCKS, lipschitz, strict=True):
        assert grad[other] @ grad[other] / (2 * lb) <= guarantee * (1 + 1e-14)


@pytest.mark.parametrize("seed", range(5))
def test_gs_q_with_lambda_zero_equals_gsl(seed):
    a, y, x = _least_squares(seed)
    grad = _grad(a, y, x)
    lipschitz = _block_lipschitz(a, BLOCKS)
    gsl_block, gsl_scores = bcd_block_selection(grad, BLOCKS, rule="GSL", block_lipschitz=lipschitz)
    gsq_block, gsq_scores = bcd_block_selection(
        grad, BLOCKS, rule="GS-q", block_lipschitz=lipschitz, x=x, lam=0.0
    )
    assert int(gsq_block) == int(gsl_block)
    np.testing.assert_allclose(gsq_scores, gsl_scores / 2, rtol=1e-13)


@pytest.mark.parametrize("seed", range(5))
def test_gs_q_score_is_a_guaranteed_decrease_of_f_plus_lambda_l1(seed):
    a, y, x = _least_squares(seed)
    lam = 1.5
    grad = _grad(a, y, x)
    lipschitz = _block_lipschitz(a, BLOCKS)
    block, scores = bcd_block_selection(grad, BLOCKS, rule="GS-q", block_lipschitz=lipschitz, x=x, lam=lam)

    def objective(point):
        return _f(a, y, point) + lam * np.abs(point).sum()

    for index, chosen in enumerate(BLOCKS):
        new_x = bcd_prox_block_update(x, grad, chosen, lipschitz=float(lipschitz[index]), lam=lam)
        assert objective(x) - objective(new_x) >= scores[index] - 1e-12 * objective(x)
    assert scores.min() >= 0 and int(block) == int(np.argmax(scores))


def test_gs_q_exhaustive_minimum_of_the_block_model():
    """Each coordinate's 1-D prox problem, minimized by a fine grid search, gives the score."""
    a, y, x = _least_squares(7, n=4)
    lam, blocks = 0.8, np.array([[0, 1], [2, 3]])
    grad = _grad(a, y, x)
    lipschitz = _block_lipschitz(a, blocks)
    _, scores = bcd_block_selection(grad, blocks, rule="GS-q", block_lipschitz=lipschitz, x=x, lam=lam)
    for index, block in enumerate(blocks):
        total = 0.0
        for i in block:
            d = np.append(np.linspace(-6, 6, 1_200_001), -x[i])  # the grid and the kink at x_i + d = 0
            model = grad[i] * d + lipschitz[index] / 2 * d * d + lam * (np.abs(x[i] + d) - np.abs(x[i]))
            total += model.min()
        assert scores[index] == pytest.approx(-total, abs=1e-7)


@pytest.mark.parametrize("seed", range(4))
def test_gsq_picks_the_block_whose_newton_step_decreases_f_most(seed):
    """On least squares H_b = A_bᵀA_b is exact: an exhaustive search over blocks, each updated by
    its exact block minimizer, finds the GSQ block, and the decrease is half its score."""
    a, y, x = _least_squares(seed)
    grad = _grad(a, y, x)
    block, scores = bcd_block_selection(grad, BLOCKS, rule="GSQ", hessian_bound=a.T @ a)
    decreases = []
    for chosen in BLOCKS:
        new_x = x.copy()
        new_x[chosen] -= np.linalg.solve(a[:, chosen].T @ a[:, chosen], grad[chosen])
        decreases.append(_f(a, y, x) - _f(a, y, new_x))
    assert int(block) == int(np.argmax(decreases))
    np.testing.assert_allclose(scores / 2, decreases, rtol=1e-10)


def test_blocks_with_zero_lipschitz_are_excluded_and_ties_go_to_the_lowest_index():
    grad = np.array([0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    blocks = np.array([[0, 1], [2, 3], [4, 5]])
    block, scores = bcd_block_selection(grad, blocks, rule="GSL", block_lipschitz=np.array([0.0, 2.0, 2.0]))
    assert int(block) == 1 and scores[0] == -np.inf and scores[1] == scores[2] == 1.0
    block, scores = bcd_block_selection(
        grad, blocks, rule="GS-q", block_lipschitz=np.array([0.0, 2.0, 2.0]), x=np.zeros(6), lam=0.0
    )
    assert int(block) == 1 and scores[0] == -np.inf
    with pytest.raises(refimpl.InputError, match="at least one block"):
        bcd_block_selection(grad, blocks, rule="GSL", block_lipschitz=np.zeros(3))


def test_selection_refuses_what_the_rule_cannot_use():
    grad, blocks = np.ones(4), np.array([[0, 1], [2, 2]])
    with pytest.raises(refimpl.InputError, match="partition"):
        bcd_block_selection(grad, blocks, rule="GS")
    with pytest.raises(refimpl.InputError, match="block Lipschitz"):
        bcd_block_selection(grad, np.array([[0, 1], [2, 3]]), rule="GSL")
    with pytest.raises(refimpl.InputError, match="positive definite"):
        bcd_block_selection(grad, np.array([[0, 1], [2, 3]]), rule="GSQ", hessian_bound=-np.eye(4))


@pytest.mark.parametrize("seed", range(4))
def test_variable_block_maximizes_the_summed_guarantee_by_exhaustive_search(seed):
    a, y, x = _least_squares(seed, n=7)
    grad, lipschitz = _grad(a, y, x), (a * a).sum(axis=0)
    for size in (1, 3, 5):
        block, scores = variable_block_selection(grad, lipschitz, block_size=size)
        best = max(
            itertools.combinations(range(7), size), key=lambda s: sum(grad[i] ** 2 / lipschitz[i] for i in s)
        )
        assert block.tolist() == sorted(best)
        np.testing.assert_allclose(scores, np.abs(grad) / np.sqrt(lipschitz), rtol=1e-15)


def test_variable_block_ties_and_zero_lipschitz():
    block, _ = variable_block_selection(
        np.array([2.0, -3.0, 1.0, 4.0]), np.array([1.0, 9.0, 0.25, 4.0]), block_size=2
    )
    assert block.tolist() == [0, 2]  # scores 2, 1, 2, 2: ties to the lower index
    block, scores = variable_block_selection(
        np.array([5.0, 1.0, 2.0]), np.array([0.0, 1.0, 1.0]), block_size=2
    )
    assert block.tolist() == [1, 2] and scores[0] == -np.inf
    with pytest.raises(refimpl.InputError, match="at most the number"):
        variable_block_selection(np.ones(3), np.array([0.0, 1.0, 1.0]), block_size=3)


def test_prox_block_update_by_hand_and_its_optimality_conditions():
    x, grad = np.array([1.0, 0.5, -2.0]), np.array([2.0, 1.0, -1.0])
    new_x = bcd_prox_block_update(x, grad, np.array([0, 1]), lipschitz=4.0, lam=1.0)
    # z = x_b − g_b/4 = (0.5, 0.25); S_{1/4}: (0.25, 0); x_2 untouched
    np.testing.assert_array_equal(new_x, [0.25, 0.0, -2.0])
    assert x.tolist() == [1.0, 0.5, -2.0]  # a new array
    rng = np.random.default_rng(3)
    x, grad, lam, lipschitz = rng.standard_normal(9), rng.standard_normal(9) * 3, 0.7, 2.5
    block = np.array([8, 0, 4, 2, 6])
    new_x = bcd_prox_block_update(x, grad, block, lipschitz=lipschitz, lam=lam)
    # 0 ∈ g_i + L(x⁺_i − x_i) + λ∂|x⁺_i| on the block
    stationarity = grad[block] + lipschitz * (new_x[block] - x[block])
    nonzero = new_x[block] != 0
    np.testing.assert_allclose(stationarity[nonzero], -lam * np.sign(new_x[block][nonzero]), atol=1e-14)
    assert np.all(np.abs(stationarity[~nonzero]) <= lam + 1e-14)
    untouched = np.setdiff1d(np.arange(9), block)
    np.testing.assert_array_equal(new_x[untouched], x[untouched])
    # λ = 0: the block gradient step
    plain = bcd_prox_block_update(x, grad, block, lipschitz=lipschitz, lam=0.0)
    np.testing.assert_allclose(plain[block], x[block] - grad[block] / lipschitz, rtol=1e-15)


@pytest.mark.parametrize("seed", range(6))
def test_tree_solve_equals_a_dense_solve_on_random_forests(seed):
    rng = np.random.default_rng(seed)
    for k, trees in ((1, 1), (5, 1), (12, 3), (40, 4)):
        h = random_forest_spd(rng, k, trees)
        g = rng.standard_normal(k)
        d = tree_block_newton_solve(h, g)
        np.testing.assert_allclose(d, np.linalg.solve(h, -g), rtol=1e-11, atol=1e-13 * np.abs(d).max())
        d32 = tree_block_newton_solve(h.astype(np.float32), g.astype(np.float32))
        assert d32.dtype == np.float32
        np.testing.assert_allclose(d32, d, rtol=1e-3, atol=1e-4 * np.abs(d).max())


def test_tree_solve_path_by_hand_and_refusals():
    h = np.array([[2.0, -1.0, 0.0], [-1.0, 2.0, -1.0], [0.0, -1.0, 2.0]])
    np.testing.assert_allclose(
        tree_block_newton_solve(h, np.array([-1.0, 0.0, -1.0])), [1.0, 1.0, 1.0], rtol=1e-15
    )
    cycle = np.full((3, 3), 1.0) + 2 * np.eye(3)
    with pytest.raises(refimpl.InputError, match="forest"):
        tree_block_newton_solve(cycle, np.ones(3))
    with pytest.raises(refimpl.InputError, match="positive definite"):
        tree_block_newton_solve(np.array([[1.0, 2.0], [2.0, 1.0]]), np.ones(2))
