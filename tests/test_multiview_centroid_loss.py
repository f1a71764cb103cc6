"""MSBReg multiview centroid loss: hand values, the chord form, the catalog's VJP, scale invariance."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.losses import multiview_centroid_loss


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture
def views():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((5, 6))
    z = base + 0.7 * rng.standard_normal((3, 5, 6))  # V = 3 views of B = 5 images
    target = base + 0.7 * rng.standard_normal((2, 5, 6))  # the EMA branch's views
    return z, target


def test_multiview_centroid_loss_hand_values():
    # views e₁, (e₁ + e₂)/√2, −e₁ against the centroid e₁: 2 − 2cos = 0, 2 − √2, 4
    z = np.array([[[2.0, 0.0]], [[1.0, 1.0]], [[-5.0, 0.0]]])
    c = np.array([[7.0, 0.0]])
    np.testing.assert_allclose(
        multiview_centroid_loss(z, c, reduction="none"), [[0.0], [2.0 - math.sqrt(2.0)], [4.0]], rtol=1e-15
    )
    np.testing.assert_allclose(multiview_centroid_loss(z, c), (6.0 - math.sqrt(2.0)) / 3, rtol=1e-15)
    np.testing.assert_allclose(
        multiview_centroid_loss(z, c, reduction="sum"), 6.0 - math.sqrt(2.0), rtol=1e-15
    )


def test_multiview_centroid_loss_matches_the_third_party_formula(views):
    # transcription of CentroidDiffusionEMALoss.get_centroid_loss (per image):
    # c = normalize(mean of the target projections), d = 2 − 2⟨normalize(z), c⟩, mean
    z, target = views
    c = target.mean(axis=0)
    expected = (2 - 2 * (_unit(z) * _unit(c)[None]).sum(axis=-1)).mean()
    np.testing.assert_allclose(multiview_centroid_loss(z, c), expected, rtol=1e-13)
    # the centroid's length does not matter: only its direction
    np.testing.assert_allclose(multiview_centroid_loss(z, 9.0 * _unit(c)), expected, rtol=1e-13)


def test_multiview_centroid_loss_is_invariant_to_the_scale_of_each_embedding(views):
    z, target = views
    c = target.mean(axis=0)
    scales = np.random.default_rng(1).uniform(1e-3, 1e3, size=z.shape[:2] + (1,))
    np.testing.assert_allclose(
        multiview_centroid_loss(z * scales, c, reduction="none"),
        multiview_centroid_loss(z, c, reduction="none"),
        rtol=1e-13,
    )


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_multiview_centroid_loss_gradient_is_the_catalog_vjp_projected(views, backend):
    # catalog: ∂L/∂ẑ_vb = −2ĉ_b/(VB) for unit z; through z/‖z‖: (I − ẑẑᵀ)(·)/‖z‖
    z, target = views
    c = target.mean(axis=0)
    _, pullback = refimpl.vjp("multiview_centroid_loss", z, c, backend=backend)
    (g_z,) = pullback(np.array(1.0))
    v, b = z.shape[:2]
    z_hat, c_hat = _unit(z), _unit(c)[None]
    g_hat = -2 * c_hat / (v * b) * np.ones_like(z)
    expected = (g_hat - z_hat * (z_hat * g_hat).sum(-1, keepdims=True)) / np.linalg.norm(
        z, axis=-1, keepdims=True
    )
    np.testing.assert_allclose(g_z, expected, rtol=1e-11, atol=1e-16)
    np.testing.assert_allclose((g_z * z).sum(axis=-1), 0.0, atol=1e-15)  # the norm is ignored


def test_multiview_centroid_loss_gradient_vanishes_at_and_opposite_the_centroid():
    c = np.array([[0.6, 0.8], [1.0, 0.0]])
    z = np.stack([3 * c, -2 * c])  # ẑ = ĉ (the minimum, ℓ = 0) and ẑ = −ĉ (the maximum, ℓ = 4)
    loss, pullback = refimpl.vjp(multiview_centroid_loss, z, c, reduction="none")
    np.testing.assert_allclose(loss, [[0.0, 0.0], [4.0, 4.0]], atol=1e-15)
    np.testing.assert_allclose(pullback(np.ones((2, 2)))[0], 0.0, atol=1e-15)


def test_multiview_centroid_loss_gradient_step_pulls_views_toward_the_centroid(views):
    z, target = views
    c = target.mean(axis=0)
    loss, pullback = refimpl.vjp(multiview_centroid_loss, z, c)
    (g_z,) = pullback(np.array(1.0))
    cos_before = (_unit(z) * _unit(c)).sum(-1)
    cos_after = (_unit(z - 0.5 * g_z) * _unit(c)).sum(-1)
    assert np.all(cos_after > cos_before)
    assert multiview_centroid_loss(z - 0.5 * g_z, c) < loss


def test_multiview_centroid_loss_keeps_digits_near_convergence_in_float32():
    rng = np.random.default_rng(2)
    c = _unit(rng.standard_normal((4, 8)))
    z = c[None] + 1e-3 * rng.standard_normal((2, 4, 8))  # ℓ ≈ 1e-6 per term
    exact = multiview_centroid_loss(z, c, reduction="none")
    single = multiview_centroid_loss(z.astype(np.float32), c.astype(np.float32), reduction="none")
    assert single.dtype == np.float32
    # ‖ẑ − ĉ‖² keeps ~3 digits where 2 − 2⟨ẑ, ĉ⟩ in float32 would be off by ~1e-7/1e-6 = 10 %
    np.testing.assert_allclose(single, exact, rtol=1e-3)
    naive = 2 - 2 * (_unit(z.astype(np.float32)) * c.astype(np.float32)[None]).sum(-1)
    assert np.max(np.abs(naive - exact) / exact) > 1e-2  # the cancelling form is visibly worse


def test_multiview_centroid_loss_handles_norms_outside_the_float_range():
    rng = np.random.default_rng(3)
    z, c = rng.standard_normal((2, 3, 4)), rng.standard_normal((3, 4))
    base = multiview_centroid_loss(z, c, reduction="none")
    for scale in (1e200, 1e-160):
        np.testing.assert_allclose(
            multiview_centroid_loss(z * scale, c * scale, reduction="none"), base, rtol=1e-13
        )


def test_multiview_centroid_loss_refuses_zero_vectors():
    z, c = np.ones((2, 3, 4)), np.ones((3, 4))
    z[1, 2] = 0.0
    with pytest.raises(refimpl.InputError, match=r"'z'.*nonzero norm.*\(1, 2\)"):
        multiview_centroid_loss(z, c)
    c[0] = 0.0
    with pytest.raises(refimpl.InputError, match="'c'"):
        multiview_centroid_loss(np.ones((2, 3, 4)), c)
