"""A2PR's value target: hand values, the official code's order of minima, terminal masking,
limits of γ and bad input."""

import numpy as np
import pytest

import refimpl
from refimpl.losses import a2pr_value_target


def _rows(*values):
    """One transition per value list: ``_rows(r, d, ...)`` -> one-element arrays."""
    return [np.array([v], dtype=float) for v in values]


def _official_torch_form(reward, not_done, target_q1, target_q2, next_q1, next_q2, discount):
    """``A2PR.train`` in ltlhuuu/A2PR, transcribed line by line in NumPy (column vectors there)."""
    target_q = np.minimum(target_q1, target_q2)
    target_q = reward + not_done * discount * target_q
    next_q = np.minimum(next_q1, next_q2)
    targ_q = reward + not_done * discount * next_q
    return np.minimum(targ_q, target_q)


def test_value_target_matches_hand_computed_values():
    got = a2pr_value_target(
        np.array([1.0, 0.5, 2.0, -1.0]),
        np.array([1.0, 1.0, 0.0, 1.0]),
        np.array([10.0, 4.0, 7.0, -50.0]),
        np.array([12.0, 3.0, 8.0, -40.0]),
        np.array([11.0, 6.0, 1.0, -45.0]),
        np.array([9.0, 5.0, 1.0, -60.0]),
        discount=0.5,
    )
    # row 0: min(1 + 0.5·10, 1 + 0.5·9) = 5.5 (online lower); row 1: min(0.5 + 1.5, 0.5 + 2.5) = 2
    # (target lower); row 2: terminal, r = 2; row 3: min(−1 − 25, −1 − 30) = −31 (most negative)
    np.testing.assert_array_equal(got, [5.5, 2.0, 2.0, -31.0])


def test_default_discount_is_the_official_099():
    args = _rows(0.0, 1.0, 10.0, 20.0, 30.0, 40.0)
    np.testing.assert_allclose(a2pr_value_target(*args), [9.9], rtol=1e-15)
    np.testing.assert_array_equal(a2pr_value_target(*args), a2pr_value_target(*args, discount=0.99))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_the_official_code_and_the_four_head_minimum(dtype):
    rng = np.random.default_rng(0)
    B = 64
    reward = rng.standard_normal(B).astype(dtype)
    not_done = (rng.random(B) > 0.3).astype(dtype)
    heads = (rng.standard_normal((4, B)) * 50 + 100).astype(dtype)
    gamma = 0.99
    got = a2pr_value_target(reward, not_done, *heads, discount=gamma)
    assert got.dtype == dtype
    g = dtype(gamma)
    np.testing.assert_array_equal(got, _official_torch_form(reward, not_done, *heads, g))
    # d·γ >= 0 and rounding is monotone: the min of the two targets is r + d·γ·(min of all heads)
    np.testing.assert_array_equal(got, reward + not_done * g * heads.min(axis=0))


def test_terminal_transitions_give_the_reward_alone():
    reward = np.array([1.5, -2.0, 0.0])
    heads = [np.array([1e3, -1e3, 7.0]) * k for k in (1, 2, 3, 4)]
    np.testing.assert_array_equal(a2pr_value_target(reward, np.zeros(3), *heads, discount=0.99), reward)


def test_zero_discount_gives_the_reward_alone():
    reward = np.array([0.25, -4.0])
    heads = [np.array([5.0, -6.0]), np.array([7.0, 8.0]), np.array([-9.0, 1.0]), np.array([2.0, 3.0])]
    np.testing.assert_array_equal(a2pr_value_target(reward, np.ones(2), *heads, discount=0.0), reward)


def test_value_target_is_pessimistic_against_both_critic_targets():
    rng = np.random.default_rng(1)
    B = 50
    reward, t1, t2, q1, q2 = rng.standard_normal((5, B)) * 10
    not_done = np.ones(B)
    got = a2pr_value_target(reward, not_done, t1, t2, q1, q2, discount=0.9)
    td3_target = reward + 0.9 * np.minimum(t1, t2)
    online_target = reward + 0.9 * np.minimum(q1, q2)
    assert np.all(got <= td3_target) and np.all(got <= online_target)
    # and it is one of them in every row
    assert np.all((got == td3_target) | (got == online_target))
    # both sources win somewhere in this draw (the min is not always the same side)
    assert np.any(got < td3_target) and np.any(got < online_target)


def test_second_heads_count():
    # only the second heads are low: a port that reads Q1 alone would give 1 + 0.5·10 = 6
    got = a2pr_value_target(*_rows(1.0, 1.0, 10.0, 2.0, 10.0, 4.0), discount=0.5)
    np.testing.assert_array_equal(got, [2.0])


def test_monotone_in_each_critic_head_and_in_the_reward():
    base = _rows(0.5, 1.0, 3.0, 4.0, 5.0, 6.0)
    v0 = a2pr_value_target(*base, discount=0.9)[0]
    for position in (0, 2, 3, 4, 5):
        raised = [a.copy() for a in base]
        raised[position] += 1.0
        assert a2pr_value_target(*raised, discount=0.9)[0] >= v0
    lowest_head = [a.copy() for a in base]
    lowest_head[2] += 1.0  # Q̄_1 = 3 is the smallest head: v rises from 0.5 + 0.9·3 to 0.5 + 0.9·4
    np.testing.assert_allclose(a2pr_value_target(*lowest_head, discount=0.9), [0.5 + 0.9 * 4.0], rtol=1e-15)
    np.testing.assert_allclose(v0, 0.5 + 0.9 * 3.0, rtol=1e-15)
    bumped_reward = [a.copy() for a in base]
    bumped_reward[0] += 1.0
    np.testing.assert_allclose(a2pr_value_target(*bumped_reward, discount=0.9)[0], v0 + 1.0, rtol=1e-15)


def test_soft_continuation_weight_scales_the_bootstrap():
    got = a2pr_value_target(*_rows(1.0, 0.5, 8.0, 9.0, 10.0, 12.0), discount=0.5)
    np.testing.assert_array_equal(got, [1.0 + 0.5 * 0.5 * 8.0])


@pytest.mark.parametrize(
    ("not_done", "kwargs", "argument"),
    [
        (np.array([1.0, -0.5]), {"discount": 0.99}, "not_done"),
        (np.array([1.0, 1.5]), {"discount": 0.99}, "not_done"),
        (np.array([1.0, 0.0]), {"discount": 1.01}, "discount"),
        (np.array([1.0, 0.0]), {"discount": -0.1}, "discount"),
        (np.array([1, 0]), {"discount": 0.99}, "not_done"),
        (np.array([1.0, np.nan]), {"discount": 0.99}, "not_done"),
    ],
)
def test_bad_input_raises_input_error_naming_the_argument(not_done, kwargs, argument):
    x = np.array([1.0, 2.0])
    with pytest.raises(refimpl.InputError, match=rf"^a2pr_value_target: argument '{argument}'"):
        a2pr_value_target(x, not_done, x, x, x, x, **kwargs)


def test_mismatched_batch_sizes_and_dtypes_are_refused():
    x = np.array([1.0, 2.0])
    with pytest.raises(refimpl.InputError, match="'next_q2'"):
        a2pr_value_target(x, x / 2, x, x, x, np.ones(3))
    with pytest.raises(refimpl.InputError, match="'target_q1'"):
        a2pr_value_target(x, x / 2, x.astype(np.float32), x, x, x)
