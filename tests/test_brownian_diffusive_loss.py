"""MSBReg Brownian diffusive loss: hand values, the cosine form, the catalog's VJP, symmetries."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.losses import brownian_diffusive_loss


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    return rng.standard_normal((2, 5, 6)) * 3, rng.standard_normal(6)


def test_brownian_diffusive_loss_hand_values():
    # ẑ = e₁, (e₁ + e₂)/√2, e₂ against û = e₂: cosines 0, 1/√2, 1
    z = np.array([[[3.0, 0.0], [1.0, 1.0], [0.0, 0.5]]])
    u = np.array([0.0, 2.0])
    np.testing.assert_allclose(
        brownian_diffusive_loss(z, u, reduction="none"),
        [[0.0, 1 / math.sqrt(2), 1.0]],
        atol=1e-16,
        rtol=1e-15,
    )
    np.testing.assert_allclose(brownian_diffusive_loss(z, u), (1 + 1 / math.sqrt(2)) / 3, rtol=1e-15)


def test_brownian_diffusive_loss_matches_the_third_party_formula(batch):
    # transcription of CentroidDiffusionEMALoss.get_brownian_loss: the mean of
    # F.cosine_similarity(z, normalize(noise)) = ⟨z, u⟩/(‖z‖‖u‖)
    z, u = batch
    cosine = (z @ u) / (np.linalg.norm(z, axis=-1) * np.linalg.norm(u))
    np.testing.assert_allclose(brownian_diffusive_loss(z, u), cosine.mean(), rtol=1e-13)
    np.testing.assert_allclose(brownian_diffusive_loss(z, u, reduction="sum"), cosine.sum(), rtol=1e-13)


def test_brownian_diffusive_loss_is_odd_in_u_and_ignores_lengths(batch):
    z, u = batch
    base = brownian_diffusive_loss(z, u, reduction="none")
    np.testing.assert_allclose(brownian_diffusive_loss(z, -u, reduction="none"), -base, rtol=1e-15)
    np.testing.assert_allclose(brownian_diffusive_loss(z * 1e3, u * 1e-3, reduction="none"), base, rtol=1e-13)
    # the expected force is 0: over the directions ±u the losses cancel
    np.testing.assert_allclose(
        brownian_diffusive_loss(z, u) + brownian_diffusive_loss(z, -u), 0.0, atol=1e-16
    )


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_brownian_diffusive_loss_gradient_is_the_catalog_vjp_projected(batch, backend):
    # catalog: ∂L/∂ẑ = û/(VB) for unit z; through z/‖z‖: (I − ẑẑᵀ)(·)/‖z‖
    z, u = batch
    _, pullback = refimpl.vjp("brownian_diffusive_loss", z, u, backend=backend)
    (g_z,) = pullback(np.array(1.0))
    z_hat, u_hat = _unit(z), _unit(u)
    g_hat = np.broadcast_to(u_hat / (z.shape[0] * z.shape[1]), z.shape)
    expected = (g_hat - z_hat * (z_hat * g_hat).sum(-1, keepdims=True)) / np.linalg.norm(
        z, axis=-1, keepdims=True
    )
    np.testing.assert_allclose(g_z, expected, rtol=1e-11, atol=1e-17)
    np.testing.assert_allclose((g_z * z).sum(axis=-1), 0.0, atol=1e-15)  # the norm is ignored


def test_brownian_diffusive_loss_gradient_step_moves_away_from_u(batch):
    z, u = batch
    loss, pullback = refimpl.vjp(brownian_diffusive_loss, z, u, reduction="none")
    (g_z,) = pullback(np.ones(z.shape[:2]))
    after = brownian_diffusive_loss(
        z - 0.1 * g_z * np.linalg.norm(z, axis=-1, keepdims=True) ** 2, u, reduction="none"
    )
    assert np.all(after < loss)  # every embedding's cosine with û decreases


def test_brownian_diffusive_loss_gradient_vanishes_along_u():
    u = np.array([1.0, -2.0, 2.0])
    z = np.stack([2 * u, -0.5 * u])[None]  # ẑ = ±û
    loss, pullback = refimpl.vjp(brownian_diffusive_loss, z, u, reduction="none")
    np.testing.assert_allclose(loss, [[1.0, -1.0]], rtol=1e-15)
    np.testing.assert_allclose(pullback(np.ones((1, 2)))[0], 0.0, atol=1e-16)


def test_brownian_diffusive_loss_handles_norms_outside_the_float_range(batch):
    z, u = batch
    base = brownian_diffusive_loss(z, u, reduction="none")
    for scale in (1e200, 1e-160):
        np.testing.assert_allclose(
            brownian_diffusive_loss(z * scale, u * scale, reduction="none"), base, rtol=1e-13
        )


def test_brownian_diffusive_loss_refuses_zero_vectors():
    z = np.ones((2, 3, 4))
    with pytest.raises(refimpl.InputError, match=r"'u'.*nonzero norm"):
        brownian_diffusive_loss(z, np.zeros(4))
    z[0, 1] = 0.0
    with pytest.raises(refimpl.InputError, match=r"'z'.*\(0, 1\)"):
        brownian_diffusive_loss(z, np.ones(4))
