"""Output-space ensemble: hand values, endpoints, identical members, the log-space stability
and the responsibilities as the VJP."""

import numpy as np
import pytest

import refimpl
from refimpl.merging import output_space_ensemble

RNG = np.random.default_rng(219)


def _log_softmax(z, axis):
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


LOG_PROBS = _log_softmax(RNG.standard_normal((3, 5, 2)) * 2, axis=1)  # (batch, classes, K = 2)


def test_uniform_mean_matches_hand_value():
    log_probs = np.log(np.array([[[0.2, 0.6], [0.8, 0.4]]]))
    np.testing.assert_allclose(np.exp(output_space_ensemble(log_probs)), [[0.4, 0.6]], rtol=1e-15)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_two_model_ensemble_is_the_probability_interpolation(alpha):
    p_pre, p_ft = np.exp(LOG_PROBS[..., 0]), np.exp(LOG_PROBS[..., 1])
    log_mean = output_space_ensemble(LOG_PROBS, np.array([1 - alpha, alpha]))
    np.testing.assert_allclose(np.exp(log_mean), (1 - alpha) * p_pre + alpha * p_ft, rtol=1e-14)
    if alpha in (0.0, 1.0):  # the endpoints give the member itself
        np.testing.assert_allclose(log_mean, LOG_PROBS[..., int(alpha)], rtol=1e-15, atol=1e-15)


def test_identical_members_give_the_member_and_normalized_mixture():
    member = LOG_PROBS[..., :1]
    log_mean = output_space_ensemble(np.repeat(member, 4, axis=-1))
    np.testing.assert_allclose(log_mean, member[..., 0], atol=1e-15)
    np.testing.assert_allclose(np.exp(output_space_ensemble(LOG_PROBS)).sum(axis=1), 1.0, rtol=1e-14)


def test_log_space_survives_probabilities_that_underflow():
    # p = exp(−800) underflows to 0; log p̄ = −800 + log((1 + e)/2) exactly
    log_probs = np.array([[-800.0, -799.0]])
    expected = -800.0 + np.log((1 + np.e) / 2)
    np.testing.assert_allclose(output_space_ensemble(log_probs), [expected], rtol=1e-15)


def test_vjp_is_the_responsibilities():
    weights = np.array([0.25, 0.75])
    g = RNG.standard_normal(LOG_PROBS.shape[:-1])
    _, pullback = refimpl.vjp("output_space_ensemble", LOG_PROBS, weights)
    (g_log_probs,) = pullback(g)
    p = np.exp(LOG_PROBS)
    p_bar = (p * weights).sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(g_log_probs, weights * p / p_bar * g[..., None], rtol=1e-13)
    np.testing.assert_allclose(g_log_probs.sum(axis=-1), g, rtol=1e-13)  # responsibilities sum to 1
