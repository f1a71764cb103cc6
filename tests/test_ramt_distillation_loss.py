"""R-AMT's distillation loss: hand values, the trainer's formula, the non-detached gradient
against finite differences, the detached variant and the α = 1 limit."""

import numpy as np
import pytest

import refimpl
from refimpl.adapters import ramt_distillation_loss


def trainer_loss(z_stu, z_tea, alpha, temperature):
    """The trainer's KLLoss transcribed: tea = α z_tea + (1 − α) z_stu, T²·batch mean of
    −Σ softmax(tea/T)·log_softmax(z_stu/T)."""
    tea = alpha * z_tea + (1 - alpha) * z_stu
    t = np.exp(tea / temperature - np.max(tea / temperature, axis=1, keepdims=True))
    t /= t.sum(axis=1, keepdims=True)
    u = z_stu / temperature
    log_q = u - np.max(u, axis=1, keepdims=True)
    log_q -= np.log(np.exp(log_q).sum(axis=1, keepdims=True))
    return temperature**2 * np.mean(-np.sum(t * log_q, axis=1))


def test_uniform_logits_give_t_squared_log_k():
    z = np.zeros((3, 4))
    assert float(ramt_distillation_loss(z, z, alpha=0.5, temperature=3.0)) == pytest.approx(
        9 * np.log(4), rel=1e-15
    )


@pytest.mark.parametrize("alpha,temperature", [(0.0, 1.0), (0.5, 2.0), (0.9, 0.7), (1.0, 4.0)])
def test_matches_the_trainer_formula(alpha, temperature):
    rng = np.random.default_rng(0)
    z_stu, z_tea = rng.standard_normal((5, 7)) * 3, rng.standard_normal((5, 7)) * 3
    ours = float(ramt_distillation_loss(z_stu, z_tea, alpha=alpha, temperature=temperature))
    assert ours == pytest.approx(trainer_loss(z_stu, z_tea, alpha, temperature), rel=1e-13)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_gradient_matches_finite_differences_with_the_live_target(alpha):
    rng = np.random.default_rng(1)
    z_stu, z_tea = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    _, pullback = refimpl.vjp(ramt_distillation_loss, z_stu, z_tea, alpha=alpha, temperature=2.0)
    (g_z,) = pullback(np.array(1.0))
    h = 1e-6
    numeric = np.zeros_like(z_stu)
    for index in np.ndindex(z_stu.shape):
        e = np.zeros_like(z_stu)
        e[index] = h
        numeric[index] = (
            trainer_loss(z_stu + e, z_tea, alpha, 2.0) - trainer_loss(z_stu - e, z_tea, alpha, 2.0)
        ) / (2 * h)
    np.testing.assert_allclose(g_z, numeric, rtol=1e-7, atol=1e-9)


def test_detached_target_gives_the_distillation_gradient_and_agrees_at_alpha_one():
    rng = np.random.default_rng(2)
    z_stu, z_tea = rng.standard_normal((4, 6)), rng.standard_normal((4, 6))
    T, alpha = 2.0, 0.4  # noqa: N806
    _, pullback = refimpl.vjp(
        ramt_distillation_loss, z_stu, z_tea, alpha=alpha, temperature=T, detach_target=True
    )
    (g_detached,) = pullback(np.array(1.0))
    q = np.exp(z_stu / T) / np.exp(z_stu / T).sum(axis=1, keepdims=True)
    mixed = alpha * z_tea + (1 - alpha) * z_stu
    t = np.exp(mixed / T) / np.exp(mixed / T).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(g_detached, T / 4 * (q - t), rtol=1e-13)
    _, live = refimpl.vjp(ramt_distillation_loss, z_stu, z_tea, alpha=alpha, temperature=T)
    assert not np.allclose(live(np.array(1.0))[0], g_detached)  # the target's term matters
    _, one = refimpl.vjp(ramt_distillation_loss, z_stu, z_tea, alpha=1.0, temperature=T)
    _, one_detached = refimpl.vjp(
        ramt_distillation_loss, z_stu, z_tea, alpha=1.0, temperature=T, detach_target=True
    )
    np.testing.assert_allclose(one(np.array(1.0))[0], one_detached(np.array(1.0))[0], rtol=1e-15)


def test_gradient_sums_to_zero_per_row():
    rng = np.random.default_rng(3)
    z_stu, z_tea = rng.standard_normal((4, 6)) * 5, rng.standard_normal((4, 6)) * 5
    _, pullback = refimpl.vjp(ramt_distillation_loss, z_stu, z_tea, alpha=0.5, temperature=1.5)
    np.testing.assert_allclose(pullback(np.array(1.0))[0].sum(axis=1), 0.0, atol=1e-15)
