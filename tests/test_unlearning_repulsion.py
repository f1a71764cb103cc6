"""Adapt-then-Unlearn repulsion: hand values, the official scaling, the three forms, d = 0."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.regularizers import unlearning_repulsion_regularizer as repulsion


@pytest.fixture
def models():
    rng = np.random.default_rng(4)
    generator = [rng.standard_normal((4, 3)), rng.standard_normal(5), rng.standard_normal((2, 2, 2))]
    adapted = [[t + 0.4 * rng.standard_normal(t.shape) for t in generator] for _ in range(3)]
    flat = np.concatenate([t.ravel() for t in generator])
    flat_adapted = np.stack([np.concatenate([t.ravel() for t in model]) for model in adapted])
    return generator, adapted, flat, flat_adapted, np.array([t.size for t in generator])


def _official_distance(generator, adapted):
    """The official averaging transcribed: Σ over models and matched tensors of the MSE, divided
    by 2 and multiplied by the number of models, then by 1/T."""
    total = sum(np.mean((model[p] - generator[p]) ** 2) for model in adapted for p in range(len(generator)))
    return total / 2 * len(adapted) * (1 / len(generator))


def test_repulsion_matches_the_official_distance_in_every_form(models):
    generator, adapted, flat, flat_adapted, sizes = models
    d = _official_distance(generator, adapted)
    gamma = 0.5
    f = 1 / gamma
    np.testing.assert_allclose(
        repulsion(flat, flat_adapted, sizes, form="l2", gamma=gamma), -d / f, rtol=1e-13
    )
    np.testing.assert_allclose(
        repulsion(flat, flat_adapted, sizes, form="reci", gamma=gamma), 1 / (d * f), rtol=1e-13
    )
    np.testing.assert_allclose(
        repulsion(flat, flat_adapted, sizes, form="exp", gamma=gamma), 100 * math.exp(-d / f), rtol=1e-13
    )


def test_intended_scaling_divides_by_two_n_models(models):
    _, _, flat, flat_adapted, sizes = models
    official = repulsion(flat, flat_adapted, sizes, form="l2")
    intended = repulsion(flat, flat_adapted, sizes, form="l2", official_scaling=False)
    # c_official/c_intended = (M/2)/(1/(2M)) = M² = 9
    np.testing.assert_allclose(official / intended, 9.0, rtol=1e-13)
    one = flat_adapted[:1]
    np.testing.assert_allclose(
        repulsion(flat, one, sizes, form="exp"),
        repulsion(flat, one, sizes, form="exp", official_scaling=False),
    )


def test_repulsion_hand_value_and_gradient():
    theta, adapted = np.array([1.0, 2.0, 3.0]), np.array([[0.0, 0.0, 3.0], [1.0, 0.0, 1.0]])
    sizes = np.array([2, 1])
    # MSEs 2.5, 0, 2, 4: Σ = 8.5; c = (2/2)/2 = 0.5, d = 4.25
    loss, pullback = refimpl.vjp(repulsion, theta, adapted, sizes, form="reci", gamma=2.0)
    np.testing.assert_allclose(loss, 2.0 / 4.25, rtol=1e-15)
    (g_theta,) = pullback(np.array(1.0))
    # ∂d/∂θ_j = (2c/n_p) Σ_N (θ_j − θ_N,j)
    # tensor 1 (n = 2): 0.5·(1 + 0, 2 + 2) = (0.5, 2); tensor 2 (n = 1): 1·(0 + 2) = 2
    np.testing.assert_allclose(g_theta, -2.0 / 4.25**2 * np.array([0.5, 2.0, 2.0]), rtol=1e-14)


def test_repulsion_l2_gradient_points_away_from_the_adapted_models(models):
    _, _, flat, flat_adapted, sizes = models
    _, pullback = refimpl.vjp(repulsion, flat, flat_adapted, sizes, form="l2")
    (g_theta,) = pullback(np.array(1.0))
    # descending R moves θ along −g, i.e. toward θ − mean_N θ_N: away from the adapted models
    away = flat - flat_adapted.mean(axis=0)
    assert np.all(np.sign(-g_theta) == np.sign(away))


def test_repulsion_reci_refuses_d_zero():
    theta = np.array([0.5, -1.0])
    with pytest.raises(refimpl.InputError, match="d = 0"):
        repulsion(theta, np.stack([theta, theta]), np.array([2]), form="reci")
    assert repulsion(theta, np.stack([theta]), np.array([2]), form="exp") == 100.0
