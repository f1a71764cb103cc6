"""Expert Merging (arXiv:2509.25712) and distillation_kl: hand-computed values and invariants."""

import numpy as np
import pytest

import refimpl
from refimpl import InputError
from refimpl.losses import distillation_kl
from refimpl.merging import (
    expert_merging,
    expert_merging_coefficient_regularizer,
    hidden_state_mse,
    task_vector,
)
from refimpl.merging.expert_merging import chunk_bounds


def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


def _experts(rng, shape, K):  # noqa: N803
    theta0 = rng.standard_normal(shape)
    experts = [theta0 + rng.standard_normal(shape) for _ in range(K)]
    taus = np.stack([task_vector(e, theta0) for e in experts], axis=-1)
    return theta0, experts, taus


# -- expert_merging ---------------------------------------------------------------------
@pytest.mark.parametrize("official", [True, False])
def test_very_negative_coefficients_give_the_base_and_very_positive_the_task_arithmetic_sum(official):
    rng = np.random.default_rng(0)
    theta0, experts, taus = _experts(rng, (3, 4), K=2)
    off = expert_merging(theta0, taus, np.full((2, 3), -1000.0), official_chunking=official)
    np.testing.assert_array_equal(off, theta0)  # sigmoid(−1000) = 0 exactly in float64
    on = expert_merging(theta0, taus, np.full((2, 3), 1000.0), official_chunking=official)
    np.testing.assert_allclose(on, experts[0] + experts[1] - theta0, rtol=1e-14, atol=1e-14)


def test_one_chunk_is_layer_wise_merging():
    rng = np.random.default_rng(1)
    theta0, _, taus = _experts(rng, (4, 3), K=3)
    a = rng.standard_normal((3, 1))
    alpha = _sigmoid(a[:, 0])
    expected = theta0 + sum(alpha[k] * taus[..., k] for k in range(3))
    np.testing.assert_allclose(expert_merging(theta0, taus, a), expected, rtol=1e-14)
    # repeating the layer-wise coefficient in every chunk changes nothing, either convention
    for official in (True, False):
        merged = expert_merging(theta0, taus, np.repeat(a, 5, axis=1), official_chunking=official)
        np.testing.assert_allclose(merged, expected, rtol=1e-14)


def test_official_chunking_of_five_elements_into_four_gives_three_chunks():
    # ⌈5/4⌉ = 2: chunks {0, 1}, {2, 3}, {4}; the 4th coefficient is ignored (torch.chunk + zip)
    np.testing.assert_array_equal(chunk_bounds(5, 4), [0, 2, 4, 5, 5])
    theta0, tau = np.zeros(5), np.arange(1.0, 6.0)[:, None]  # K = 1, τ = [1, 2, 3, 4, 5]
    a = np.array([[0.0, 1.0, -1.0, 3.0]])
    alpha = _sigmoid(a[0])
    merged, pullback = refimpl.vjp(expert_merging, theta0, tau, a)
    np.testing.assert_allclose(merged, [alpha[0], 2 * alpha[0], 3 * alpha[1], 4 * alpha[1], 5 * alpha[2]])
    g_theta = np.array([1.0, -1.0, 2.0, 0.5, -3.0])
    (g_a,) = pullback(g_theta)
    # ā_c = ⟨θ̄|_c, τ_c⟩·α_c(1 − α_c), by hand: ⟨[1, −1], [1, 2]⟩ = −1, ⟨[2, 0.5], [3, 4]⟩ = 8, −15
    slope = alpha * (1 - alpha)
    np.testing.assert_allclose(g_a, [[-1.0 * slope[0], 8.0 * slope[1], -15.0 * slope[2], 0.0]], rtol=1e-14)
    assert g_a[0, 3] == 0.0


@pytest.mark.parametrize(
    ("n", "C", "official_sizes", "even_sizes"),
    [
        (5, 4, [2, 2, 1, 0], [2, 1, 1, 1]),
        (10, 4, [3, 3, 3, 1], [3, 3, 2, 2]),
        (3, 5, [1, 1, 1, 0, 0], [1, 1, 1, 0, 0]),
        (12, 3, [4, 4, 4], [4, 4, 4]),
        (7, 1, [7], [7]),
    ],
)
def test_chunk_sizes_official_and_even_split(n, C, official_sizes, even_sizes):  # noqa: N803
    np.testing.assert_array_equal(np.diff(chunk_bounds(n, C, True)), official_sizes)
    even = np.diff(chunk_bounds(n, C, False))
    np.testing.assert_array_equal(even, even_sizes)
    assert even.max() - even.min() <= 1 and np.all(np.diff(even) <= 0)  # the first chunks are larger
    np.testing.assert_array_equal(even, [len(part) for part in np.array_split(np.arange(n), C)])


def test_even_split_uses_every_coefficient():
    theta0, tau = np.zeros(5), np.ones((5, 1))
    a = np.array([[-1.0, 0.0, 1.0, 2.0]])
    merged = expert_merging(theta0, tau, a, official_chunking=False)
    alpha = _sigmoid(a[0])
    np.testing.assert_allclose(merged, [alpha[0], alpha[0], alpha[1], alpha[2], alpha[3]], rtol=1e-15)


def test_expert_merging_vjp_matches_finite_differences_on_a_matrix_parameter():
    rng = np.random.default_rng(2)
    theta0, _, taus = _experts(rng, (3, 3), K=2)
    a = rng.standard_normal((2, 4))
    g_theta = rng.standard_normal((3, 3))
    _, pullback = refimpl.vjp(expert_merging, theta0, taus, a)
    (g_a,) = pullback(g_theta)
    h, fd = 1e-6, np.zeros_like(a)
    for index in np.ndindex(a.shape):
        step = np.zeros_like(a)
        step[index] = h
        plus, minus = expert_merging(theta0, taus, a + step), expert_merging(theta0, taus, a - step)
        fd[index] = np.sum(g_theta * (plus - minus)) / (2 * h)
    np.testing.assert_allclose(g_a, fd, rtol=1e-7, atol=1e-10)
    assert np.all(g_a[:, 3] == 0.0)  # 9 elements in chunks of ⌈9/4⌉ = 3: only three chunks


def test_float32_stays_float32_and_saturated_coefficients_stay_finite():
    theta0, tau = np.ones(4, np.float32), np.ones((4, 2), np.float32)
    a = np.array([[100.0, -100.0], [50.0, -50.0]], np.float32)
    merged, pullback = refimpl.vjp(expert_merging, theta0, tau, a)
    (g_a,) = pullback(np.ones(4, np.float32))
    assert merged.dtype == g_a.dtype == np.float32
    np.testing.assert_array_equal(merged, [3.0, 3.0, 1.0, 1.0])
    assert np.all(np.isfinite(g_a)) and np.all(g_a >= 0)


def test_expert_merging_refuses_bad_input():
    theta0, taus = np.zeros((2, 3)), np.zeros((2, 3, 2))
    with pytest.raises(InputError, match="K = 2"):
        expert_merging(theta0, taus, np.zeros((3, 1)))
    with pytest.raises(InputError, match="task_vectors"):
        expert_merging(theta0, np.zeros((2, 2, 3)), np.zeros((2, 1)))  # experts on the first axis
    with pytest.raises(InputError, match="finite"):
        expert_merging(theta0, taus, np.array([[0.0], [-np.inf]]))
    with pytest.raises(InputError, match="nothing is cast"):
        expert_merging(theta0.astype(np.float32), taus, np.zeros((2, 1)))


def test_task_vector_is_the_difference_and_its_vjp_is_plus_minus_identity():
    tau, pullback = refimpl.vjp(task_vector, np.array([3.0, 1.0]), np.array([1.0, 1.5]))
    np.testing.assert_array_equal(tau, [2.0, -0.5])
    g_expert, g_base = pullback(np.array([1.0, -2.0]))
    np.testing.assert_array_equal(g_expert, [1.0, -2.0])
    np.testing.assert_array_equal(g_base, [-1.0, 2.0])


# -- the regularizer -----------------------------------------------------------------------
def test_regularizer_known_value_and_gradient_by_hand():
    a = np.array([[0.0, 0.0], [0.0, np.log(3.0)]])  # α = ½, ½ | ½, ¾ ; K = 2, N/K = 2
    loss, pullback = refimpl.vjp(expert_merging_coefficient_regularizer, a, num_experts=2)
    np.testing.assert_allclose(loss, 0.1 * (0.4 * 3 + 0.65) / 2, rtol=1e-15)
    (g_a,) = pullback(np.array(1.0))
    np.testing.assert_allclose(g_a, 0.1 / 2 * np.array([[0.25, 0.25], [0.25, 0.75 * 0.25]]), rtol=1e-14)


def test_regularizer_subgradient_is_zero_where_alpha_equals_the_target_exactly():
    a = np.array([[0.0, 1.0]])  # sigmoid(0) = 0.5 exactly
    loss, pullback = refimpl.vjp(
        expert_merging_coefficient_regularizer, a, num_experts=1, weight=1.0, target=0.5
    )
    (g_a,) = pullback(np.array(1.0))
    assert g_a[0, 0] == 0.0  # sign(0) = 0, as torch.abs's backward
    assert g_a[0, 1] > 0


def test_regularizer_refuses_bad_input():
    with pytest.raises(InputError, match="divisor"):
        expert_merging_coefficient_regularizer(np.zeros((2, 3)), num_experts=4)
    with pytest.raises(InputError, match="weight"):
        expert_merging_coefficient_regularizer(np.zeros(2), num_experts=1, weight=-1.0)


# -- hidden-state MSE ------------------------------------------------------------------------
def test_hidden_state_mse_is_the_mean_over_layers_of_per_layer_mse():
    rng = np.random.default_rng(3)
    h_merged, h_expert = rng.standard_normal((3, 2, 4)), rng.standard_normal((3, 2, 4))
    per_layer = [np.mean((h_merged[layer] - h_expert[layer]) ** 2) for layer in range(3)]
    loss, pullback = refimpl.vjp(hidden_state_mse, h_merged, h_expert)
    np.testing.assert_allclose(loss, np.mean(per_layer), rtol=1e-14)
    g_merged, g_expert = pullback(np.array(2.0))
    np.testing.assert_allclose(g_merged, 2.0 * 2 * (h_merged - h_expert) / 24, rtol=1e-14)
    np.testing.assert_array_equal(g_expert, -g_merged)
    assert hidden_state_mse(h_expert, h_expert) == 0.0


# -- distillation_kl -----------------------------------------------------------------------
def test_kl_is_zero_for_equal_logits_and_positive_otherwise():
    rng = np.random.default_rng(4)
    z = rng.standard_normal((5, 7)) * 3
    loss, pullback = refimpl.vjp(distillation_kl, z, z.copy(), temperature=3.0)
    assert abs(loss) < 1e-15
    g_student, g_teacher = pullback(np.array(1.0))
    assert np.abs(g_student).max() < 1e-16 and np.abs(g_teacher).max() < 1e-16
    for _ in range(20):
        z_s, z_t = rng.standard_normal((4, 6)) * 4, rng.standard_normal((4, 6)) * 4
        per_row = distillation_kl(z_s, z_t, temperature=float(rng.uniform(0.5, 5)), reduction="none")
        assert np.all(per_row > 0)


def test_kl_known_value_and_student_gradient_by_hand():
    # T = 2: p = softmax([1, 0]) = [e, 1]/(e + 1), q = [½, ½]; L = 4·Σ p log(2p)
    z_s, z_t = np.array([[0.0, 0.0]]), np.array([[2.0, 0.0]])
    p = np.array([np.e, 1.0]) / (np.e + 1)
    loss, pullback = refimpl.vjp(distillation_kl, z_s, z_t, temperature=2.0)
    np.testing.assert_allclose(loss, 4 * np.sum(p * np.log(2 * p)), rtol=1e-15)
    np.testing.assert_allclose(loss, 0.4437763, atol=5e-8)
    g_student, g_teacher = pullback(np.array(1.0))
    np.testing.assert_allclose(g_student, [2.0 * (0.5 - p)], rtol=1e-14)  # T·(q − p)/B
    np.testing.assert_allclose(g_student.sum(), 0.0, atol=1e-16)
    np.testing.assert_allclose(g_teacher.sum(), 0.0, atol=1e-16)


def test_cross_entropy_form_is_kl_plus_teacher_entropy_with_the_same_student_gradient():
    rng = np.random.default_rng(5)
    z_s, z_t = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    T = 3.0  # noqa: N806
    kl, kl_pullback = refimpl.vjp(distillation_kl, z_s, z_t, temperature=T)
    ce, ce_pullback = refimpl.vjp(distillation_kl, z_s, z_t, temperature=T, form="cross_entropy")
    p = np.exp(z_t / T) / np.exp(z_t / T).sum(-1, keepdims=True)
    entropy = -(p * np.log(p)).sum(-1).mean()
    np.testing.assert_allclose(ce - kl, T * T * entropy, rtol=1e-13)
    np.testing.assert_allclose(kl_pullback(np.array(1.0))[0], ce_pullback(np.array(1.0))[0], rtol=1e-13)


def test_token_reductions_mean_batchmean_and_none():
    rng = np.random.default_rng(6)
    z_s, z_t = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))
    per_row = distillation_kl(z_s, z_t, temperature=3.0, reduction="none")
    assert per_row.shape == (2, 3)
    np.testing.assert_allclose(distillation_kl(z_s, z_t, temperature=3.0), per_row.mean(), rtol=1e-14)
    batchmean = distillation_kl(z_s, z_t, temperature=3.0, reduction="batchmean")
    np.testing.assert_allclose(batchmean, per_row.sum() / 2, rtol=1e-14)
    unscaled = distillation_kl(z_s, z_t, temperature=3.0, scale="none", reduction="sum")
    np.testing.assert_allclose(unscaled * 9, per_row.sum(), rtol=1e-14)


def test_t_squared_kl_tends_to_half_the_variance_of_the_logit_gap_for_large_t():
    # T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)) → (1/2K) Σ_k (d_k − mean d)², d = z_s − z_t
    z_s, z_t = np.array([[1.0, -2.0, 0.5, 3.0]]), np.array([[0.0, 1.0, -1.0, 2.0]])
    d = (z_s - z_t)[0]
    limit = np.sum((d - d.mean()) ** 2) / (2 * 4)
    np.testing.assert_allclose(distillation_kl(z_s, z_t, temperature=1e3), limit, rtol=1e-2)


def test_large_logits_stay_finite_in_float32():
    z_s = np.array([[1e4, -1e4, 0.0]], np.float32)
    z_t = np.array([[-1e4, 1e4, 0.0]], np.float32)
    loss, pullback = refimpl.vjp(distillation_kl, z_s, z_t, temperature=1.0)
    g_student, g_teacher = pullback(np.array(1.0, np.float32))
    assert loss.dtype == np.float32 and np.isfinite(loss) and loss > 1e4
    assert np.all(np.isfinite(g_student)) and np.all(np.isfinite(g_teacher))
    np.testing.assert_allclose(g_student, [[1.0, -1.0, 0.0]], atol=1e-6)


def test_distillation_kl_refuses_bad_input():
    z = np.zeros((2, 3))
    with pytest.raises(InputError, match="temperature"):
        distillation_kl(z, z, temperature=0.0)
    with pytest.raises(InputError, match="batch axis"):
        distillation_kl(np.zeros(3), np.zeros(3), temperature=1.0, reduction="batchmean")
    with pytest.raises(InputError, match="K = 3"):
        distillation_kl(z, np.zeros((2, 4)), temperature=1.0)
