"""Monte-Carlo step advantages (RL on incorrect synthetic data): hand values, the
first-index tie rule, telescoping, and the Monte-Carlo estimate converging to the true
per-step values."""

import numpy as np
import pytest

import refimpl
from refimpl.losses import mc_step_advantages


def _outcomes(*counts, rollouts):
    """Rows with the given numbers of correct rollouts (True first)."""
    return np.array([[m < c for m in range(rollouts)] for c in counts], dtype=bool)


def test_matches_hand_computed_values():
    # c = [3, 2, 0], M = 4: Q̂ = [0.75, 0.5, 0], V̂ = [0.5, 0.75, 0.5], Â = [0.25, −0.25, −0.5]
    q, v, a, i_star = mc_step_advantages(_outcomes(3, 2, 0, rollouts=4), v_0=0.5)
    np.testing.assert_array_equal(q, [0.75, 0.5, 0.0])
    np.testing.assert_array_equal(v, [0.5, 0.75, 0.5])
    np.testing.assert_array_equal(a, [0.25, -0.25, -0.5])
    assert i_star.dtype == np.int64 and i_star.shape == () and int(i_star) == 2


def test_first_step_uses_the_given_pre_step_value():
    q, v, a, i_star = mc_step_advantages(_outcomes(1, 2, 1, rollouts=3), v_0=1.0)
    assert v[0] == 1.0
    np.testing.assert_allclose(a, [1 / 3 - 1, 1 / 3, -1 / 3], rtol=1e-15)
    assert int(i_star) == 0
    # with v_0 = 0 the same outcomes make step 1 helpful and step 3 the critical one
    _, _, a0, i0 = mc_step_advantages(_outcomes(1, 2, 1, rollouts=3), v_0=0.0)
    np.testing.assert_allclose(a0, [1 / 3, 1 / 3, -1 / 3], rtol=1e-15)
    assert int(i0) == 2


def test_ties_pick_the_first_step():
    q, v, a, i_star = mc_step_advantages(_outcomes(4, 2, 4, 2, rollouts=4), v_0=1.0)
    np.testing.assert_array_equal(a, [0.0, -0.5, 0.5, -0.5])
    assert int(i_star) == 1
    _, _, flat, i_flat = mc_step_advantages(np.ones((5, 3), dtype=bool), v_0=1.0)
    np.testing.assert_array_equal(flat, 0.0)
    assert int(i_flat) == 0


def test_equal_count_changes_tie_exactly_at_any_level():
    # Q̂ = [0.5, 0.3, 0.3, 0.1]: in floats 0.3 − 0.5 = −0.2 but 0.1 − 0.3 = −0.19999999999999998,
    # which would make the *later* step the argmin; integer count differences keep the tie
    assert (0.1 - 0.3) != (0.3 - 0.5)
    _, _, a, i_star = mc_step_advantages(_outcomes(5, 3, 3, 1, rollouts=10), v_0=0.5)
    assert a[1] == a[3]
    assert int(i_star) == 1
    # and a later, slightly better step is still not chosen
    _, _, a, i_star = mc_step_advantages(_outcomes(5, 3, 3, 2, rollouts=10), v_0=0.5)
    assert int(i_star) == 1 and a[3] > a[1]


@pytest.mark.parametrize("seed", range(5))
def test_advantages_telescope_and_values_are_shifted_q(seed):
    rng = np.random.default_rng(seed)
    outcomes = rng.random((7, 9)) < rng.uniform(0, 1, size=(7, 1))
    v_0 = float(rng.uniform())
    q, v, a, i_star = mc_step_advantages(outcomes, v_0=v_0)
    np.testing.assert_allclose(q, outcomes.mean(axis=1), rtol=1e-15)
    np.testing.assert_array_equal(v[1:], q[:-1])
    np.testing.assert_allclose(a, q - v, atol=1e-15)
    np.testing.assert_allclose(a.sum(), q[-1] - v_0, atol=1e-14)
    assert a[int(i_star)] == a.min() and np.all(a[: int(i_star)] > a.min())


def test_one_rollout_gives_zero_one_values():
    q, _, a, i_star = mc_step_advantages(np.array([[1], [1], [0], [1], [0]], dtype=bool), v_0=0.0)
    np.testing.assert_array_equal(q, [1, 1, 0, 1, 0])
    np.testing.assert_array_equal(a, [1, 0, -1, 1, -1])
    assert int(i_star) == 2


def test_monte_carlo_estimates_converge_to_the_true_step_values():
    # a trace whose true success probabilities are p; step 3 is the pit (0.7 → 0.2)
    p = np.array([0.6, 0.7, 0.2, 0.25])
    rng = np.random.default_rng(0)
    outcomes = rng.random((p.size, 200_000)) < p[:, None]
    q, _, a, i_star = mc_step_advantages(outcomes, v_0=0.5)
    np.testing.assert_allclose(q, p, atol=5e-3)
    np.testing.assert_allclose(a, np.diff(np.concatenate([[0.5], p])), atol=1e-2)
    assert int(i_star) == 2


def test_v_0_is_required():
    # nothing is defaulted: the value of the question alone comes from the caller's rollouts
    with pytest.raises(refimpl.InputError, match="v_0"):
        mc_step_advantages(np.ones((2, 3), dtype=bool))


@pytest.mark.parametrize(
    ("outcomes", "v_0", "argument"),
    [
        (np.ones((2, 3), dtype=bool), 1.5, "v_0"),
        (np.ones((2, 3), dtype=bool), -0.1, "v_0"),
        (np.ones((2, 3)), 0.5, "outcomes"),
        (np.ones(3, dtype=bool), 0.5, "outcomes"),
        (np.zeros((0, 3), dtype=bool), 0.5, "outcomes"),
        (np.zeros((2, 0), dtype=bool), 0.5, "outcomes"),
    ],
)
def test_bad_input_raises_input_error_naming_the_argument(outcomes, v_0, argument):
    with pytest.raises(refimpl.InputError, match=rf"^mc_step_advantages: argument '{argument}'"):
        mc_step_advantages(outcomes, v_0=v_0)
