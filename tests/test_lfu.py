"""LfU: the normalized ascent step and the layerwise consistency loss, against the official trainer."""

import numpy as np
import pytest

import refimpl
from refimpl.regularizers import lfu_consistency_loss, lfu_normalized_ascent_step
from refimpl.regularizers.lfu import ALPHA, LAMBDA


def test_official_hyperparameters():
    # run_lora.sh / run_reps.sh: ALPHA_LIST=(0.1); BETA_LIST=(5) and (0.1)
    assert ALPHA == 0.1
    assert LAMBDA == {"lora": 5.0, "reps": 0.1}


def test_ascent_step_matches_the_official_per_tensor_update():
    """training_step transcribed: grad_norm = ‖(‖g_p‖)_p‖, then param += alpha·g_p/grad_norm per tensor."""
    rng = np.random.default_rng(1)
    params = [rng.standard_normal((3, 4)), rng.standard_normal(5), rng.standard_normal((2, 2))]
    grads = [rng.standard_normal(p.shape) for p in params]
    grad_norm = np.linalg.norm(np.stack([np.linalg.norm(g) for g in grads]))
    official = [p + 0.1 * g / grad_norm for p, g in zip(params, grads, strict=True)]
    flat = lfu_normalized_ascent_step(
        np.concatenate([p.ravel() for p in params]), np.concatenate([g.ravel() for g in grads])
    )
    np.testing.assert_allclose(flat, np.concatenate([p.ravel() for p in official]), rtol=1e-14)


def test_ascent_step_has_length_alpha_along_the_gradient():
    rng = np.random.default_rng(2)
    theta, grad = rng.standard_normal(50), rng.standard_normal(50) * 1e3
    step = lfu_normalized_ascent_step(theta, grad, alpha=0.3) - theta
    np.testing.assert_allclose(np.linalg.norm(step), 0.3, rtol=1e-13)
    np.testing.assert_allclose(step @ grad, 0.3 * np.linalg.norm(grad), rtol=1e-13)
    # scale invariance in the gradient, and no overflow where Σg² would
    np.testing.assert_allclose(
        lfu_normalized_ascent_step(theta, grad * 1e200, alpha=0.3) - theta, step, rtol=1e-12
    )


def test_ascent_step_refuses_a_zero_gradient():
    with pytest.raises(refimpl.InputError, match="nonzero gradient"):
        lfu_normalized_ascent_step(np.ones(3), np.zeros(3))


def _official_consistency(perturbed, target, labels):
    """compute_mse_consistency_loss transcribed: per layer F.mse_loss over tokens with
    labels != −100 (every feature), summed over layers and divided by their count."""
    valid = labels != -100
    total, count = 0.0, 0
    for p, t in zip(perturbed, target, strict=True):
        p_flat, t_flat = p[valid], t[valid]
        if p_flat.size == 0:
            continue
        total += np.mean((p_flat - t_flat) ** 2)
        count += 1
    return total / count if count > 0 else 0.0


@pytest.fixture
def states():
    rng = np.random.default_rng(6)
    hidden = rng.standard_normal((4, 2, 5, 3))  # layers, batch, sequence, features
    hidden_aux = hidden + 0.3 * rng.standard_normal(hidden.shape)
    labels = np.array([[-100, -100, 7, 2, 9], [-100, 4, 4, 1, -100]])
    return hidden, hidden_aux, labels


def test_consistency_mean_reduction_matches_the_official_code(states):
    hidden, hidden_aux, labels = states
    layers, batch, sequence, features = hidden.shape
    flat_h = hidden.reshape(layers, batch * sequence, features)
    flat_aux = hidden_aux.reshape(layers, batch * sequence, features)
    mask = (labels != -100).ravel()
    official = _official_consistency(hidden_aux, hidden, labels)
    np.testing.assert_allclose(
        lfu_consistency_loss(flat_h, flat_aux, mask, lam=1.0, layer_reduction="mean"), official, rtol=1e-14
    )
    # the paper's sum over layers is L times the official mean; λ multiplies
    np.testing.assert_allclose(
        lfu_consistency_loss(flat_h, flat_aux, mask, lam=5.0), 5.0 * layers * official, rtol=1e-14
    )
    deviation = refimpl.deviations(lfu_consistency_loss)
    assert [d.name for d in deviation] == ["lfu-consistency-mean-over-layers"]


def test_consistency_gradients_are_opposite_and_vanish_on_masked_tokens(states):
    hidden, hidden_aux, labels = states
    flat_h = hidden.reshape(4, 10, 3)
    flat_aux = hidden_aux.reshape(4, 10, 3)
    mask = (labels != -100).ravel()
    loss, pullback = refimpl.vjp(lfu_consistency_loss, flat_h, flat_aux, mask, lam=2.0)
    g_hidden, g_hidden_aux = pullback(np.array(1.0))
    np.testing.assert_array_equal(g_hidden, -g_hidden_aux)
    np.testing.assert_array_equal(g_hidden_aux[:, ~mask, :], 0.0)
    # 2λ(h_aux − h)/(n·D) with n = 6 valid tokens, D = 3
    np.testing.assert_allclose(g_hidden_aux[:, mask], 2 * 2.0 * (flat_aux - flat_h)[:, mask] / 18, rtol=1e-14)
    # Euler: the loss is quadratic in h_aux − h
    np.testing.assert_allclose(np.sum(g_hidden_aux * (flat_aux - flat_h)), 2 * loss, rtol=1e-13)


def test_consistency_without_valid_tokens_is_zero():
    h = np.ones((2, 3, 2))
    assert lfu_consistency_loss(h, h + 1.0, np.zeros(3, dtype=bool), lam=5.0) == 0.0
    assert _official_consistency(h + 1.0, h, np.full(3, -100)) == 0.0
