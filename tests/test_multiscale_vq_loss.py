"""VAR multi-scale VQ loss: hand value, K = 1 is VQ-VAE's loss, and the official stop-gradient
form (F.mse_loss with .data/.detach(), VAR models/quant.py) transcribed in PyTorch."""

import numpy as np
import pytest
import torch

import refimpl

qs = refimpl.quantization_sparsity


def test_hand_value_and_gradient():
    f = np.zeros((1, 1, 1, 2))
    f_hats = np.array([[[[[1.0, 1.0]]]], [[[[0.0, 2.0]]]]])
    loss, pullback = refimpl.vjp("multiscale_vq_loss", f, f_hats)
    assert float(loss) == 1.875  # 1.25·(mean 1 + mean 2)/2
    g_f, g_f_hats = pullback(np.asarray(1.0))
    np.testing.assert_allclose(g_f, [[[[-0.125, -0.375]]]], rtol=1e-15)
    np.testing.assert_allclose(g_f_hats, [[[[[0.5, 0.5]]]], [[[[0.0, 1.0]]]]], rtol=1e-15)


def test_one_scale_is_the_vq_vae_loss():
    rng = np.random.default_rng(0)
    f, f_hat = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 4, 5))
    loss = qs.multiscale_vq_loss(f, f_hat[None], beta=0.4)
    np.testing.assert_allclose(loss, 1.4 * np.mean((f_hat - f) ** 2), rtol=1e-14)


def test_exact_reconstruction_has_zero_loss_and_gradients():
    f = np.random.default_rng(1).standard_normal((1, 2, 3, 3))
    loss, pullback = refimpl.vjp("multiscale_vq_loss", f, np.stack([f, f]))
    assert float(loss) == 0.0
    assert all(np.all(g == 0) for g in pullback(np.asarray(1.0)))


@pytest.mark.parametrize("beta", [0.25, 1.0])
def test_matches_the_official_loss_with_autograd(beta):
    rng = np.random.default_rng(2)
    f = rng.standard_normal((2, 4, 6, 6))
    f_hats = f[None] + rng.standard_normal((5, 2, 4, 6, 6)) * 0.5 ** np.arange(5)[:, None, None, None, None]
    tf = torch.tensor(f, requires_grad=True)
    tf_hats = torch.tensor(f_hats, requires_grad=True)
    mean_vq_loss = 0.0
    f_no_grad = tf.detach()
    for f_hat in tf_hats:  # VectorQuantizer2.forward: mse(f_hat.data, f)·β + mse(f_hat, f_no_grad)
        mean_vq_loss = mean_vq_loss + torch.nn.functional.mse_loss(f_hat.data, tf) * beta
        mean_vq_loss = mean_vq_loss + torch.nn.functional.mse_loss(f_hat, f_no_grad)
    mean_vq_loss = mean_vq_loss * (1.0 / 5)
    mean_vq_loss.backward(torch.tensor(0.7, dtype=torch.float64))
    loss, pullback = refimpl.vjp("multiscale_vq_loss", f, f_hats, beta=beta)
    np.testing.assert_allclose(loss, mean_vq_loss.item(), rtol=1e-13)
    g_f, g_f_hats = pullback(np.asarray(0.7))
    np.testing.assert_allclose(g_f, tf.grad.numpy(), rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(g_f_hats, tf_hats.grad.numpy(), rtol=1e-12, atol=1e-16)
