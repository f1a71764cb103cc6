"""Model soups: the uniform soup's mean, the greedy soup's rule (sort, running mean, strict
acceptance, tie order) and the learned soup's softmax mixture and its VJP."""

from fractions import Fraction

import numpy as np
import pytest

import refimpl
from refimpl.merging import greedy_soup, learned_soup, uniform_soup
from refimpl.merging.model_soups import greedy_order


# -- uniform soup -----------------------------------------------------------------------------------
def test_uniform_soup_of_three_models_by_hand():
    models = [np.array([[1.0, -2.0]]), np.array([[4.0, 0.0]]), np.array([[1.0, 5.0]])]
    np.testing.assert_array_equal(uniform_soup(np.stack(models, axis=-1)), [[2.0, 1.0]])


def test_uniform_soup_of_identical_models_is_the_model_exactly():
    model = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    for count in (1, 2, 3, 7):
        soup = uniform_soup(np.stack([model] * count, axis=-1))
        assert soup.dtype == np.float32
        np.testing.assert_array_equal(soup, model)


def test_uniform_soup_is_the_correctly_rounded_mean_unlike_the_official_running_sum():
    rng = np.random.default_rng(1)
    count = 7
    thetas = (1.0 + rng.standard_normal((2000, count)) * 1e-3).astype(np.float32)
    soup = uniform_soup(thetas)
    exact = [sum((Fraction(float(v)) for v in row), Fraction(0)) / count for row in thetas]
    rounded = np.array([float(v) for v in exact]).astype(np.float32)  # one rounding of the exact mean
    assert np.count_nonzero(soup != rounded) <= 2  # float64 sum/K, rounded: rarely a double rounding
    # the official code: soup = θ_k·(1/K) + soup, model by model, in float32
    official = thetas[:, 0] * np.float32(1.0 / count)
    for k in range(1, count):
        official = thetas[:, k] * np.float32(1.0 / count) + official
    differs = official != soup
    assert differs.any()  # order-dependent rounding: a few float32 ulps
    assert np.max(np.abs(official - soup)) <= 4 * np.finfo(np.float32).eps * np.max(np.abs(soup))


def test_uniform_soup_does_not_overflow_near_float32s_largest_value():
    thetas = np.full((3, 4), 3.0e38, dtype=np.float32)
    np.testing.assert_array_equal(uniform_soup(thetas), np.full(3, 3.0e38, dtype=np.float32))


# -- greedy soup ------------------------------------------------------------------------------------
class Recorder:
    """An oracle −‖θ − target‖² that records the candidates it sees."""

    def __init__(self, target):
        self.target, self.seen = np.asarray(target, dtype=np.float64), []

    def __call__(self, theta):
        self.seen.append(np.array(theta))
        return -float(np.sum((np.asarray(theta, dtype=np.float64) - self.target) ** 2))


def test_greedy_soup_keeps_only_strict_improvements_in_accuracy_order():
    # one parameter; the held-out optimum is θ = 1
    thetas = np.array([[3.0, 0.0, 10.0, 1.5]])
    oracle = Recorder([1.0])
    accuracies = np.array([oracle(thetas[:, k]) for k in range(4)])  # −4, −1, −81, −0.25
    oracle.seen.clear()
    soup, ingredients = greedy_soup(thetas, accuracies, oracle)
    # order 3 (1.5), 1 (0.0), 0 (3.0), 2 (10.0)
    # 1.5 → (1.5 + 0)/2 = 0.75 (−0.0625 > −0.25: kept) → (0.75·2 + 3)/3 = 1.5 (−0.25: rejected)
    # → (0.75·2 + 10)/3 = 3.83 (rejected)
    np.testing.assert_array_equal(ingredients, [3, 1])
    np.testing.assert_array_equal(soup, [0.75])
    np.testing.assert_allclose([float(c[0]) for c in oracle.seen], [0.75, 1.5, 11.5 / 3], rtol=1e-15)


def test_greedy_soup_rejects_an_equal_held_out_accuracy():
    thetas = np.array([[0.0, 1.0, 2.0], [5.0, 6.0, 7.0]])
    soup, ingredients = greedy_soup(thetas, np.array([0.6, 0.9, 0.8]), lambda theta: 0.9)
    np.testing.assert_array_equal(ingredients, [1])
    np.testing.assert_array_equal(soup, thetas[:, 1])
    # one unit more is accepted, every time
    scores = iter([0.91, 0.92])
    soup, ingredients = greedy_soup(thetas, np.array([0.6, 0.9, 0.8]), lambda theta: next(scores))
    np.testing.assert_array_equal(ingredients, [1, 2, 0])
    np.testing.assert_allclose(soup, thetas.mean(axis=1))


def test_greedy_soup_candidate_is_the_official_running_mean_in_the_dtype():
    rng = np.random.default_rng(2)
    thetas = rng.standard_normal((50, 4)).astype(np.float32)
    scores = iter([1.0, 2.0, 3.0])  # every candidate improves
    seen = []

    def evaluate(theta):
        seen.append(theta.copy())
        return next(scores)

    soup, ingredients = greedy_soup(thetas, np.array([0.5, 0.4, 0.3, 0.2], dtype=np.float32), evaluate)
    np.testing.assert_array_equal(ingredients, [0, 1, 2, 3])
    expected = thetas[:, 0]
    for n, k in enumerate([1, 2, 3], start=1):  # soup·(n/(n + 1.)) + new·(1./(n + 1)), float32
        expected = expected * np.float32(n / (n + 1.0)) + thetas[:, k] * np.float32(1.0 / (n + 1))
        assert seen[n - 1].dtype == np.float32
        np.testing.assert_array_equal(seen[n - 1], expected)
    np.testing.assert_array_equal(soup, expected)
    np.testing.assert_allclose(soup, thetas.mean(axis=1), rtol=1e-5, atol=1e-6)


def test_greedy_order_is_stable_descending_and_the_official_order_reverses_ties():
    accuracies = np.array([0.5, 0.9, 0.5, 0.7, 0.9])
    assert greedy_order(accuracies).tolist() == [1, 4, 3, 0, 2]
    assert greedy_order(accuracies, official_tie_order=True).tolist() == [4, 1, 3, 2, 0]


def test_greedy_soup_tie_order_decides_which_equally_accurate_model_starts_the_soup():
    thetas = np.array([[1.0, 3.0, 2.0]])
    accuracies = np.array([0.5, 0.5, 0.5])
    soup, ingredients = greedy_soup(thetas, accuracies, lambda theta: 0.5)
    assert ingredients.tolist() == [0] and soup.tolist() == [1.0]
    soup, ingredients = greedy_soup(thetas, accuracies, lambda theta: 0.5, official_tie_order=True)
    assert ingredients.tolist() == [2] and soup.tolist() == [2.0]


def test_the_tie_order_deviation_is_recorded_with_its_flag():
    (deviation,) = refimpl.get("greedy_soup").deviations
    assert deviation.flag == {"official_tie_order": True} and deviation.kind == "variant"


def test_greedy_soup_of_one_model_never_calls_the_oracle():
    def evaluate(theta):
        raise AssertionError("called")

    soup, ingredients = greedy_soup(np.array([[2.0], [3.0]]), np.array([0.1]), evaluate)
    assert soup.tolist() == [2.0, 3.0] and ingredients.tolist() == [0]


def test_greedy_soup_is_never_worse_than_the_best_model_on_the_held_out_oracle():
    rng = np.random.default_rng(3)
    for _ in range(20):
        target = rng.standard_normal(6)
        thetas = target[:, None] + rng.choice([0.1, 1.0, 3.0], size=5) * rng.standard_normal((6, 5))
        oracle = Recorder(target)
        accuracies = np.array([oracle(thetas[:, k]) for k in range(5)])
        soup, ingredients = greedy_soup(thetas, accuracies, oracle)
        assert oracle(soup) >= accuracies.max()
        assert ingredients[0] == int(np.argmax(accuracies)) and len(set(ingredients.tolist())) == len(
            ingredients
        )
        np.testing.assert_allclose(soup, thetas[:, ingredients].mean(axis=1), rtol=1e-12, atol=1e-12)


def test_greedy_soup_refuses_an_oracle_that_returns_nan_or_text():
    thetas = np.array([[0.0, 1.0]])
    with pytest.raises(refimpl.InputError, match="finite held-out accuracy"):
        greedy_soup(thetas, np.array([0.5, 0.4]), lambda theta: float("nan"))
    with pytest.raises(refimpl.InputError, match="returning a real number"):
        greedy_soup(thetas, np.array([0.5, 0.4]), lambda theta: "good")
    with pytest.raises(refimpl.InputError, match="argument 'evaluate'"):
        greedy_soup(thetas, np.array([0.5, 0.4]), 0.5)


# -- learned soup -----------------------------------------------------------------------------------
def test_learned_soup_by_hand():
    thetas = np.stack([np.array([0.0, 4.0]), np.array([2.0, 0.0])], axis=-1)
    alpha = np.log(np.array([3.0, 1.0]))  # p = (3/4, 1/4)
    np.testing.assert_allclose(learned_soup(thetas, alpha), [0.5, 3.0], rtol=1e-15)


def test_learned_soup_with_equal_logits_is_the_uniform_soup():
    thetas = np.random.default_rng(4).standard_normal((3, 5, 4))
    np.testing.assert_allclose(learned_soup(thetas, np.full(4, 2.5)), uniform_soup(thetas), rtol=1e-14)


def test_learned_soup_of_one_model_is_the_model_with_zero_gradient():
    model = np.random.default_rng(5).standard_normal((2, 3))
    theta, pullback = refimpl.vjp("learned_soup", model[..., None], np.array([-3.0]))
    np.testing.assert_array_equal(theta, model)
    assert pullback(np.ones((2, 3)))[0].tolist() == [0.0]


def test_learned_soup_vjp_is_the_softmax_jacobian_times_the_inner_products():
    rng = np.random.default_rng(6)
    thetas, alpha, g_theta = (
        rng.standard_normal((4, 3, 5)),
        rng.standard_normal(5),
        rng.standard_normal((4, 3)),
    )
    _, pullback = refimpl.vjp("learned_soup", thetas, alpha)
    (g_alpha,) = pullback(g_theta)
    p = np.exp(alpha) / np.exp(alpha).sum()
    jacobian = np.diag(p) - np.outer(p, p)  # ∂p/∂α
    inner = np.array([np.sum(g_theta * thetas[..., k]) for k in range(5)])  # ⟨θ̄, θ_k⟩
    np.testing.assert_allclose(g_alpha, jacobian.T @ inner, rtol=1e-12, atol=1e-14)
    assert abs(g_alpha.sum()) < 1e-12  # shift invariance of softmax
