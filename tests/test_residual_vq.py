"""Residual vector quantization and its VQ loss: plain VQ at depth 1, the reconstruction
identity, tie and precision rules, the straight-through chain against PyTorch autograd."""

import numpy as np
import pytest

import refimpl

qs = refimpl.quantization_sparsity


def _draw(seed, N=7, C=3, D=3, K=5):  # noqa: N803
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((N, C))
    codebooks = rng.standard_normal((D, K, C)) * 0.5 ** np.arange(D)[:, None, None]
    return z, codebooks


def test_depth_one_is_plain_vector_quantization():
    z, codebooks = _draw(1, D=1)
    indices, z_q, residuals = qs.residual_vector_quantize(z, codebooks)
    brute = np.array([np.argmin([np.sum((row - e) ** 2) for e in codebooks[0]]) for row in z])
    assert np.array_equal(indices[:, 0], brute)
    assert np.array_equal(z_q, codebooks[0][brute])
    assert np.array_equal(residuals[0], z)


def test_reconstruction_plus_last_residual_is_the_input():
    z, codebooks = _draw(2, D=4)
    indices, z_q, residuals = qs.residual_vector_quantize(z, codebooks)
    last = residuals[-1] - codebooks[-1][indices[:, -1]]
    np.testing.assert_allclose(z_q + last, z, rtol=0, atol=1e-14)
    # each residual is the previous one minus its codeword
    for d in range(1, 4):
        np.testing.assert_array_equal(residuals[d], residuals[d - 1] - codebooks[d - 1][indices[:, d - 1]])


def test_hand_computed_two_level_code():
    z = np.array([[1.25, -0.5], [0.0, 0.75]])
    E = np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.25, -0.5], [0.0, 0.0]]])  # noqa: N806
    indices, z_q, residuals = qs.residual_vector_quantize(z, E)
    # row 1: depth 1 picks (0, 1) (distance 1/16), residual (0, −0.25): nearer to (0, 0)
    assert indices.tolist() == [[0, 0], [1, 1]]
    np.testing.assert_array_equal(z_q, [[1.25, -0.5], [0.0, 1.0]])
    np.testing.assert_array_equal(residuals[1], [[0.25, -0.5], [0.0, -0.25]])


def test_ties_go_to_the_lowest_index():
    z = np.array([[0.0, 0.0], [2.0, 0.0]])
    E = np.array([[[0.0, 1.0], [1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]]])  # noqa: N806 - 1 and 3 equal
    indices, _, _ = qs.residual_vector_quantize(z, E)
    assert indices[:, 0].tolist() == [0, 1]


def test_direct_differences_resolve_codes_the_expanded_distance_confuses_in_float32():
    z = np.array([[1000.3, 1000.3]], dtype=np.float32)
    E = np.array([[[1000.4, 1000.4], [1000.25, 1000.25]]], dtype=np.float32)  # noqa: N806
    indices, _, _ = qs.residual_vector_quantize(z, E)
    assert indices[0, 0] == 1  # distances 0.005 vs 0.02
    expanded = (z**2).sum(1)[:, None] - 2 * z @ E[0].T + (E[0] ** 2).sum(1)[None, :]
    assert not expanded[0, 1] < expanded[0, 0]  # the pitfall is real: ‖r‖² ≈ 2e6 swamps the gap


def test_residual_norm_can_grow_without_a_zero_codeword():
    z = np.array([[1.0, 2.0]])
    E = np.array([[[1.0, 2.0], [5.0, 5.0]], [[0.5, 0.5], [3.0, 3.0]]])  # noqa: N806
    _, _, residuals = qs.residual_vector_quantize(z, E)
    last = residuals[1] - E[1][0]
    assert np.linalg.norm(residuals[1]) == 0.0 and np.linalg.norm(last) > 0.7


def test_backward_is_straight_through_plus_the_residual_cotangents():
    z, codebooks = _draw(3)
    rng = np.random.default_rng(4)
    outputs, pullback = refimpl.vjp(qs.residual_vector_quantize, z, codebooks)
    g_z_q = rng.standard_normal(z.shape)
    g_residuals = rng.standard_normal(outputs[2].shape)
    (g_z,) = pullback((None, g_z_q, g_residuals))
    np.testing.assert_allclose(g_z, g_z_q + g_residuals.sum(axis=0), rtol=1e-15)


def test_residual_part_of_the_backward_matches_finite_differences():
    z, codebooks = _draw(5)
    v = np.random.default_rng(6).standard_normal((3, *z.shape))
    _, pullback = refimpl.vjp(qs.residual_vector_quantize, z, codebooks)
    (g_z,) = pullback((None, np.zeros_like(z), v))  # no straight-through part
    h = 1e-6
    direction = np.random.default_rng(7).standard_normal(z.shape)
    plus = qs.residual_vector_quantize(z + h * direction, codebooks)[2]
    minus = qs.residual_vector_quantize(z - h * direction, codebooks)[2]
    np.testing.assert_allclose(np.sum(v * (plus - minus)) / (2 * h), np.sum(g_z * direction), rtol=1e-8)


def test_loss_value_is_one_plus_beta_times_the_mean_squared_error():
    z, codebooks = _draw(8)
    indices, _, residuals = qs.residual_vector_quantize(z, codebooks)
    quantized = np.stack([codebooks[d][indices[:, d]] for d in range(3)])
    mse = sum(np.mean((residuals[d] - quantized[d]) ** 2) for d in range(3))
    loss = qs.vq_codebook_commitment_loss(residuals, codebooks, indices)
    np.testing.assert_allclose(loss, 1.25 * mse, rtol=1e-14)
    loss_sum = qs.vq_codebook_commitment_loss(residuals, codebooks, indices, beta=1.0, reduction="sum")
    np.testing.assert_allclose(loss_sum, 2 * np.sum((residuals - quantized) ** 2), rtol=1e-14)


def test_rvq_and_loss_chain_matches_pytorch_autograd_with_stop_gradients():
    """The usual RVQ training graph in PyTorch (straight-through output, residuals with detached
    codewords, F.mse_loss codebook and commitment terms), differentiated by autograd."""
    torch = pytest.importorskip("torch")
    z, codebooks = _draw(9, N=6, C=4, D=3, K=4)
    beta = 0.25
    rng = np.random.default_rng(10)
    g_out = rng.standard_normal(z.shape)

    z_t = torch.tensor(z, requires_grad=True)
    codebooks_t = torch.tensor(codebooks, requires_grad=True)
    residual, z_hat, loss = z_t, torch.zeros_like(z_t), 0.0
    for d in range(3):
        distances = ((residual.detach()[:, None, :] - codebooks_t.detach()[d][None]) ** 2).sum(-1)
        quantized = codebooks_t[d][distances.argmin(1)]
        loss = loss + torch.nn.functional.mse_loss(residual.detach(), quantized)
        loss = loss + beta * torch.nn.functional.mse_loss(residual, quantized.detach())
        z_hat = z_hat + quantized.detach()
        residual = residual - quantized.detach()
    z_st = z_t + (z_hat - z_t).detach()
    objective = loss + (z_st * torch.from_numpy(g_out)).sum()
    objective.backward()

    (indices, z_q, residuals), rvq_pullback = refimpl.vjp(qs.residual_vector_quantize, z, codebooks)
    value, loss_pullback = refimpl.vjp(
        qs.vq_codebook_commitment_loss, residuals, codebooks, indices, beta=beta
    )
    g_residuals, g_codebooks = loss_pullback(np.array(1.0))
    (g_z,) = rvq_pullback((None, g_out, g_residuals))

    np.testing.assert_allclose(z_q, z_hat.detach().numpy(), rtol=1e-15)
    np.testing.assert_allclose(value, loss.item(), rtol=1e-13)
    np.testing.assert_allclose(g_z, z_t.grad.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(g_codebooks, codebooks_t.grad.numpy(), rtol=1e-12, atol=1e-15)
