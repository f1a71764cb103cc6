"""L_orth: the catalog's known values, orthogonal kernels, the dense k = 1 case, both variants
against torch's conv2d and autograd, and the hand-derived backward's lag symmetry."""

import numpy as np
import pytest

import refimpl
from refimpl.regularizers import l_orth
from refimpl.regularizers.orthogonal_conv import kernel_autocorrelation


def _orthogonal(n, seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return q


def _centre_tap_kernel():
    kernel = np.zeros((4, 4, 3, 3))
    kernel[:, :, 1, 1] = _orthogonal(4)
    return kernel


def test_known_value_orthogonal_centre_tap_stride_two():
    kernel = _centre_tap_kernel()
    np.testing.assert_allclose(l_orth(kernel, stride=2), 0.0, atol=1e-14)
    np.testing.assert_allclose(l_orth(kernel, stride=2, variant="wang2020"), 2.0, rtol=1e-14)  # √M


def test_one_by_one_orthogonal_kernel_gives_zero_and_zero_gradient():
    kernel = _orthogonal(5, 1)[:, :, None, None]
    loss, pullback = refimpl.vjp("l_orth", kernel)
    np.testing.assert_allclose(loss, 0.0, atol=1e-14)
    np.testing.assert_allclose(pullback(np.array(1.0))[0], 0.0, atol=1e-13)


def test_orthonormal_columns_subtract_delta():
    # M = 6 > C = 2, 1×1: ‖KKᵀ − I‖² = M − C = δ, so L = 0
    kernel = _orthogonal(6, 2)[:, :2, None, None]
    np.testing.assert_allclose(l_orth(kernel), 0.0, atol=1e-13)


def test_one_by_one_kernel_is_the_dense_gram_penalty():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((3, 5))  # M = 3 <= C = 5: δ = 0
    expected = np.sum((w @ w.T - np.eye(3)) ** 2)
    np.testing.assert_allclose(l_orth(w[:, :, None, None]), expected, rtol=1e-14)
    _, pullback = refimpl.vjp("l_orth", w[:, :, None, None])
    np.testing.assert_allclose(
        pullback(np.array(1.0))[0][:, :, 0, 0], 4 * (w @ w.T - np.eye(3)) @ w, rtol=1e-13
    )


def test_autocorrelation_has_the_lag_symmetry():
    kernel = np.random.default_rng(4).standard_normal((3, 2, 3, 3))
    y = kernel_autocorrelation(kernel, 1)
    np.testing.assert_allclose(y, np.transpose(y, (1, 0, 2, 3))[:, :, ::-1, ::-1], rtol=1e-14)


def test_backward_equals_the_catalog_formula_four_times_r_times_k():
    rng = np.random.default_rng(5)
    kernel = rng.standard_normal((3, 2, 5, 5)) * 0.3
    stride = 2
    _, pullback = refimpl.vjp("l_orth", kernel, stride=stride)
    (g,) = pullback(np.array(1.0))
    # ∂L/∂K[q, c, i, j] = 4 Σ_{m', u, v} R[q, m', u, v]·K[m', c, i − a_u, j − a_v]
    padding = (4 // stride) * stride
    lags = np.arange(2 * padding // stride + 1) * stride - padding
    r = kernel_autocorrelation(kernel, stride)
    r[np.arange(3), np.arange(3), len(lags) // 2, len(lags) // 2] -= 1
    expected = np.zeros_like(kernel)
    for u, a_u in enumerate(lags):
        for v, a_v in enumerate(lags):
            for i in range(5):
                for j in range(5):
                    if 0 <= i - a_u < 5 and 0 <= j - a_v < 5:
                        expected[:, :, i, j] += 4 * np.einsum(
                            "qm,mc->qc", r[:, :, u, v], kernel[:, :, i - a_u, j - a_v]
                        )
    np.testing.assert_allclose(g, expected, rtol=1e-12, atol=1e-14)


def _torch_l_orth(torch, kernel, stride, variant):
    """deel-lip's L_orth / Wang et al.'s deconv_orth_dist written with torch.conv2d."""
    k_t = torch.tensor(kernel, requires_grad=True)
    m_out, channels, k, _ = kernel.shape
    padding = ((k - 1) // stride) * stride if variant == "achour" else 1
    y = torch.nn.functional.conv2d(k_t, k_t, stride=stride, padding=padding)
    target = torch.zeros_like(y)
    centre = y.shape[-1] // 2
    target[:, :, centre, centre] = torch.eye(m_out, dtype=y.dtype)
    if variant == "achour":
        loss = ((y - target) ** 2).sum() - max(0, m_out - stride**2 * channels)
    else:
        loss = torch.norm(y - target)
    loss.backward()
    return loss.item(), k_t.grad.numpy()


@pytest.mark.parametrize("variant", ["achour", "wang2020"])
@pytest.mark.parametrize(
    ("shape", "stride"), [((4, 3, 3, 3), 1), ((4, 3, 3, 3), 2), ((6, 1, 5, 5), 3), ((3, 2, 1, 1), 2)]
)
def test_matches_torch_conv2d_and_autograd(variant, shape, stride):
    torch = pytest.importorskip("torch")
    kernel = np.random.default_rng(sum(shape) + stride).standard_normal(shape) * 0.4
    expected_loss, expected_grad = _torch_l_orth(torch, kernel, stride, variant)
    loss, pullback = refimpl.vjp("l_orth", kernel, stride=stride, variant=variant)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-12)
    np.testing.assert_allclose(pullback(np.array(1.0))[0], expected_grad, rtol=1e-11, atol=1e-13)


def test_wang2020_at_stride_two_misses_lag_zero():
    # the centre tap alone is penalized at lag +1 only, never at lag 0: a non-orthogonal
    # centre tap costs wang2020 nothing beyond the misplaced identity
    kernel = np.zeros((2, 2, 3, 3))
    kernel[:, :, 1, 1] = [[3.0, 1.0], [0.5, 2.0]]
    np.testing.assert_allclose(l_orth(kernel, stride=2, variant="wang2020"), np.sqrt(2.0), rtol=1e-14)
    assert l_orth(kernel, stride=2) > 10


def test_wang2020_gradient_is_zero_at_its_minimum():
    kernel = np.eye(3)[:, :, None, None]
    loss, pullback = refimpl.vjp("l_orth", kernel, variant="wang2020")
    assert loss == 0.0
    np.testing.assert_array_equal(pullback(np.array(1.0))[0], 0.0)


def test_float32_stays_float32():
    kernel = np.random.default_rng(6).standard_normal((3, 2, 3, 3)).astype(np.float32)
    loss, pullback = refimpl.vjp("l_orth", kernel, stride=2)
    assert loss.dtype == np.float32 and pullback(np.array(1.0, np.float32))[0].dtype == np.float32
    np.testing.assert_allclose(loss, l_orth(kernel.astype(np.float64), stride=2), rtol=1e-5)


@pytest.mark.parametrize(
    ("kernel", "kwargs", "argument"),
    [
        (np.zeros((2, 2, 2, 2)), {}, "kernel"),
        (np.zeros((2, 2, 3, 5)), {}, "kernel"),
        (np.zeros((2, 2, 3, 3)), {"stride": 0}, "stride"),
        (np.zeros((2, 2, 3, 3)), {"variant": "deel"}, "variant"),
    ],
)
def test_bad_input_raises_input_error_naming_op_and_argument(kernel, kwargs, argument):
    with pytest.raises(refimpl.InputError, match=rf"^l_orth: argument '{argument}'"):
        l_orth(kernel, **kwargs)
