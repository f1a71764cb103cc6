"""LT-SFT's L1 regularizer: hand values, the official formula, the subgradient."""

import numpy as np

import refimpl
from refimpl.adapters import lt_sft_l1_regularizer


def test_penalty_and_gradient_by_hand():
    theta, theta0 = np.array([1.0, -2.0, 0.5, 0.25]), np.array([0.0, 0.0, 0.5, 1.0])
    penalty, pullback = refimpl.vjp(lt_sft_l1_regularizer, theta, theta0, l1_reg=0.2, num_params=8)
    assert float(penalty) == 0.2 * (1 + 2 + 0 + 0.75) / 8
    (g_theta,) = pullback(np.array(2.0))
    np.testing.assert_allclose(g_theta, 2.0 * 0.2 / 8 * np.array([1.0, -1.0, 0.0, -1.0]), rtol=1e-15)


def test_default_count_is_the_entries_and_default_lambda_is_zero():
    theta = np.array([3.0, -1.0])
    assert float(lt_sft_l1_regularizer(theta, np.zeros(2), l1_reg=1.0)) == 2.0
    assert float(lt_sft_l1_regularizer(theta, np.zeros(2))) == 0.0


def test_matches_the_official_training_step_term():
    # trainer.py: l1_reg * sum over tensors of sum|p − p₀| / _num_params (every parameter counted)
    rng = np.random.default_rng(0)
    tensors = [rng.standard_normal(s) for s in ((4, 3), (5,), (2, 2, 2))]
    originals = [t + 0.1 * rng.standard_normal(t.shape) for t in tensors]
    num_params = sum(t.size for t in tensors) + 7  # a head not regularized
    official = (
        0.5 * sum(np.sum(np.abs(p - p0)) for p, p0 in zip(tensors, originals, strict=True)) / num_params
    )
    flat = np.concatenate([t.ravel() for t in tensors])
    flat0 = np.concatenate([t.ravel() for t in originals])
    ours = lt_sft_l1_regularizer(flat, flat0, l1_reg=0.5, num_params=num_params)
    np.testing.assert_allclose(float(ours), official, rtol=1e-14)


def test_gradient_matches_finite_differences_away_from_the_kink():
    rng = np.random.default_rng(1)
    theta0 = rng.standard_normal(6)
    theta = theta0 + np.array([0.3, -0.2, 0.5, -0.4, 0.1, -0.6])
    _, pullback = refimpl.vjp(lt_sft_l1_regularizer, theta, theta0, l1_reg=1.5)
    (g_theta,) = pullback(np.array(1.0))
    h = 1e-6
    numeric = [
        (
            float(lt_sft_l1_regularizer(theta + h * e, theta0, l1_reg=1.5))
            - float(lt_sft_l1_regularizer(theta - h * e, theta0, l1_reg=1.5))
        )
        / (2 * h)
        for e in np.eye(6)
    ]
    np.testing.assert_allclose(g_theta, numeric, rtol=1e-7)
