"""KL-regularized DRO weights and value: closed form, invariances, limits, the compositional
moving-average estimator."""

import numpy as np
import pytest
from scipy.optimize import minimize

import refimpl
from refimpl.reweighting import kl_dro_compositional_weights, kl_dro_value, kl_dro_weights

LOSSES = np.array([0.3, 1.7, 0.9, 2.4, 0.05, 1.1])


def test_weights_and_value_match_hand_computed_values():
    losses = np.array([0.0, np.log(3.0)])  # exp(ℓ) = [1, 3]
    np.testing.assert_allclose(kl_dro_weights(losses, r=1.0), [0.25, 0.75], rtol=1e-15)
    np.testing.assert_allclose(kl_dro_value(losses, r=1.0), np.log(2.0), rtol=1e-15)  # log((1 + 3)/2)
    # r = 2: exp(ℓ/2) = [1, √3]
    np.testing.assert_allclose(kl_dro_value(losses, r=2.0), 2 * np.log((1 + np.sqrt(3)) / 2), rtol=1e-15)


def test_weights_solve_the_kl_regularized_maximization():
    r = 0.7

    def negative_objective(a):  # w = softmax(a) parametrizes the simplex
        w = np.exp(a - a.max())
        w /= w.sum()
        return -(w @ LOSSES - r * np.sum(w * np.log(w * LOSSES.size)))

    found = minimize(negative_objective, np.zeros(LOSSES.size), method="BFGS", options={"gtol": 1e-12})
    w_found = np.exp(found.x - found.x.max())
    w_found /= w_found.sum()
    np.testing.assert_allclose(kl_dro_weights(LOSSES, r=r), w_found, atol=1e-6)
    np.testing.assert_allclose(kl_dro_value(LOSSES, r=r), -found.fun, rtol=1e-10)


def test_weights_sum_to_one_and_are_shift_invariant():
    for r in (1e-3, 0.3, 5.0, 1e6):
        w = kl_dro_weights(LOSSES, r=r)
        np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-14)
        np.testing.assert_allclose(kl_dro_weights(LOSSES + 123.4, r=r), w, rtol=1e-10, atol=1e-300)


def test_value_is_shift_equivariant():
    for r in (1e-3, 0.3, 5.0):
        np.testing.assert_allclose(
            kl_dro_value(LOSSES + 7.5, r=r), kl_dro_value(LOSSES, r=r) + 7.5, rtol=1e-14
        )


def test_small_r_gives_the_maximum_and_large_r_the_mean():
    # F = ℓmax + r·log((1/n)(1 + Σ_{i≠max} e^{−gap_i/r})) = ℓmax − r·log n up to e^{−0.7/r}
    np.testing.assert_allclose(kl_dro_value(LOSSES, r=1e-6), LOSSES.max() - 1e-6 * np.log(6), rtol=1e-15)
    np.testing.assert_allclose(kl_dro_value(LOSSES, r=1e-300), LOSSES.max(), rtol=1e-15)
    np.testing.assert_allclose(kl_dro_weights(LOSSES, r=1e-6), np.eye(LOSSES.size)[3], atol=1e-300)
    np.testing.assert_allclose(kl_dro_value(LOSSES, r=1e10), LOSSES.mean(), rtol=1e-9)
    np.testing.assert_allclose(kl_dro_weights(LOSSES, r=1e10), 1 / LOSSES.size, rtol=1e-9)


def test_value_keeps_the_mean_where_log_sum_exp_minus_log_n_cancels():
    r = 1e12
    naive = LOSSES.max() + r * (np.log(np.exp((LOSSES - LOSSES.max()) / r).sum()) - np.log(LOSSES.size))
    assert abs(naive - LOSSES.mean()) > 1e-5  # the published form's cancellation
    np.testing.assert_allclose(kl_dro_value(LOSSES, r=r), LOSSES.mean(), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiny_r_stays_finite_where_exp_of_the_loss_overflows(dtype):
    losses = LOSSES.astype(dtype) * 1e3
    w, pullback = refimpl.vjp("kl_dro_weights", losses, r=1e-30)
    assert w.dtype == dtype and np.all(np.isfinite(w))
    assert np.all(np.isfinite(pullback(np.ones_like(w))[0]))
    assert np.isfinite(kl_dro_value(losses, r=1e-30))


def test_value_gradient_is_the_weights():
    _, pullback = refimpl.vjp("kl_dro_value", LOSSES, r=0.4)
    np.testing.assert_allclose(pullback(np.array(2.0))[0], 2 * kl_dro_weights(LOSSES, r=0.4), rtol=1e-15)


def test_weight_jacobian_matches_the_closed_form():
    r = 0.4
    w = kl_dro_weights(LOSSES, r=r)
    jacobian = (np.diag(w) - np.outer(w, w)) / r  # ∂w_i/∂ℓ_j
    _, pullback = refimpl.vjp("kl_dro_weights", LOSSES, r=r)
    rows = np.stack([pullback(e)[0] for e in np.eye(LOSSES.size)])
    np.testing.assert_allclose(rows, jacobian, rtol=1e-12, atol=1e-15)


def test_compositional_weights_match_hand_computed_values():
    # u = 0.5·1 + 0.5·mean(1, 3) = 1.5, w = [1, 3]/(4·1.5)
    w, log_u = kl_dro_compositional_weights(
        np.array([0.0, np.log(3.0)]), np.array(0.0), r=1.0, beta=0.5, n_train=4
    )
    np.testing.assert_allclose(w, [1 / 6, 1 / 2], rtol=1e-15)
    np.testing.assert_allclose(np.exp(log_u), 1.5, rtol=1e-15)


def test_compositional_with_beta_one_and_the_full_batch_is_the_exact_softmax():
    # β = 1 and n = B: n·u_t = Σ_i exp(ℓ_i/r), the exact normalizer
    w, log_u = kl_dro_compositional_weights(LOSSES, np.array(5.0), r=0.3, beta=1.0, n_train=LOSSES.size)
    np.testing.assert_allclose(w, kl_dro_weights(LOSSES, r=0.3), rtol=1e-13)
    np.testing.assert_allclose(0.3 * log_u, kl_dro_value(LOSSES, r=0.3), rtol=1e-13)


def test_compositional_moving_average_follows_its_recursion():
    rng = np.random.default_rng(3)
    r, beta, log_u, u = 0.5, 0.1, np.array(-np.inf), 0.0  # start from u = 0
    for _ in range(5):
        batch = rng.uniform(0, 3, size=8)
        u = (1 - beta) * u + beta * np.exp(batch / r).mean()
        w, log_u = kl_dro_compositional_weights(batch, log_u, r=r, beta=beta, n_train=100)
        np.testing.assert_allclose(np.exp(log_u), u, rtol=1e-13)
        np.testing.assert_allclose(w, np.exp(batch / r) / (100 * u), rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compositional_stays_finite_where_exp_of_the_loss_overflows(dtype):
    losses = np.array([2.0, 4.5, 3.0], dtype)
    w, log_u = kl_dro_compositional_weights(losses, np.asarray(9000.0, dtype), r=5e-4, beta=0.2, n_train=1000)
    assert w.dtype == dtype and log_u.dtype == dtype
    assert np.all(np.isfinite(w)) and np.isfinite(log_u)
    assert np.all(w <= 3 / (0.2 * 1000) * (1 + 1e-5))  # the bound B/(β n)


@pytest.mark.parametrize(
    ("log_u", "kwargs", "argument"),
    [
        (np.array(np.inf), {}, "log_u"),
        (np.array(np.nan), {}, "log_u"),
        (np.array(0.0), {"beta": 0.0}, "beta"),
        (np.array(0.0), {"n_train": 0}, "n_train"),
        (np.array(0.0), {"r": -1.0}, "r"),
    ],
)
def test_bad_input_raises_input_error_naming_op_and_argument(log_u, kwargs, argument):
    good = {"r": 1.0, "beta": 0.5, "n_train": 10, **kwargs}
    with pytest.raises(refimpl.InputError, match=rf"^kl_dro_compositional_weights: argument '{argument}'"):
        kl_dro_compositional_weights(LOSSES, log_u, **good)
