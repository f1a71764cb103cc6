"""Tsallis-INF over ω: the official predict/update, the play distribution, regret on a cost curve."""

import numpy as np
import pytest

import refimpl
from refimpl.solvers import omega_bandit_step


def official_predict(k, scale, t):
    """learners/TsallisINF.m predict, transcribed: 20 Newton steps from x = −1."""
    eta = 2.0 / np.sqrt(t)
    x = -1.0
    for _ in range(20):
        probs = 4 * (eta * (k / scale - x)) ** (-2.0)
        x = x - (probs.sum() - 1) / (eta * (probs**1.5).sum())
    return probs


def test_first_round_is_uniform():
    for d in (1, 5, 20):
        _, _, p, _, _ = omega_bandit_step(
            np.linspace(1, 1.95, d), np.zeros(d), np.zeros(0), 0.3, lambda w: 2.0
        )
        np.testing.assert_allclose(p, np.full(d, 1 / d), rtol=1e-12)


def test_matches_official_rounds():
    rng = np.random.default_rng(5)
    grid = np.linspace(1.0, 1.95, 20)
    k, losses = np.zeros(20), np.zeros(0)
    k_official, history, scale = np.zeros(20), [], 1.0
    for t in range(1, 40):
        u = rng.uniform()
        index, omega, p, k, losses = omega_bandit_step(grid, k, losses, u, lambda w: 2 + 30 * (w - 1.7) ** 2)
        probs = official_predict(k_official, scale, t)
        i = int(np.searchsorted(np.cumsum(probs) / probs.sum(), u, side="right"))
        assert int(index) == i and float(omega) == grid[i]
        np.testing.assert_allclose(p, probs, rtol=1e-12)
        loss = 2 + 30 * (grid[i] - 1.7) ** 2
        history.append(loss)
        scale = np.mean(history) - 1
        k_official[i] += (loss - 1) / probs[i]
        np.testing.assert_allclose(k, k_official, rtol=1e-12)
    assert losses.tolist() == history


def test_probabilities_normalized_and_ordered():
    k = np.array([0.0, 3.0, 10.0, 30.0])
    _, _, p, _, _ = omega_bandit_step(np.linspace(1, 1.9, 4), k, np.array([3.0, 5.0]), 0.5, lambda w: 2.0)
    assert abs(p.sum() - 1) < 1e-10  # 20 Newton steps reach the normalizer
    assert np.all(np.diff(p) < 0)  # lower cumulative loss, higher probability


def test_draw_follows_probabilities():
    rng = np.random.default_rng(6)
    grid, k, losses = np.linspace(1, 1.9, 4), np.array([0.0, 2.0, 6.0, 1.0]), np.array([3.0, 4.0])
    draws = 20_000
    counts = np.zeros(4)
    p = None
    for u in rng.uniform(size=draws):
        index, _, p, _, _ = omega_bandit_step(grid, k, losses, float(u), lambda w: 2.0)
        counts[int(index)] += 1
    expected = p / p.sum()
    sigma = np.sqrt(draws * expected * (1 - expected))
    assert np.all(np.abs(counts - draws * expected) < 5 * sigma)


def test_regret_on_synthetic_cost_curve():
    rng = np.random.default_rng(7)
    grid = np.linspace(1.0, 1.95, 20)

    def cost(w):
        return 2.0 + 40.0 * (w - 1.75) ** 2  # best arm 1.75

    k, losses = np.zeros(20), np.zeros(0)
    played = []
    for _ in range(600):
        index, omega, _, k, losses = omega_bandit_step(grid, k, losses, float(rng.uniform()), cost)
        played.append(cost(float(omega)))
    uniform = np.mean([cost(w) for w in grid])
    best = min(cost(w) for w in grid)
    late = np.mean(played[-200:])
    assert late - best < 0.3 * (uniform - best)


def test_scale_zero_falls_back_to_uniform():
    index, _, p, k, _ = omega_bandit_step(np.linspace(1, 1.9, 4), np.zeros(4), np.ones(2), 0.6, lambda w: 3.0)
    assert int(index) == 2
    np.testing.assert_allclose(k, [0.0, 0.0, 8.0, 0.0])  # (3 − 1)/(1/4)


def test_cost_must_be_finite():
    with pytest.raises(refimpl.InputError, match="finite"):
        omega_bandit_step(np.ones(2), np.zeros(2), np.zeros(0), 0.5, lambda w: float("inf"))
