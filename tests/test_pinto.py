"""PINTO counterfactual loss: hand values, ε = 1 is the uniform target, gradients, official formula."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.losses import pinto_counterfactual_loss


@pytest.fixture
def batch():
    rng = np.random.default_rng(3)
    return rng.standard_normal((5, 4)) * 2, rng.standard_normal((5, 4)) * 2, rng.integers(0, 4, size=5)


def _log_softmax(z):
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def test_pinto_known_values_both_targets():
    s, s_perturbed, y = np.array([[0.0, 0.0]]), np.array([[math.log(3.0), 0.0]]), np.array([0])
    # official: t = [0.95, 0.05]; paper: t = [½, ½]; CE(s, y) = log 2
    official = math.log(2) - 0.95 * math.log(0.75) - 0.05 * math.log(0.25)
    paper = math.log(2) - 0.5 * math.log(3 / 16)
    np.testing.assert_allclose(pinto_counterfactual_loss(s, s_perturbed, y), official, rtol=1e-14)
    np.testing.assert_allclose(
        pinto_counterfactual_loss(s, s_perturbed, y, counterfactual_target="uniform"), paper, rtol=1e-14
    )


def test_pinto_smoothing_one_reproduces_the_uniform_target(batch):
    s, s_perturbed, y = batch
    uniform = pinto_counterfactual_loss(s, s_perturbed, y, counterfactual_target="uniform", reduction="none")
    eps_one = pinto_counterfactual_loss(s, s_perturbed, y, smoothing=1.0, reduction="none")
    np.testing.assert_allclose(eps_one, uniform, rtol=1e-14)
    # and the uniform target ignores the labels of the perturbed batch
    other = pinto_counterfactual_loss(
        s, s_perturbed, y, (y + 1) % 4, counterfactual_target="uniform", reduction="none"
    )
    np.testing.assert_allclose(other, uniform, rtol=1e-14)


@pytest.mark.parametrize("target", ["label_smoothing", "uniform"])
def test_pinto_matches_the_official_formula(batch, target):
    # main.py: F.cross_entropy(log_probs, labels) + counter_factor *
    #          F.cross_entropy(mask_outputs, labels, label_smoothing=ε), transcribed in NumPy
    s, s_perturbed, y = batch
    y_perturbed = np.array([3, 0, 0, 1, 2])
    epsilon = 1.0 if target == "uniform" else 0.1
    k = s.shape[1]
    ce = -_log_softmax(s)[np.arange(5), y].mean()
    log_q = _log_softmax(s_perturbed)
    smoothed = -((1 - epsilon) * log_q[np.arange(5), y_perturbed] + epsilon * log_q.sum(axis=1) / k).mean()
    expected = ce + 0.7 * smoothed
    got = pinto_counterfactual_loss(
        s, s_perturbed, y, y_perturbed, counter_factor=0.7, counterfactual_target=target
    )
    np.testing.assert_allclose(got, expected, rtol=1e-13)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_pinto_gradients_are_softmax_minus_target(batch, backend):
    s, s_perturbed, y = batch
    weights = np.linspace(0.5, 2.0, 5)
    _, pullback = refimpl.vjp(
        "pinto_counterfactual_loss", s, s_perturbed, y, counter_factor=1.5, reduction="none", backend=backend
    )
    g_s, g_s_perturbed = pullback(weights)
    p, q = np.exp(_log_softmax(s)), np.exp(_log_softmax(s_perturbed))
    one_hot = np.eye(4)[y]
    np.testing.assert_allclose(g_s, weights[:, None] * (p - one_hot), rtol=1e-12, atol=1e-15)
    target = 0.9 * one_hot + 0.1 / 4
    np.testing.assert_allclose(g_s_perturbed, 1.5 * weights[:, None] * (q - target), rtol=1e-12, atol=1e-15)
    # shift invariance of each row: the gradients sum to zero
    np.testing.assert_allclose(g_s.sum(axis=1), 0.0, atol=1e-14)
    np.testing.assert_allclose(g_s_perturbed.sum(axis=1), 0.0, atol=1e-14)


def test_pinto_counter_factor_zero_is_plain_cross_entropy(batch):
    s, s_perturbed, y = batch
    loss, pullback = refimpl.vjp(pinto_counterfactual_loss, s, s_perturbed, y, counter_factor=0.0)
    np.testing.assert_allclose(loss, -_log_softmax(s)[np.arange(5), y].mean(), rtol=1e-14)
    assert np.all(pullback(np.array(1.0))[1] == 0)


def test_pinto_uniform_target_is_minimized_by_flat_perturbed_scores():
    s, y = np.array([[1.0, 0.0, -1.0]]), np.array([0])
    flat = pinto_counterfactual_loss(s, np.full((1, 3), 4.0), y, counterfactual_target="uniform")
    peaked = pinto_counterfactual_loss(s, np.array([[4.0, 0.0, 0.0]]), y, counterfactual_target="uniform")
    ce = -_log_softmax(s)[0, 0]
    np.testing.assert_allclose(flat, ce + math.log(3), rtol=1e-14)  # CE(uniform, uniform) = log K
    assert peaked > flat


def test_pinto_large_offsets_stay_finite():
    s = np.array([[1e4, 1e4 - 1.0]], dtype=np.float32)
    loss = pinto_counterfactual_loss(s, -s, np.array([1]), reduction="none")
    # CE = 1 + log(1 + e⁻¹); s̃ − max = [−1, 0], t = [0.05, 0.95]: log(1 + e⁻¹) + 0.05
    softplus_minus_one = math.log1p(math.exp(-1.0))
    expected = (1.0 + softplus_minus_one) + (softplus_minus_one + 0.05)
    assert loss.dtype == np.float32
    np.testing.assert_allclose(loss, [expected], rtol=1e-6)


def test_pinto_deviation_is_recorded():
    (deviation,) = refimpl.deviations("pinto_counterfactual_loss")
    assert deviation.name == "pinto-label-smoothing-target"
    assert deviation.flag == {"counterfactual_target": "label_smoothing"}
