"""Feature distillation: hand values, batchmean vs mean (a factor of the feature size),
the gradient 2(h_new − h_old)/c, tokens, and the co-author's code form MSELoss(...).mean()."""

import numpy as np
import pytest

import refimpl
from refimpl.regularizers import feature_distillation_loss

BACKENDS = ["numpy", "numba", "cupy[host]"]


def _backend(name):
    if name == "cupy[host]":
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


def _features(seed, shape=(64, 384)):
    rng = np.random.default_rng(seed)
    h_old = rng.standard_normal(shape)
    return h_old + 0.2 * rng.standard_normal(shape), h_old


def test_feature_distillation_loss_hand_computed_values():
    h_new, h_old = np.array([[1.0, 2.0], [0.0, 0.0]]), np.array([[1.0, 0.0], [3.0, 0.0]])
    assert float(feature_distillation_loss(h_new, h_old)) == 6.5  # (4 + 9)/2
    assert float(feature_distillation_loss(h_new, h_old, reduction="mean")) == 3.25  # 13/4
    assert float(feature_distillation_loss(h_old, h_old)) == 0.0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduction", ["batchmean", "mean"])
def test_feature_distillation_loss_value_and_gradient_match_the_formula(backend, reduction):
    h_new, h_old = _features(0)
    count = 64 if reduction == "batchmean" else 64 * 384
    loss, pullback = refimpl.vjp(
        "feature_distillation_loss", h_new, h_old, reduction=reduction, backend=_backend(backend)
    )
    (g_new,) = pullback(np.array(2.5))
    difference = h_new - h_old
    np.testing.assert_allclose(loss, np.sum(difference**2) / count, rtol=1e-13)
    np.testing.assert_allclose(g_new, 2.5 * 2 * difference / count, rtol=1e-14)


def test_feature_distillation_loss_is_the_mean_squared_distance_per_sample():
    h_new, h_old = _features(1, (5, 3, 8))  # tokens: the batch is the first axis only
    per_sample = np.sum((h_new - h_old) ** 2, axis=(1, 2))
    np.testing.assert_allclose(feature_distillation_loss(h_new, h_old), per_sample.mean(), rtol=1e-14)
    np.testing.assert_allclose(
        feature_distillation_loss(h_new, h_old) / feature_distillation_loss(h_new, h_old, reduction="mean"),
        3 * 8,
        rtol=1e-14,
    )


def test_feature_distillation_loss_mean_matches_the_coauthors_code():
    # shaunak27/data-free-continual-learning, learners/kd.py, LWF_MC_FEATKD.update_model:
    # MSELoss(reduction='none')(feat, target_feat).mean(), transcribed
    h_new, h_old = _features(2, (16, 32))
    code = np.mean((h_new - h_old) ** 2)
    np.testing.assert_allclose(feature_distillation_loss(h_new, h_old, reduction="mean"), code, rtol=1e-14)


def test_feature_distillation_loss_batchmean_needs_a_batch_axis():
    with pytest.raises(refimpl.InputError, match="batch axis"):
        feature_distillation_loss(np.zeros(3), np.ones(3))
    assert float(feature_distillation_loss(np.zeros(3), np.ones(3), reduction="mean")) == 1.0
