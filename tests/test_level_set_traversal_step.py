"""Level Set Traversal step: orthogonality to the gradient, the acceptance rule, the correction,
and a full traversal on an analytic softmax-linear model."""

import numpy as np
import pytest

import refimpl
from refimpl.solvers import level_set_traversal_step


class SoftmaxLinear:
    def __init__(self, weights, source):
        self.weights, self.source = weights, source

    def probs(self, x):
        logits = x @ self.weights
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def __call__(self, x):
        return self.probs(x)[np.arange(x.shape[0]), self.source]

    def gradient(self, x):  # ∇_x CE(softmax(xW), src) = −(W_src − Σ_k p_k W_k)
        return -(self.weights[:, self.source].T - self.probs(x) @ self.weights.T)


def test_gradient_of_the_analytic_model_matches_finite_differences():
    rng = np.random.default_rng(0)
    model = SoftmaxLinear(rng.standard_normal((5, 3)), np.array([1, 2]))
    x = rng.uniform(size=(2, 5))
    h = 1e-6
    numeric = np.zeros_like(x)
    for j in range(5):
        e = np.zeros(5)
        e[j] = h
        numeric[:, j] = -(np.log(model(x + e)) - np.log(model(x - e))) / (2 * h)
    np.testing.assert_allclose(model.gradient(x), numeric, rtol=1e-7)


def test_step_is_orthogonal_to_the_gradient_when_nothing_is_clipped():
    rng = np.random.default_rng(1)
    model = SoftmaxLinear(rng.standard_normal((6, 3)), np.array([0, 1, 2, 0]))
    x = rng.uniform(0.4, 0.6, size=(4, 6))
    target = rng.uniform(0.3, 0.7, size=(4, 6))
    g = model.gradient(x)
    x_new, _, accepted = level_set_traversal_step(
        x, g, target, model(x), np.zeros_like(x), model, eta=0.1, delta=1.0
    )
    assert accepted.all()
    step = x_new - x
    np.testing.assert_allclose((step * g).sum(1), 0.0, atol=1e-15)
    # and it is η times the projection of Δ: the component along g is removed, the rest kept
    delta = target - x
    expected = delta - ((delta * g).sum(1) / (g * g).sum(1))[:, None] * g
    np.testing.assert_allclose(step, 0.1 * expected, rtol=1e-12, atol=1e-16)


def test_rejected_candidates_leave_x_unchanged():
    x, g = np.array([[0.5, 0.5], [0.2, 0.8]]), np.array([[1.0, 0.0], [0.0, 1.0]])
    target = np.array([[0.9, 0.1], [0.9, 0.1]])
    p0 = np.array([0.9, 0.9])
    x_new, a, accepted = level_set_traversal_step(
        x, g, target, p0, np.zeros_like(x), lambda c: np.array([0.85, 0.75]), eta=0.5, delta=0.1
    )
    np.testing.assert_array_equal(accepted, [True, False])  # drops 0.05 < 0.1 and 0.15 ≥ 0.1
    np.testing.assert_array_equal(x_new[1], x[1])
    np.testing.assert_allclose(x_new[0], [0.5, 0.3], rtol=1e-15)


def test_correction_accumulates_clips_and_is_subtracted():
    x, g = np.array([[0.5, 0.5, 0.5]]), np.array([[2.0, -0.5, 0.0]])
    a0 = np.array([[0.1, 0.1, -0.3]])
    seen = []

    def oracle(candidate):
        seen.append(candidate.copy())
        return np.array([1.0])

    _, a, accepted = level_set_traversal_step(
        x, g, x, np.array([1.0]), a0, oracle, eta=0.3, kappa=0.2, adv_pert=True
    )
    # a + (κ/2) g = (0.3, 0.05, −0.3), clipped to [−0.2, 0.2]
    np.testing.assert_allclose(a, [[0.2, 0.05, -0.2]], rtol=1e-15)
    np.testing.assert_allclose(seen[0], x - a, rtol=1e-15)  # Δ = 0: the candidate is x − a
    # without the flag the correction is carried unchanged and not applied
    _, a_off, _ = level_set_traversal_step(x, g, x, np.array([1.0]), a0, oracle, eta=0.3, kappa=0.2)
    np.testing.assert_array_equal(a_off, a0)
    np.testing.assert_array_equal(seen[1], x)


def test_candidates_are_clipped_to_the_unit_box():
    seen = []
    level_set_traversal_step(
        np.array([[0.9, 0.1]]),
        np.array([[1.0, 1.0]]),
        np.array([[3.0, -2.0]]),
        np.array([0.5]),
        np.zeros((1, 2)),
        lambda c: seen.append(c) or np.array([0.5]),
        eta=1.0,
    )
    np.testing.assert_array_equal(seen[0], [[1.0, 0.0]])


def test_traversal_reaches_near_the_target_keeping_the_source_confidence():
    # a full LST loop (the loop lives here): 100 steps, the official defaults
    rng = np.random.default_rng(2)
    model = SoftmaxLinear(rng.standard_normal((10, 3)) * 3, np.array([0]))
    x_source = rng.uniform(size=(1, 10))
    target = rng.uniform(size=(1, 10))
    x = np.clip(x_source + (4 / 255) * (rng.uniform(size=x_source.shape) - 0.5), 0, 1)
    p0 = model(x)
    correction = np.zeros_like(x)
    for _ in range(100):
        x, correction, _ = level_set_traversal_step(x, model.gradient(x), target, p0, correction, model)
    assert p0[0] - model(x)[0] < 0.05  # every accepted iterate stays within δ
    assert np.linalg.norm(x - target) < 0.5 * np.linalg.norm(x_source - target)


def test_zero_gradient_is_refused():
    x = np.full((2, 2), 0.5)
    with pytest.raises(refimpl.InputError, match="g = 0 for image 0"):
        level_set_traversal_step(x, np.zeros((2, 2)), x, np.ones(2), np.zeros((2, 2)), lambda c: np.ones(2))
