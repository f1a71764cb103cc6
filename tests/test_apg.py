"""Adaptive projected guidance: CFG as a special case, the projection, the norm cap, the
momentum state, and the diffusers variant."""

import numpy as np
import pytest

import refimpl
from refimpl.other import adaptive_projected_guidance as apg

NO_EXTRAS = {"norm_threshold": 0.0, "momentum": 0.0}


@pytest.fixture
def predictions():
    rng = np.random.default_rng(0)
    d_c = rng.standard_normal((3, 4, 5, 5))
    d_u = d_c + 0.7 * rng.standard_normal((3, 4, 5, 5))
    return d_c, d_u


def _parallel(delta, d_c):
    """Δ_∥ per sample, by hand: (⟨Δ, D_c⟩/‖D_c‖²)·D_c."""
    b = d_c.shape[0]
    flat_delta, flat_cond = delta.reshape(b, -1), d_c.reshape(b, -1)
    coefficient = (flat_delta * flat_cond).sum(axis=1) / (flat_cond * flat_cond).sum(axis=1)
    return (coefficient[:, None] * flat_cond).reshape(d_c.shape)


def test_apg_known_value():
    guided, state = apg(
        np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]), guidance_scale=3.0, eta=0.0, **NO_EXTRAS
    )
    np.testing.assert_array_equal(guided, [[1.0, -2.0]])  # D_c + 2·Δ_⊥, Δ_⊥ = (0, −1)
    np.testing.assert_array_equal(state, [[1.0, -1.0]])  # run' = Δ


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_apg_with_eta_one_and_no_rescaling_or_momentum_is_classifier_free_guidance(predictions, backend):
    d_c, d_u = predictions
    call = refimpl.backend(backend).get("adaptive_projected_guidance")
    guided, _ = call(d_c, d_u, guidance_scale=7.5, eta=1.0, **NO_EXTRAS)
    np.testing.assert_allclose(guided, d_c + 6.5 * (d_c - d_u), rtol=1e-13, atol=1e-13)


def test_apg_orthogonal_part_is_orthogonal_to_the_conditional_prediction(predictions):
    d_c, d_u = predictions
    guided, _ = apg(d_c, d_u, guidance_scale=5.0, eta=0.0, **NO_EXTRAS)
    delta_perp = (guided - d_c) / 4.0
    inner = (delta_perp * d_c).reshape(3, -1).sum(axis=1)
    assert np.all(np.abs(inner) < 1e-12 * np.linalg.norm(d_c.reshape(3, -1), axis=1) ** 2)
    # and Δ_⊥ = Δ − Δ_∥ with Δ_∥ computed by hand
    delta = d_c - d_u
    np.testing.assert_allclose(delta_perp, delta - _parallel(delta, d_c), rtol=1e-12, atol=1e-13)


def test_apg_eta_scales_the_parallel_component_linearly(predictions):
    d_c, d_u = predictions
    w = 4.0
    at_zero, _ = apg(d_c, d_u, guidance_scale=w, eta=0.0, **NO_EXTRAS)
    at_eta, _ = apg(d_c, d_u, guidance_scale=w, eta=0.3, **NO_EXTRAS)
    np.testing.assert_allclose(at_eta - at_zero, (w - 1) * 0.3 * _parallel(d_c - d_u, d_c), atol=1e-12)


def test_apg_norm_cap_limits_the_update_but_not_the_state(predictions):
    d_c, d_u = predictions
    r = 0.5
    guided, state = apg(d_c, d_u, guidance_scale=3.0, eta=1.0, norm_threshold=r, momentum=0.0)
    update_norms = np.linalg.norm(((guided - d_c) / 2.0).reshape(3, -1), axis=1)
    np.testing.assert_allclose(update_norms, r, rtol=1e-12)  # every ‖Δ‖ is far above 0.5
    np.testing.assert_array_equal(state, d_c - d_u)  # the state keeps the unscaled Δ
    # a cap above every ‖Δ‖ changes nothing
    loose, _ = apg(d_c, d_u, guidance_scale=3.0, eta=1.0, norm_threshold=1e6, momentum=0.0)
    np.testing.assert_allclose(loose, d_c + 2.0 * (d_c - d_u), rtol=1e-13, atol=1e-13)


def test_apg_momentum_two_steps_by_hand_and_reset_between_prompts(predictions):
    d_c, d_u = predictions
    beta, w = -0.5, 3.0
    _, state1 = apg(d_c, d_u, guidance_scale=w, eta=1.0, norm_threshold=0.0, momentum=beta)
    np.testing.assert_array_equal(state1, d_c - d_u)  # run starts at 0
    d_c2, d_u2 = 0.8 * d_c, 1.1 * d_u
    guided2, state2 = apg(d_c2, d_u2, state1, guidance_scale=w, eta=1.0, norm_threshold=0.0, momentum=beta)
    expected_state = (d_c2 - d_u2) + beta * (d_c - d_u)
    np.testing.assert_allclose(state2, expected_state, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(guided2, d_c2 + (w - 1) * expected_state, rtol=1e-13, atol=1e-13)
    # a new prompt starts from no state: None is the same as zeros
    fresh, fresh_state = apg(d_c2, d_u2, guidance_scale=w, eta=0.0, norm_threshold=2.0, momentum=beta)
    zeros, zeros_state = apg(
        d_c2, d_u2, np.zeros_like(d_c2), guidance_scale=w, eta=0.0, norm_threshold=2.0, momentum=beta
    )
    np.testing.assert_array_equal(fresh, zeros)
    np.testing.assert_array_equal(fresh_state, zeros_state)


def test_apg_zero_conditional_prediction_has_no_parallel_component():
    d_c = np.zeros((1, 3))
    d_u = np.array([[1.0, -2.0, 0.5]])
    guided, _ = apg(d_c, d_u, guidance_scale=4.0, eta=0.0, **NO_EXTRAS)
    np.testing.assert_array_equal(guided, 3.0 * (d_c - d_u))  # Δ_∥ = 0: D = D_c + (w − 1)Δ


def test_apg_diffusers_variant_keeps_a_minus_parallel_term_at_eta_zero(predictions):
    d_c, d_u = predictions
    w = 6.0
    paper, _ = apg(d_c, d_u, guidance_scale=w, eta=0.0, **NO_EXTRAS)
    diffusers, _ = apg(d_c, d_u, guidance_scale=w, eta=0.0, formulation="diffusers", **NO_EXTRAS)
    parallel = _parallel(d_c - d_u, d_c)
    # D_u + w·Δ_⊥ = D_c + (w − 1)Δ_⊥ − Δ_∥: the difference from the paper is −Δ_∥
    np.testing.assert_allclose(diffusers - paper, -parallel, atol=1e-12)
    assert np.isclose(np.abs(diffusers - paper).max(), np.abs(parallel).max(), rtol=1e-12)
    # at η = 1 without rescaling or momentum both are CFG
    paper1, _ = apg(d_c, d_u, guidance_scale=w, eta=1.0, **NO_EXTRAS)
    diffusers1, _ = apg(d_c, d_u, guidance_scale=w, eta=1.0, formulation="diffusers", **NO_EXTRAS)
    np.testing.assert_allclose(diffusers1, paper1, rtol=1e-12, atol=1e-12)


def test_apg_float32_keeps_its_dtype_and_agrees_with_float64(predictions):
    d_c, d_u = predictions
    kwargs = {"guidance_scale": 10.0, "eta": 0.0, "norm_threshold": 15.0, "momentum": -0.5}
    guided32, state32 = apg(d_c.astype(np.float32), d_u.astype(np.float32), **kwargs)
    guided64, _ = apg(d_c, d_u, **kwargs)
    assert guided32.dtype == state32.dtype == np.float32
    np.testing.assert_allclose(guided32, guided64, rtol=1e-4, atol=1e-4)


def test_apg_requires_the_unpinned_settings_and_a_batch_axis():
    d = np.ones((1, 2))
    with pytest.raises(refimpl.InputError, match="'eta'"):
        apg(d, d, guidance_scale=3.0, norm_threshold=0.0, momentum=0.0)
    with pytest.raises(refimpl.InputError, match="'norm_threshold'"):
        apg(d, d, guidance_scale=3.0, eta=0.0, momentum=0.0, norm_threshold=-1.0)
    with pytest.raises(refimpl.InputError, match="first axis is the batch"):
        apg(np.array(1.0), np.array(0.0), guidance_scale=3.0, eta=0.0, **NO_EXTRAS)


# -- huggingface/diffusers' guider, transcribed (src/diffusers/guiders/adaptive_projected_guidance.py) ---
class _MomentumBuffer:
    def __init__(self, momentum):
        self.momentum = momentum
        self.running_average = 0

    def update(self, update_value):
        new_average = self.momentum * self.running_average
        self.running_average = update_value + new_average


def _diffusers_normalized_guidance(
    pred_cond, pred_uncond, guidance_scale, momentum_buffer, eta, norm_threshold, use_original_formulation
):
    import torch

    diff = pred_cond - pred_uncond
    dim = [-i for i in range(1, len(diff.shape))]
    if momentum_buffer is not None:
        momentum_buffer.update(diff)
        diff = momentum_buffer.running_average
    if norm_threshold > 0:
        diff_norm = diff.norm(p=2, dim=dim, keepdim=True)
        diff = diff * torch.minimum(torch.ones_like(diff), norm_threshold / diff_norm)
    v0, v1 = diff.double(), torch.nn.functional.normalize(pred_cond.double(), dim=dim)
    v0_parallel = (v0 * v1).sum(dim=dim, keepdim=True) * v1
    v0_orthogonal = v0 - v0_parallel
    normalized_update = v0_orthogonal.type_as(diff) + eta * v0_parallel.type_as(diff)
    pred = pred_cond if use_original_formulation else pred_uncond
    return pred + guidance_scale * normalized_update


@pytest.mark.parametrize("formulation", ["diffusers", "original"])
def test_apg_matches_the_diffusers_guider_over_three_steps(predictions, formulation):
    import torch

    d_c, d_u = predictions
    w, eta, r, beta = 7.5, 0.3, 4.0, -0.5
    buffer = _MomentumBuffer(beta)
    state = None
    for step in range(3):
        cond, uncond = d_c * (1 + 0.2 * step), d_u - 0.1 * step
        expected = _diffusers_normalized_guidance(
            torch.from_numpy(cond), torch.from_numpy(uncond), w, buffer, eta, r, formulation == "original"
        ).numpy()
        if formulation == "diffusers":
            kwargs = {"guidance_scale": w, "formulation": "diffusers"}
        else:  # the original-formulation switch is the paper's rule with w shifted by one
            kwargs = {"guidance_scale": w + 1.0}
        guided, state = apg(cond, uncond, state, eta=eta, norm_threshold=r, momentum=beta, **kwargs)
        np.testing.assert_allclose(guided, expected, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(state, buffer.running_average.numpy(), rtol=1e-14, atol=1e-14)
