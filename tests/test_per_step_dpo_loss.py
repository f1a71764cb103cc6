"""Per-step DPO: hand values, the DPO formula, log-ratio invariance, saturation, refusals."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.losses import per_step_dpo_loss


@pytest.fixture
def pairs():
    rng = np.random.default_rng(3)
    reference_chosen, reference_rejected = -rng.uniform(5, 80, size=7), -rng.uniform(5, 80, size=7)
    policy_chosen = reference_chosen + rng.normal(0, 2, size=7)
    policy_rejected = reference_rejected + rng.normal(0, 2, size=7)
    return policy_chosen, policy_rejected, reference_chosen, reference_rejected


def test_per_step_dpo_loss_hand_value_and_gradient():
    # Δ = (−1 + 2) − (−3 + 2) = 2, β = 0.5: ℓ = softplus(−1), ḡ± = ∓β σ(−1)
    args = (np.array([-1.0]), np.array([-3.0]), np.array([-2.0]), np.array([-2.0]))
    loss, pullback = refimpl.vjp(per_step_dpo_loss, *args, beta=0.5)
    np.testing.assert_allclose(loss, math.log1p(math.exp(-1.0)), rtol=1e-15)
    g_chosen, g_rejected = pullback(np.array(1.0))
    sigma = 1.0 / (1.0 + math.e)
    np.testing.assert_allclose(g_chosen, [-0.5 * sigma], rtol=1e-15)
    np.testing.assert_allclose(g_rejected, [0.5 * sigma], rtol=1e-15)


def test_per_step_dpo_loss_at_the_reference_is_log_two(pairs):
    chosen, rejected = pairs[0], pairs[1]
    loss, pullback = refimpl.vjp(
        per_step_dpo_loss, chosen, rejected, chosen, rejected, beta=0.4, reduction="none"
    )
    np.testing.assert_array_equal(loss, np.full(7, math.log(2.0)))
    g_chosen, g_rejected = pullback(np.ones(7))
    np.testing.assert_array_equal(g_chosen, np.full(7, -0.2))  # −β σ(0)
    np.testing.assert_array_equal(g_rejected, np.full(7, 0.2))


def test_per_step_dpo_loss_matches_the_dpo_formula(pairs):
    # Rafailov et al. Eq. 7 as usually written: −log σ(β[(π⁺ − π⁻) − (π_ref⁺ − π_ref⁻)])
    policy_chosen, policy_rejected, reference_chosen, reference_rejected = pairs
    beta = 0.3
    logits = (policy_chosen - policy_rejected) - (reference_chosen - reference_rejected)
    expected = -np.log(1.0 / (1.0 + np.exp(-beta * logits)))
    for reduction, reduce in (("none", lambda x: x), ("mean", np.mean), ("sum", np.sum)):
        np.testing.assert_allclose(
            per_step_dpo_loss(*pairs, beta=beta, reduction=reduction), reduce(expected), rtol=1e-12
        )
    # its gradient: −β σ(−βΔ) w on the chosen side, at a non-uniform cotangent
    cotangent = np.linspace(-1.0, 2.0, 7)
    _, pullback = refimpl.vjp(per_step_dpo_loss, *pairs, beta=beta, reduction="none")
    g_chosen, g_rejected = pullback(cotangent)
    expected_chosen = -beta * cotangent / (1.0 + np.exp(beta * logits))
    np.testing.assert_allclose(g_chosen, expected_chosen, rtol=1e-12)
    np.testing.assert_array_equal(g_rejected, -g_chosen)


def test_per_step_dpo_loss_depends_only_on_the_log_ratios(pairs):
    policy_chosen, policy_rejected, reference_chosen, reference_rejected = pairs
    base = per_step_dpo_loss(*pairs, beta=0.7, reduction="none")
    # a constant added to a sequence's log-prob under both models (e.g. a shared prefix) cancels
    shifted = per_step_dpo_loss(
        policy_chosen - 3.0,
        policy_rejected - 11.0,
        reference_chosen - 3.0,
        reference_rejected - 11.0,
        beta=0.7,
        reduction="none",
    )
    np.testing.assert_allclose(shifted, base, rtol=1e-12)


def test_per_step_dpo_loss_swapping_the_pair_flips_the_margin(pairs):
    policy_chosen, policy_rejected, reference_chosen, reference_rejected = pairs
    beta = 0.5
    forward = per_step_dpo_loss(*pairs, beta=beta, reduction="none")
    swapped = per_step_dpo_loss(
        policy_rejected, policy_chosen, reference_rejected, reference_chosen, beta=beta, reduction="none"
    )
    margin = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)
    # softplus(−x) − softplus(x) = −x
    np.testing.assert_allclose(forward - swapped, -beta * margin, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_per_step_dpo_loss_saturates_without_overflow(backend):
    # Δ = ±80, β = 10: βΔ = ±800 (exp(800) overflows float64)
    chosen, rejected = np.array([-5.0]), np.array([-9.0])
    loss, pullback = refimpl.vjp(
        "per_step_dpo_loss", chosen - 40.0, rejected, chosen, rejected - 40.0, beta=10.0, backend=backend
    )
    np.testing.assert_allclose(loss, 800.0, rtol=1e-15)  # ℓ = −βΔ + log1p(e⁻⁸⁰⁰)
    g_chosen, g_rejected = pullback(np.array(1.0))
    np.testing.assert_allclose(g_chosen, [-10.0], rtol=1e-15)  # −β σ(800) = −β
    np.testing.assert_allclose(g_rejected, [10.0], rtol=1e-15)
    loss, pullback = refimpl.vjp(
        "per_step_dpo_loss", chosen, rejected - 40.0, chosen - 40.0, rejected, beta=10.0, backend=backend
    )
    assert 0.0 <= float(loss) < 1e-300
    assert np.all(np.isfinite(pullback(np.array(1.0))[0]))


def test_per_step_dpo_loss_numba_matches_reference_in_float32(pairs):
    args = tuple(a.astype(np.float32) for a in pairs)
    reference = per_step_dpo_loss(*args, beta=0.2, reduction="none")
    fast = refimpl.backend("numba").get("per_step_dpo_loss")(*args, beta=0.2, reduction="none")
    assert fast.dtype == np.float32
    np.testing.assert_allclose(fast, reference, rtol=1e-5)


def test_per_step_dpo_loss_refuses_a_negative_log_likelihood():
    good = np.array([-1.0, -2.0])
    with pytest.raises(refimpl.InputError, match=r"policy_rejected_logps.*negative log-likelihood.*index 0"):
        per_step_dpo_loss(good, np.array([1.5, -1.0]), good, good, beta=0.1)


def test_per_step_dpo_loss_beta_is_required_and_positive():
    good = np.array([-1.0])
    with pytest.raises(refimpl.InputError, match="missing a required argument: 'beta'"):
        per_step_dpo_loss(good, good, good, good)
    with pytest.raises(refimpl.InputError, match="beta"):
        per_step_dpo_loss(good, good, good, good, beta=0.0)
