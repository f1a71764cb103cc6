"""Advantage-weighted loss: hand values, −Â gradients, its limits, and per-step DPO at π_ref."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.losses import advantage_weighted_loss, mc_step_advantages, per_step_dpo_loss


def test_advantage_weighted_loss_hand_value_and_gradient():
    log_probs = np.log(np.array([0.5, 0.25, 1.0]))
    advantages = np.array([0.25, -0.5, 0.75])
    loss, pullback = refimpl.vjp(advantage_weighted_loss, log_probs, advantages)
    # −(0.25·(−log 2) − 0.5·(−2 log 2) + 0.75·0) = (0.25 − 1) log 2
    np.testing.assert_allclose(loss, -0.75 * math.log(2.0), rtol=1e-15)
    np.testing.assert_array_equal(pullback(np.array(1.0))[0], -advantages)  # ∂L/∂log π = −Â


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_advantage_weighted_loss_reductions_and_cotangents(backend):
    log_probs, advantages = np.array([-1.0, -2.0, -4.0]), np.array([1.0, -0.5, 0.25])
    per_step = np.array([1.0, -1.0, 1.0])  # −Â log π
    op = refimpl.backend(backend).get("advantage_weighted_loss")
    np.testing.assert_array_equal(op(log_probs, advantages, reduction="none"), per_step)
    np.testing.assert_allclose(op(log_probs, advantages, reduction="mean"), 1.0 / 3.0, rtol=1e-15)
    _, pullback = refimpl.vjp(
        "advantage_weighted_loss", log_probs, advantages, reduction="none", backend=backend
    )
    cotangent = np.array([2.0, -1.0, 0.5])
    np.testing.assert_array_equal(pullback(cotangent)[0], -cotangent * advantages)


def test_advantage_weighted_loss_with_unit_advantages_is_the_negative_log_likelihood():
    # imitation of positive data (SFT/RFT) is the special case Â = 1
    log_probs = np.log(np.array([0.9, 0.3, 0.6, 0.05]))
    np.testing.assert_allclose(advantage_weighted_loss(log_probs, np.ones(4)), -log_probs.sum(), rtol=1e-15)
    assert float(advantage_weighted_loss(log_probs, np.zeros(4))) == 0.0


def test_advantage_weighted_loss_descent_raises_helpful_steps_and_lowers_harmful_ones():
    log_probs, advantages = np.array([-1.2, -0.4]), np.array([0.5, -0.5])
    _, pullback = refimpl.vjp(advantage_weighted_loss, log_probs, advantages)
    (g,) = pullback(np.array(1.0))
    step = -0.1 * g  # a gradient-descent step on log π
    assert step[0] > 0 and step[1] < 0
    # the loss is linear: the change is exactly ḡ·step
    change = advantage_weighted_loss(log_probs + step, advantages) - advantage_weighted_loss(
        log_probs, advantages
    )
    np.testing.assert_allclose(change, g @ step, rtol=1e-12)


def test_advantage_weighted_loss_on_monte_carlo_advantages():
    outcomes = np.array([[1, 1, 0, 1], [1, 1, 0, 0], [0, 0, 0, 0]], dtype=bool)
    _, _, advantages, critical = mc_step_advantages(outcomes, v_0=0.5)  # Â = [0.25, −0.25, −0.5]
    log_probs = np.array([-2.0, -0.7, -3.1])
    loss, pullback = refimpl.vjp(advantage_weighted_loss, log_probs, advantages)
    np.testing.assert_allclose(loss, 0.25 * 2.0 - 0.25 * 0.7 - 0.5 * 3.1, rtol=1e-15)
    (g,) = pullback(np.array(1.0))
    assert int(np.argmax(g)) == int(critical)  # the critical step is pushed down hardest


def test_per_step_dpo_at_the_reference_is_advantage_weighted_with_plus_minus_beta_over_two():
    # at π = π_ref, σ(−βΔ) = ½: per-step DPO's gradient in (log π⁺, log π⁻) is that of the
    # advantage-weighted loss with Â = +β/2 on the positive and −β/2 on the negative
    rng = np.random.default_rng(5)
    chosen, rejected, beta = -rng.uniform(1, 40, size=5), -rng.uniform(1, 40, size=5), 0.3
    _, dpo_pullback = refimpl.vjp(
        per_step_dpo_loss, chosen, rejected, chosen, rejected, beta=beta, reduction="sum"
    )
    g_chosen, g_rejected = dpo_pullback(np.array(1.0))
    log_probs = np.concatenate([chosen, rejected])
    advantages = np.concatenate([np.full(5, beta / 2), np.full(5, -beta / 2)])
    _, awl_pullback = refimpl.vjp(advantage_weighted_loss, log_probs, advantages)
    np.testing.assert_allclose(
        np.concatenate([g_chosen, g_rejected]), awl_pullback(np.array(1.0))[0], rtol=1e-15
    )


def test_advantage_weighted_loss_refuses_a_negative_log_likelihood():
    with pytest.raises(refimpl.InputError, match=r"log_probs.*≤ 0.*0\.7 at index 2"):
        advantage_weighted_loss(np.array([-1.0, -0.2, 0.7]), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(refimpl.InputError, match="advantages"):
        advantage_weighted_loss(np.array([-1.0, -0.2]), np.array([0.1, 0.2, 0.3]))
