"""RWS patching: hand values, linearity in α, patch then unpatch, the official squared α and
the gradient in α."""

import numpy as np
import pytest

import refimpl
from refimpl.merging import robust_weight_signature, rws_patch

RNG = np.random.default_rng(2302)
CLEAN = RNG.standard_normal((4, 6))
SIGNATURES = 0.1 * RNG.standard_normal((4, 6, 3))


def test_hand_value():
    signatures = np.stack([np.array([1.0, 0.0]), np.array([0.0, 2.0])], axis=-1)
    np.testing.assert_array_equal(
        rws_patch(np.array([1.0, 1.0]), signatures, np.array([0.5, 0.5])), [1.5, 2.0]
    )
    squared = rws_patch(np.array([1.0, 1.0]), signatures, np.array([0.5, 0.5]), official_squared_alpha=True)
    np.testing.assert_array_equal(squared, [1.25, 1.5])


def test_patch_is_linear_in_alpha():
    alpha, beta = np.array([0.2, 0.5, 1.0]), np.array([-0.3, 0.1, 0.4])
    move = lambda a: rws_patch(CLEAN, SIGNATURES, a) - CLEAN  # noqa: E731
    np.testing.assert_allclose(move(alpha + 2 * beta), move(alpha) + 2 * move(beta), atol=1e-15)
    np.testing.assert_array_equal(rws_patch(CLEAN, SIGNATURES, np.zeros(3)), CLEAN)


def test_patch_then_unpatch_restores_the_clean_model_up_to_rounding():
    alpha = np.full(3, 1 / 3)
    patched = rws_patch(CLEAN, SIGNATURES, alpha)
    restored = rws_patch(patched, SIGNATURES, -alpha)
    np.testing.assert_allclose(restored, CLEAN, rtol=0, atol=4e-16)


def test_patches_compose():
    both = rws_patch(CLEAN, SIGNATURES[..., :2], np.array([0.7, 0.4]))
    one_by_one = rws_patch(
        rws_patch(CLEAN, SIGNATURES[..., :1], np.array([0.7])), SIGNATURES[..., 1:2], np.array([0.4])
    )
    np.testing.assert_allclose(both, one_by_one, atol=1e-15)


def test_official_squared_alpha_equals_the_official_decompose_for_one_signature_at_alpha_one():
    pre = RNG.standard_normal(5)
    clean, robust = pre + RNG.standard_normal(5), pre + RNG.standard_normal(5)
    signature = robust_weight_signature(robust, clean, pre)[:, None]
    paper = rws_patch(clean, signature, np.array([1.0]))
    official = rws_patch(clean, signature, np.array([1.0]), official_squared_alpha=True)
    np.testing.assert_array_equal(paper, official)


@pytest.mark.parametrize("squared", [False, True])
def test_alpha_gradient_is_the_inner_product_with_each_signature(squared):
    alpha = np.array([0.2, -0.5, 0.9])
    g = RNG.standard_normal(CLEAN.shape)
    _, pullback = refimpl.vjp("rws_patch", CLEAN, SIGNATURES, alpha, official_squared_alpha=squared)
    (g_alpha,) = pullback(g)
    expected = np.einsum("ij,ijc->c", g, SIGNATURES) * (2 * alpha if squared else 1)
    np.testing.assert_allclose(g_alpha, expected, rtol=1e-13)


def test_state_dicts_patch_every_tensor():
    clean = {"a": CLEAN, "b": CLEAN[0]}
    signatures = [{"a": SIGNATURES[..., c], "b": SIGNATURES[0, :, c]} for c in range(3)]
    alpha = np.array([0.1, 0.2, 0.3])
    patched = rws_patch(clean, signatures, alpha)
    np.testing.assert_allclose(patched["a"], rws_patch(CLEAN, SIGNATURES, alpha))
    np.testing.assert_allclose(patched["b"], rws_patch(CLEAN[0], SIGNATURES[0], alpha))
