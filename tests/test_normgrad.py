"""normgrad_saliency: the outer-product identity, the k = 1 reduction, TorchRay's formulas."""

import numpy as np
import pytest

from refimpl.other import normgrad_saliency


def _patches(a, k, stride, padding, dilation):
    """unfold(a) by explicit loops: (B, H', W', C·k·k)."""
    batch, channels, height, width = a.shape
    padded = np.pad(a, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out_h = (height + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    out_w = (width + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    patches = np.zeros((batch, out_h, out_w, channels * k * k))
    for h in range(out_h):
        for w in range(out_w):
            window = padded[
                :,
                :,
                h * stride : h * stride + dilation * (k - 1) + 1 : dilation,
                w * stride : w * stride + dilation * (k - 1) + 1 : dilation,
            ]
            patches[:, h, w] = window.reshape(batch, -1)
    return patches


@pytest.mark.parametrize(
    "k, stride, padding, dilation", [(1, 1, 0, 1), (3, 1, 1, 1), (3, 2, 0, 1), (2, 1, 2, 2)]
)
def test_conv_saliency_is_the_frobenius_norm_of_the_explicit_weight_gradient_term(
    k, stride, padding, dilation
):
    rng = np.random.default_rng(k + 10 * stride + 100 * padding)
    a = rng.standard_normal((2, 3, 7, 6))
    patches = _patches(a, k, stride, padding, dilation)
    g = rng.standard_normal((2, 4, patches.shape[1], patches.shape[2]))
    s = normgrad_saliency(
        a, g, variant="conv", kernel_size=k, stride=stride, padding=padding, dilation=dilation
    )
    expected = np.zeros((2, 1) + patches.shape[1:3])
    for b in range(2):
        for h in range(patches.shape[1]):
            for w in range(patches.shape[2]):
                term = np.outer(g[b, :, h, w], patches[b, h, w])  # the location's weight-gradient term
                expected[b, 0, h, w] = np.linalg.norm(term, "fro")
    np.testing.assert_allclose(s, expected, rtol=1e-13)


def test_conv_saliency_matches_torch_unfold():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    a = rng.standard_normal((1, 2, 9, 8))
    g = rng.standard_normal((1, 5, 4, 3))
    unfolded = torch.nn.functional.unfold(
        torch.from_numpy(a), 3, dilation=2, padding=1, stride=2
    )  # (1, C·9, L)
    expected = np.linalg.norm(g.reshape(1, 5, -1), axis=1) * unfolded.norm(dim=1).numpy()
    s = normgrad_saliency(a, g, variant="conv", kernel_size=3, stride=2, padding=1, dilation=2)
    np.testing.assert_allclose(s.reshape(1, -1), expected, rtol=1e-13)


def test_conv_with_a_one_by_one_kernel_equals_the_identity_version():
    rng = np.random.default_rng(1)
    a, g = rng.standard_normal((2, 3, 4, 5)), rng.standard_normal((2, 3, 4, 5))
    np.testing.assert_allclose(normgrad_saliency(a, g, variant="conv"), normgrad_saliency(a, g), rtol=1e-15)


def test_identity_and_selective_match_torchray_formulas():
    rng = np.random.default_rng(2)
    x, grad = rng.standard_normal((2, 5, 3, 4)), rng.standard_normal((2, 5, 3, 4))
    # TorchRay: norm(x.grad, 2, 1, keepdim=True) * norm(x, 2, 1, keepdim=True)
    identity = np.sqrt((grad**2).sum(1, keepdims=True)) * np.sqrt((x**2).sum(1, keepdims=True))
    # TorchRay: norm(clamp(x * x.grad, min=0), 2, 1, keepdim=True)
    selective = np.sqrt((np.clip(x * grad, 0, None) ** 2).sum(1, keepdims=True))
    np.testing.assert_allclose(normgrad_saliency(x, grad), identity, rtol=1e-14)
    np.testing.assert_allclose(normgrad_saliency(x, grad, variant="selective"), selective, rtol=1e-14)
    assert not np.allclose(identity, selective)


def test_hand_values_and_dtype():
    x = np.array([3.0, 4.0], dtype=np.float32).reshape(1, 2, 1, 1)
    grad = np.array([-1.0, 1.0], dtype=np.float32).reshape(1, 2, 1, 1)
    s = normgrad_saliency(x, grad)
    assert s.dtype == np.float32
    assert float(s[0, 0, 0, 0]) == pytest.approx(5 * np.sqrt(2), rel=1e-6)
    assert float(normgrad_saliency(x, grad, variant="selective")[0, 0, 0, 0]) == 4.0
