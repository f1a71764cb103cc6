"""Robust weight signatures: hand values, orthogonality to the clean task vector, the
official get_projection transcribed, degenerate directions and whole state dicts."""

import numpy as np

from refimpl.merging import robust_weight_signature

RNG = np.random.default_rng(78)
PRE = RNG.standard_normal((6, 5))
CLEAN = PRE + 0.1 * RNG.standard_normal((6, 5))
ROBUST = PRE + 0.5 * (CLEAN - PRE) + 0.1 * RNG.standard_normal((6, 5))


def _official_get_projection(a, param):
    """tools.py get_projection, transcribed: param − (aᵀa/(a aᵀ))·paramᵀ, rows of param."""
    a = a.reshape(1, -1)
    projection_matrix = (a.T @ a) / (a @ a.T)
    return param - (projection_matrix @ param.T).T


def test_hand_value():
    signature = robust_weight_signature(np.array([3.0, 4.0]), np.array([2.0, 0.0]), np.zeros(2))
    np.testing.assert_allclose(signature, [0.0, 4.0], rtol=0, atol=1e-15)


def test_matches_the_official_projection():
    # decompose: Δ = θ_c − θ_pre (weight 1), a = θ_clean − θ_pre, get_projection(a, Δ)
    official = _official_get_projection((CLEAN - PRE).reshape(-1), (ROBUST - PRE).reshape(1, -1))
    np.testing.assert_allclose(
        robust_weight_signature(ROBUST, CLEAN, PRE).reshape(-1), official[0], atol=1e-15
    )


def test_signature_is_orthogonal_to_the_clean_task_vector_and_idempotent():
    signature = robust_weight_signature(ROBUST, CLEAN, PRE)
    clean_move = CLEAN - PRE
    cosine = (signature * clean_move).sum() / np.linalg.norm(signature) / np.linalg.norm(clean_move)
    assert abs(cosine) < 1e-14
    # projecting the signature again changes nothing
    np.testing.assert_allclose(robust_weight_signature(PRE + signature, CLEAN, PRE), signature, atol=1e-15)


def test_parallel_robust_move_has_no_signature_and_orthogonal_is_kept():
    np.testing.assert_allclose(robust_weight_signature(PRE - 3 * (CLEAN - PRE), CLEAN, PRE), 0.0, atol=1e-14)
    other = RNG.standard_normal((6, 5))
    clean_move = CLEAN - PRE
    orthogonal = other - (other * clean_move).sum() / (clean_move**2).sum() * clean_move
    np.testing.assert_allclose(robust_weight_signature(PRE + orthogonal, CLEAN, PRE), orthogonal, atol=1e-14)


def test_unchanged_clean_model_gives_the_task_vector_not_nan():
    signature = robust_weight_signature(ROBUST, PRE, PRE)
    np.testing.assert_allclose(signature, ROBUST - PRE, rtol=1e-15)


def test_scaling_survives_huge_and_tiny_magnitudes():
    expected = robust_weight_signature(ROBUST - PRE, CLEAN - PRE, np.zeros_like(PRE))
    for scale in (1e200, 1e-200):
        signature = robust_weight_signature(scale * (ROBUST - PRE), scale * (CLEAN - PRE), np.zeros_like(PRE))
        np.testing.assert_allclose(signature / scale, expected, rtol=1e-13, atol=1e-15)


def test_state_dicts_give_a_signature_per_tensor():
    robust = {"conv.weight": ROBUST, "conv.bias": ROBUST[0]}
    clean = {"conv.weight": CLEAN, "conv.bias": CLEAN[0]}
    pre = {"conv.weight": PRE, "conv.bias": PRE[0]}
    signatures = robust_weight_signature(robust, clean, pre)
    np.testing.assert_allclose(signatures["conv.weight"], robust_weight_signature(ROBUST, CLEAN, PRE))
    np.testing.assert_allclose(signatures["conv.bias"], robust_weight_signature(ROBUST[0], CLEAN[0], PRE[0]))
