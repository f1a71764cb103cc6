"""The CRAIG example: the weighted coreset carries the full-data gradient, and training on it works."""

import numpy as np
import pytest

from refimpl.examples import data_efficient_augmentation as example


@pytest.fixture(scope="module")
def results():
    return example.main()


def test_linear_proxies_are_the_per_example_gradients(results):
    # for a linear softmax head the use_linear proxy is ∇_W ℓ_i itself: their mean is the full gradient
    assert results["proxy_mean_minus_full_gradient"] < 1e-15


def test_hand_derived_gradient_matches_finite_differences_of_the_mean_loss():
    x, y = example.make_data(0)
    w = example.initial_weights(0)
    n = y.shape[0]
    gradient = example.weighted_gradient(w, x, y, np.full(n, 1.0 / n))
    direction = np.random.default_rng(3).standard_normal(w.shape)
    step = 1e-6
    plus = example.per_example_losses(w + step * direction, x, y).mean()
    minus = example.per_example_losses(w - step * direction, x, y).mean()
    assert (plus - minus) / (2 * step) == pytest.approx(float((gradient * direction).sum()), rel=1e-7)


def test_coreset_is_ten_percent_with_equal_class_budgets_and_normalized_weights(results):
    assert results["n"] == 1200 and results["coreset_size"] == 120  # budgets 40, 40, 40
    assert results["weights_sum"] == pytest.approx(120, rel=1e-12)


def test_weighted_coreset_gradient_is_far_closer_than_random_subsets_of_the_same_size(results):
    error = results["coreset_weighted_error"]
    assert error < 0.05  # measured 0.030
    assert error < 0.25 * results["random_error_median"]  # measured median 0.186 (6×)
    assert error < results["random_error_best"]  # better than the best of 50 random draws (0.053)


def test_cluster_weights_matter_uniform_weights_on_the_same_coreset_are_biased(results):
    # equal budgets on classes of 600, 400, 200 points: uniform weights over-count the small class
    assert results["coreset_uniform_error"] > 5 * results["coreset_weighted_error"]  # 0.343 vs 0.030


def test_logit_only_proxy_coreset_also_beats_random_subsets(results):
    # weaker than the exact-gradient proxy (0.081 vs 0.030) but still below the random median (0.186)
    assert results["logit_proxy_coreset_weighted_error"] < results["random_error_median"]


def test_steps_on_the_weighted_coreset_lower_the_full_data_loss_like_full_data_steps(results):
    assert results["largest_full_loss_increase_coreset"] < 0  # decreases at every step
    assert results["full_loss_after_coreset_steps"] < 0.5 * results["full_loss_initial"]  # 1.295 → 0.407
    full = results["full_loss_after_full_data_steps"]
    assert abs(results["full_loss_after_coreset_steps"] - full) < 0.02 * full  # 0.407 vs 0.410
