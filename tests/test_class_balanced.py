"""Thresholding (prior correction) and class-balanced weights: hand values, the official
class-balanced-loss formula, limits in β, and the invariants of both rules."""

from fractions import Fraction

import numpy as np
import pytest

import refimpl
from refimpl.reweighting import class_balanced_weights, prior_correction_predict

COUNTS = np.array([5000.0, 1200.0, 300.0, 41.0, 7.0, 1.0])


# -- prior_correction_predict --------------------------------------------------------------------
def test_prior_correction_matches_hand_computed_labels():
    # z − log π: [2 + 0.105, 1 + 2.303] -> 1;  [3.105, 2.303] -> 0;  [1.105, 3.303] -> 1
    z = np.array([[2.0, 1.0], [3.0, 0.0], [1.0, 1.0]])
    labels = prior_correction_predict(z, np.array([0.9, 0.1]))
    np.testing.assert_array_equal(labels, [1, 0, 1])
    assert labels.dtype == np.int64 and labels.shape == (3,)


def test_prior_correction_matches_the_first_authors_worked_example():
    # M. Buda, "Thresholding" (mateuszbuda.github.io, 2018): counts [100, 400, 500],
    # y = [0.2, 0.2, 0.6], y ⊘ p = [2.0, 0.5, 1.2]: the prediction moves from class 2 to 0
    z = np.log(np.array([[0.2, 0.2, 0.6]]))
    assert z.argmax() == 2
    np.testing.assert_array_equal(prior_correction_predict(z, np.array([100.0, 400.0, 500.0])), [0])
    np.testing.assert_array_equal(prior_correction_predict(z, np.array([0.1, 0.4, 0.5])), [0])


def test_uniform_prior_gives_the_plain_argmax():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((50, 7)) * 3
    np.testing.assert_array_equal(prior_correction_predict(z, np.full(7, 1 / 7)), z.argmax(1))
    skewed = np.array([0.5, 0.2, 0.1, 0.1, 0.05, 0.04, 0.01])
    assert (prior_correction_predict(z, skewed) != z.argmax(1)).any()  # a non-uniform prior does matter


def test_logit_form_equals_posterior_divided_by_prior():
    # the paper's y(x) = argmax_c p(c|x)/π_c with p = softmax(z)
    rng = np.random.default_rng(1)
    z = rng.standard_normal((200, 6)) * 2
    priors = COUNTS / COUNTS.sum()
    posterior = np.exp(z - z.max(1, keepdims=True))
    posterior /= posterior.sum(1, keepdims=True)
    expected = (posterior / priors).argmax(1)
    labels = prior_correction_predict(z, priors)
    np.testing.assert_array_equal(labels, expected)
    assert (labels != z.argmax(1)).sum() > 20  # the correction changes many predictions


def test_priors_need_not_be_normalized_and_row_shifts_do_not_matter():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((100, 6)) * 4
    normalized = prior_correction_predict(z, COUNTS / COUNTS.sum())
    np.testing.assert_array_equal(prior_correction_predict(z, COUNTS), normalized)
    shifted = z + rng.standard_normal((100, 1)) * 50
    np.testing.assert_array_equal(prior_correction_predict(shifted, COUNTS), normalized)


def test_prior_correction_recovers_the_balanced_decision():
    # Gaussian classes in 1-D; a classifier trained on imbalanced data has posterior logits
    # log p(x|c) + log π_c. Dividing by π gives back argmax_c p(x|c), the balanced-prior decision.
    rng = np.random.default_rng(3)
    means, priors = np.array([-1.0, 0.0, 1.5]), np.array([0.9, 0.08, 0.02])
    x = rng.uniform(-3, 4, size=400)
    log_likelihood = -0.5 * (x[:, None] - means) ** 2
    z = log_likelihood + np.log(priors)
    np.testing.assert_array_equal(prior_correction_predict(z, priors), log_likelihood.argmax(1))
    assert (z.argmax(1) != log_likelihood.argmax(1)).any()


def test_exact_ties_go_to_the_lowest_class_index():
    # −log π = [2.303, 2.303, 0.916, 0.916]: rows tie between classes 0, 1 / 2, 3 / 0, 1
    z = np.array([[3.0, 3.0, 0.0, 0.0], [0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(prior_correction_predict(z, np.array([0.1, 0.1, 0.4, 0.4])), [0, 2, 0])


def test_tiny_prior_in_log_space():
    # log 1e-300 = −690.8: class 0 beats z = 600 but not z = 700
    z = np.array([[0.0, 600.0], [0.0, 700.0]])
    np.testing.assert_array_equal(prior_correction_predict(z, np.array([1e-300, 1.0])), [0, 1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prior_correction_runs_in_both_float_dtypes(dtype):
    z = np.array([[2.0, 1.0], [3.0, 0.0]], dtype)
    np.testing.assert_array_equal(prior_correction_predict(z, np.array([0.9, 0.1], dtype)), [1, 0])


@pytest.mark.parametrize("priors", [np.array([0.5, 0.0, 0.5]), np.array([0.5, 0.6, -0.1])])
def test_nonpositive_prior_raises_input_error(priors):
    with pytest.raises(refimpl.InputError, match=r"^prior_correction_predict: argument 'priors'.*π_c > 0"):
        prior_correction_predict(np.zeros((2, 3)), priors)


# -- class_balanced_weights ----------------------------------------------------------------------
def test_inverse_frequency_matches_hand_computed_values():
    counts = np.array([1.0, 2.0, 4.0])  # 1/n = [1, 1/2, 1/4], Σ = 7/4
    w = class_balanced_weights(counts, mode="inverse_frequency", normalization="sum_to_one")
    np.testing.assert_allclose(w, [4 / 7, 2 / 7, 1 / 7], rtol=1e-15)
    w = class_balanced_weights(counts, mode="inverse_frequency", normalization="mean_one")
    np.testing.assert_allclose(w, [12 / 7, 6 / 7, 3 / 7], rtol=1e-15)


def test_effective_number_matches_hand_computed_values():
    # β = 0.5: 1 − β^n = [1/2, 3/4, 15/16], u = 0.5/(1 − β^n) = [1, 2/3, 8/15], Σu = 11/5
    w = class_balanced_weights(np.array([1.0, 2.0, 4.0]), beta=0.5)
    np.testing.assert_allclose(w, [15 / 11, 10 / 11, 8 / 11], rtol=1e-15)
    w = class_balanced_weights(np.array([1.0, 2.0, 4.0]), beta=0.5, normalization="sum_to_one")
    np.testing.assert_allclose(w, [5 / 11, 10 / 33, 8 / 33], rtol=1e-15)


def _official_class_balanced_weights(img_num_per_cls, beta, num_classes):
    """Transcribed from richardaecn/class-balanced-loss, src/cifar_main.py (main)."""
    effective_num = 1.0 - np.power(beta, img_num_per_cls)
    weights = (1.0 - beta) / np.array(effective_num)
    return weights / np.sum(weights) * num_classes


@pytest.mark.parametrize("beta", [0.9, 0.99, 0.999, 0.9999])
def test_defaults_match_the_official_class_balanced_loss_on_cifar10_lt(beta):
    # src/data_utils.py get_img_num_per_cls("10", imb_factor=0.02)
    counts = np.array([int(5000 * 0.02 ** (c / 9.0)) for c in range(10)], dtype=np.float64)
    np.testing.assert_array_equal(counts[[0, 1, -1]], [5000, 3237, 100])
    official = _official_class_balanced_weights(counts, beta, 10)
    np.testing.assert_allclose(class_balanced_weights(counts, beta=beta), official, rtol=1e-12)
    if beta == 0.9999:  # the defaults are effective_number, β = 0.9999, mean_one
        np.testing.assert_array_equal(
            class_balanced_weights(counts), class_balanced_weights(counts, beta=beta)
        )


def test_defaults_are_effective_number_beta_0_9999_mean_one():
    explicit = class_balanced_weights(COUNTS, mode="effective_number", beta=0.9999, normalization="mean_one")
    np.testing.assert_array_equal(class_balanced_weights(COUNTS), explicit)
    np.testing.assert_allclose(explicit.sum(), COUNTS.size, rtol=1e-15)
    assert not np.allclose(explicit, class_balanced_weights(COUNTS, mode="inverse_frequency"))


@pytest.mark.parametrize("mode", ["effective_number", "inverse_frequency"])
def test_normalizations_sum_to_one_and_to_the_number_of_classes(mode):
    total = class_balanced_weights(COUNTS, mode=mode, beta=0.999, normalization="sum_to_one")
    mean_one = class_balanced_weights(COUNTS, mode=mode, beta=0.999, normalization="mean_one")
    np.testing.assert_allclose(total.sum(), 1.0, rtol=1e-15)
    np.testing.assert_allclose(mean_one.mean(), 1.0, rtol=1e-15)
    np.testing.assert_allclose(mean_one, COUNTS.size * total, rtol=1e-15)


@pytest.mark.parametrize("beta", [0.0, 1e-12, 1e-6])
def test_effective_number_with_beta_to_zero_gives_uniform_weights(beta):
    with np.errstate(all="raise"):
        w = class_balanced_weights(COUNTS, beta=beta)
    np.testing.assert_allclose(w, 1.0, rtol=1e-5 if beta else 1e-15)


@pytest.mark.parametrize("epsilon", [1e-6, 1e-9, 1e-12])
def test_effective_number_with_beta_to_one_approaches_inverse_frequency(epsilon):
    # 1 − β^n = nε(1 − (n − 1)ε/2 + …): the relative gap is about (n_max − n_min)·ε/2
    inverse = class_balanced_weights(COUNTS, mode="inverse_frequency")
    effective = class_balanced_weights(COUNTS, beta=1 - epsilon)
    gap = np.max(np.abs(effective / inverse - 1))
    assert gap < (COUNTS.max() - COUNTS.min()) * epsilon
    assert gap > (COUNTS.max() - COUNTS.min()) * epsilon / 8  # not yet equal: the limit is approached


def _exact_effective_number_weights(counts, beta):
    """The mean_one weights in rational arithmetic, for the double β and integer counts."""
    beta = Fraction(beta)
    unnormalized = [(1 - beta) / (1 - beta ** int(n)) for n in counts]
    total = sum(unnormalized)
    return np.array([float(u * len(counts) / total) for u in unnormalized])


@pytest.mark.parametrize("beta", [0.999, 0.9999, 1 - 1e-7, 1 - 1e-9, 1 - 1e-12])
def test_effective_number_is_correctly_rounded_where_the_plain_power_loses_digits(beta):
    counts = np.array([1.0, 7.0, 100.0, 1000.0, 5000.0])
    exact = _exact_effective_number_weights(counts, beta)
    np.testing.assert_allclose(class_balanced_weights(counts, beta=beta), exact, rtol=1e-15)
    if beta == 1 - 1e-9:  # 1 − np.power(β, n) cancels: about eight digits are left
        plain = _official_class_balanced_weights(counts, beta, counts.size)
        assert np.max(np.abs(plain / exact - 1)) > 1e-10


def test_beta_near_one_in_float32_where_the_plain_form_divides_zero_by_zero():
    counts, beta = np.array([1.0, 2.0, 4.0], np.float32), 1 - 1e-9
    assert np.float32(beta) == 1.0  # the plain 1 − β^n is 0 for every class
    w = class_balanced_weights(counts, beta=beta, normalization="sum_to_one")
    assert w.dtype == np.float32
    np.testing.assert_allclose(w, [4 / 7, 2 / 7, 1 / 7], rtol=1e-6)


@pytest.mark.parametrize("mode", ["effective_number", "inverse_frequency"])
def test_rarer_classes_weigh_more(mode):
    w = class_balanced_weights(COUNTS, mode=mode, beta=0.99)
    assert np.all(np.diff(w) > 0)  # COUNTS is decreasing


def test_inverse_frequency_balances_the_total_weight_of_every_class():
    # n_c·w_c is the same for every class: oversampling to full balance, in expectation
    w = class_balanced_weights(COUNTS, mode="inverse_frequency", normalization="sum_to_one")
    np.testing.assert_allclose(COUNTS * w, 1 / np.sum(1 / COUNTS), rtol=1e-14)
    np.testing.assert_allclose(
        class_balanced_weights(COUNTS * 37.5, mode="inverse_frequency"),
        class_balanced_weights(COUNTS, mode="inverse_frequency"),
        rtol=1e-14,
    )


@pytest.mark.parametrize("mode", ["effective_number", "inverse_frequency"])
def test_equal_counts_give_uniform_weights_and_one_class_gets_one(mode):
    np.testing.assert_allclose(class_balanced_weights(np.full(4, 250.0), mode=mode), 1.0, rtol=1e-15)
    np.testing.assert_allclose(
        class_balanced_weights(np.full(4, 250.0), mode=mode, normalization="sum_to_one"), 0.25, rtol=1e-15
    )
    assert class_balanced_weights(np.array([17.0]), mode=mode, normalization="sum_to_one")[0] == 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weights_keep_the_dtype_of_the_counts_and_stay_finite_for_huge_counts(dtype):
    counts = np.array([1e36, 3e35, 1.0], dtype)
    for mode in ("effective_number", "inverse_frequency"):
        w = class_balanced_weights(counts, mode=mode, normalization="sum_to_one")
        assert w.dtype == dtype and np.all(np.isfinite(w))
    w = class_balanced_weights(counts, mode="inverse_frequency", normalization="sum_to_one")
    np.testing.assert_allclose(w, [1e-36, 1 / 3e35, 1.0], rtol=1e-6)


@pytest.mark.parametrize(
    ("counts", "kwargs", "argument"),
    [
        (np.array([10.0, 0.0, 3.0]), {}, "counts"),
        (np.array([10.0, 2.0, 0.5]), {"mode": "inverse_frequency"}, "counts"),
        (np.array([10, 2, 3]), {}, "counts"),
        (np.array([10.0, 2.0]), {"beta": 1.0}, "beta"),
        (np.array([10.0, 2.0]), {"beta": -0.1}, "beta"),
        (np.array([10.0, 2.0]), {"normalization": "sum"}, "normalization"),
        (np.array([10.0, 2.0]), {"mode": "cb"}, "mode"),
    ],
)
def test_bad_input_raises_input_error_naming_the_argument(counts, kwargs, argument):
    with pytest.raises(refimpl.InputError, match=rf"^class_balanced_weights: argument '{argument}'"):
        class_balanced_weights(counts, **kwargs)
