"""Householder activation: hand values, the boundary, orthogonality of the Jacobian,
gradient-norm preservation and the SOC code's parameterization."""

import numpy as np
import pytest

import refimpl
from refimpl.layers import householder_activation


def _unit(rng, d):
    v = rng.standard_normal(d)
    return v / np.linalg.norm(v)


def test_householder_hand_values():
    v = np.array([0.6, 0.8])
    y, pullback = refimpl.vjp(householder_activation, np.array([[1.0, 1.0], [-1.0, 0.5]]), v)
    # row 2: s = −0.2, y = z + 0.4 v
    np.testing.assert_allclose(y, [[1.0, 1.0], [-0.76, 0.82]], rtol=1e-15)
    g_z, g_v = pullback(np.ones((2, 2)))
    np.testing.assert_allclose(g_z, [[1.0, 1.0], [1.0 - 2.8 * 0.6, 1.0 - 2.8 * 0.8]], rtol=1e-14)
    np.testing.assert_allclose(g_v, [3.2, -1.0], rtol=1e-14)


def test_householder_is_continuous_across_the_hyperplane():
    rng = np.random.default_rng(0)
    v = _unit(rng, 4)
    z = rng.standard_normal(4)
    z -= (z @ v) * v  # vᵀz = 0
    for t in (-1e-9, 0.0, 1e-9):
        np.testing.assert_allclose(householder_activation(z + t * v, v), z, atol=3e-9)


def test_householder_jacobian_is_orthogonal_and_preserves_the_gradient_norm():
    rng = np.random.default_rng(1)
    v = _unit(rng, 6)
    z, g_y = rng.standard_normal((40, 6)), rng.standard_normal((40, 6))
    assert (z @ v > 0).any() and (z @ v <= 0).any()
    _, pullback = refimpl.vjp(householder_activation, z, v)
    g_z, _ = pullback(g_y)
    np.testing.assert_allclose(np.linalg.norm(g_z, axis=-1), np.linalg.norm(g_y, axis=-1), rtol=1e-14)
    jacobian = np.stack([pullback(np.eye(6)[None, k].repeat(40, 0))[0] for k in range(6)], axis=1)
    gram = np.einsum("bij,bkj->bik", jacobian, jacobian)
    np.testing.assert_allclose(gram, np.broadcast_to(np.eye(6), gram.shape), atol=1e-14)


def test_householder_is_one_lipschitz():
    rng = np.random.default_rng(2)
    v = _unit(rng, 5)
    z, z2 = rng.standard_normal((200, 5)), rng.standard_normal((200, 5))
    distance = np.linalg.norm(householder_activation(z, v) - householder_activation(z2, v), axis=-1)
    assert np.all(distance <= np.linalg.norm(z - z2, axis=-1) + 1e-12)


def test_householder_matches_the_soc_code_with_v_negated():
    # singlasahil14/SOC HouseHolder.forward (transcribed): selector = x sin(θ/2) − y cos(θ/2);
    # (a, b) = (x, y) where selector <= 0, else (x cos θ + y sin θ, x sin θ − y cos θ)
    theta = 0.7
    rng = np.random.default_rng(3)
    z = rng.standard_normal((50, 2))
    x, y = z[:, 0], z[:, 1]
    selector = x * np.sin(theta / 2) - y * np.cos(theta / 2)
    a = np.where(selector <= 0, x, x * np.cos(theta) + y * np.sin(theta))
    b = np.where(selector <= 0, y, x * np.sin(theta) - y * np.cos(theta))
    v = -np.array([np.sin(theta / 2), -np.cos(theta / 2)])
    np.testing.assert_allclose(householder_activation(z, v), np.stack([a, b], axis=1), atol=1e-15)


def test_householder_refuses_a_v_that_is_not_a_unit_vector():
    with pytest.raises(refimpl.InputError, match="unit vector"):
        householder_activation(np.ones((2, 3)), np.array([1.0, 1.0, 0.0]))
