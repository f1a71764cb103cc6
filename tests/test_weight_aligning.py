"""Weight Aligning: known values, PyCIL's and the original code's rules, idempotence, scaling,
and weight clipping."""

import numpy as np
import pytest
import torch

import refimpl
from refimpl.other import wa_weight_clipping, weight_aligning


def _pycil_weight_align(weights, increment):
    """PyCIL's ``weight_align`` (utils/inc_net.py), transcribed in torch."""
    weights = torch.from_numpy(weights.copy())
    newnorm = torch.norm(weights[-increment:, :], p=2, dim=1)
    oldnorm = torch.norm(weights[:-increment, :], p=2, dim=1)
    gamma = torch.mean(oldnorm) / torch.mean(newnorm)
    weights[-increment:, :] *= gamma
    return weights.numpy(), float(gamma)


def _original_alpha(weights, num_old):
    """The original code's NCS factor (iLearn.py): ℓ1 norms (--norm 1), clamped to 1."""
    w_norm = torch.norm(torch.from_numpy(weights), p=1, dim=1)
    alpha = torch.mean(w_norm[:num_old]) / torch.mean(w_norm[num_old:])
    return float(alpha.clamp_(max=1.0))


def test_weight_aligning_known_value():
    aligned, gamma = weight_aligning(np.array([[3.0, 4.0], [0.0, 10.0]]), num_old=1)
    assert float(gamma) == 0.5
    np.testing.assert_array_equal(aligned, [[3.0, 4.0], [0.0, 5.0]])


def test_weight_aligning_matches_pycil_and_leaves_old_rows_alone():
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((10, 16))
    weight[6:] *= 3.0
    aligned, gamma = weight_aligning(weight, num_old=6)
    expected, expected_gamma = _pycil_weight_align(weight, 4)
    np.testing.assert_allclose(aligned, expected, rtol=1e-14)
    np.testing.assert_allclose(gamma, expected_gamma, rtol=1e-14)
    np.testing.assert_array_equal(aligned[:6], weight[:6])
    assert 0.25 < float(gamma) < 0.4  # the new rows were ~3x longer


def test_weight_aligning_official_uses_l1_norms_clamped_to_one():
    rng = np.random.default_rng(1)
    weight = np.abs(rng.standard_normal((8, 5)))  # clipped weights, as the original trains them
    weight[5:] *= 2.0
    aligned, gamma = weight_aligning(weight, num_old=5, official=True)
    np.testing.assert_allclose(gamma, _original_alpha(weight, 5), rtol=1e-14)
    np.testing.assert_allclose(aligned[5:], weight[5:] * float(gamma), rtol=1e-15)
    # new rows shorter than the old ones: the original code leaves them (γ clamped at 1), PyCIL enlarges
    short = weight.copy()
    short[5:] *= 0.1
    _, gamma_official = weight_aligning(short, num_old=5, official=True)
    _, gamma_pycil = weight_aligning(short, num_old=5)
    assert float(gamma_official) == 1.0 and float(gamma_pycil) > 1.0


def test_weight_aligning_is_idempotent_and_scale_equivariant():
    rng = np.random.default_rng(2)
    weight = rng.standard_normal((7, 4)) * np.array([1, 1, 1, 1, 5, 5, 5])[:, None]
    once, _ = weight_aligning(weight, num_old=4)
    twice, gamma_again = weight_aligning(once, num_old=4)
    np.testing.assert_allclose(gamma_again, 1.0, rtol=1e-14)  # PyCIL aligns twice per task: harmless
    np.testing.assert_allclose(twice, once, rtol=1e-14)
    scaled, gamma_scaled = weight_aligning(3.5 * weight, num_old=4)
    np.testing.assert_allclose(scaled, 3.5 * once, rtol=1e-14)
    _, gamma = weight_aligning(weight, num_old=4)
    np.testing.assert_allclose(gamma_scaled, gamma, rtol=1e-14)


def test_weight_aligning_refuses_zero_new_rows_and_no_new_class():
    weight = np.array([[1.0, 2.0], [0.0, 0.0]])
    with pytest.raises(refimpl.InputError, match="all zero"):
        weight_aligning(weight, num_old=1)
    with pytest.raises(refimpl.InputError, match="at least one new class"):
        weight_aligning(weight, num_old=2)


def test_wa_weight_clipping_matches_clamp():
    rng = np.random.default_rng(3)
    weight = rng.standard_normal((5, 6))
    clipped = wa_weight_clipping(weight)
    np.testing.assert_array_equal(clipped, torch.from_numpy(weight).clamp_(0).numpy())
    assert np.all(clipped >= 0) and np.array_equal(clipped[weight > 0], weight[weight > 0])
    assert clipped.dtype == np.float64
    assert wa_weight_clipping(weight.astype(np.float32)).dtype == np.float32
