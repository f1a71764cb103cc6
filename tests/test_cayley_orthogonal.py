"""cayley_orthogonal (BT²): orthogonality to float64 precision, the Cayley/expm VJPs, PyTorch's map."""

import numpy as np
import pytest

import refimpl
from refimpl.layers import cayley_orthogonal


def _finite_difference_vjp(s, g, h=1e-6, **kwargs):
    grad = np.zeros_like(s)
    for index in np.ndindex(s.shape):
        step = np.zeros_like(s)
        step[index] = h
        plus = cayley_orthogonal(s + step, **kwargs)
        minus = cayley_orthogonal(s - step, **kwargs)
        grad[index] = np.sum(g * (plus - minus)) / (2 * h)
    return grad


@pytest.mark.parametrize("orthogonal_map", ["cayley", "expm"])
def test_cayley_orthogonal_is_orthogonal_to_float64_precision(orthogonal_map):
    rng = np.random.default_rng(0)
    for scale in (0.01, 1.0, 10.0):
        s = rng.standard_normal((16, 16)) * scale
        r = cayley_orthogonal(s, orthogonal_map=orthogonal_map)
        assert np.abs(r.T @ r - np.eye(16)).max() <= 5e-14
        assert np.abs(r @ r.T - np.eye(16)).max() <= 5e-14
        assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-12)  # both maps reach SO(n) only


def test_cayley_orthogonal_matches_the_closed_form_and_inverts():
    rng = np.random.default_rng(1)
    s = rng.standard_normal((6, 6))
    a = s - s.T
    eye = np.eye(6)
    r = cayley_orthogonal(s)
    np.testing.assert_allclose(r, (eye - a) @ np.linalg.inv(eye + a), atol=1e-13)
    # the inverse Cayley map recovers A: A = (I − R)(I + R)⁻¹
    np.testing.assert_allclose((eye - r) @ np.linalg.inv(eye + r), a, atol=1e-12)


def test_cayley_orthogonal_cannot_reach_eigenvalue_minus_one():
    # a rotation by θ needs t = tan(θ/2): θ → π sends t → ∞, and I + R = 2(I + A)⁻¹ stays invertible
    for t in (1.0, 1e3, 1e6):
        r = cayley_orthogonal(np.array([[0.0, t], [0.0, 0.0]]))
        assert np.linalg.svd(np.eye(2) + r, compute_uv=False).min() > 0
        np.testing.assert_allclose(r[0, 0], (1 - t * t) / (1 + t * t), rtol=1e-12)
    assert cayley_orthogonal(np.array([[0.0, 1e6], [0.0, 0.0]]))[0, 0] > -1.0


@pytest.mark.parametrize("orthogonal_map", ["cayley", "expm"])
@pytest.mark.parametrize("with_base", [False, True])
def test_cayley_orthogonal_backward_matches_finite_differences(orthogonal_map, with_base):
    rng = np.random.default_rng(2)
    s = rng.standard_normal((5, 5)) * 0.7
    base = np.linalg.qr(rng.standard_normal((5, 5)))[0] if with_base else None
    g = rng.standard_normal((5, 5))
    _, pullback = refimpl.vjp(cayley_orthogonal, s, base=base, orthogonal_map=orthogonal_map)
    (g_s,) = pullback(g)
    expected = _finite_difference_vjp(s, g, base=base, orthogonal_map=orthogonal_map)
    np.testing.assert_allclose(g_s, expected, atol=1e-8)


def test_cayley_orthogonal_gradient_equals_the_catalog_form():
    rng = np.random.default_rng(3)
    s, g = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
    a, eye = s - s.T, np.eye(4)
    m = np.linalg.inv(eye + a)
    r = (eye - a) @ m
    g_a = -(eye + r).T @ g @ m.T  # the catalog: ∂L/∂A = −(I + R)ᵀ G Mᵀ
    _, pullback = refimpl.vjp(cayley_orthogonal, s)
    np.testing.assert_allclose(pullback(g)[0], g_a - g_a.T, atol=1e-12)


def test_cayley_orthogonal_expm_matches_pytorch_orthogonal_parametrization():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    layer = torch.nn.Linear(6, 6, bias=False).double()
    torch.nn.utils.parametrizations.orthogonal(layer)  # defaults: matrix_exp, trivialization
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 6)) * 0.5
    with torch.no_grad():
        layer.parametrizations.weight.original.copy_(torch.from_numpy(x))
    base = layer.parametrizations.weight[0].base.detach().numpy()
    weight = layer.weight
    g = rng.standard_normal((6, 6))
    weight.backward(torch.from_numpy(g))
    r, pullback = refimpl.vjp(cayley_orthogonal, x, base=base, orthogonal_map="expm")
    np.testing.assert_allclose(r, weight.detach().numpy(), atol=1e-12)
    grad_torch = layer.parametrizations.weight.original.grad.numpy()
    np.testing.assert_allclose(pullback(g)[0], grad_torch, atol=1e-10)


def test_cayley_orthogonal_symmetric_s_gives_identity():
    rng = np.random.default_rng(5)
    s = rng.standard_normal((5, 5))
    np.testing.assert_array_equal(cayley_orthogonal(s + s.T), np.eye(5))
    np.testing.assert_allclose(cayley_orthogonal(np.diag([1.0, 2.0, 3.0]), orthogonal_map="expm"), np.eye(3))
