"""DCDM loss: hand value, scale invariance, orthogonality of the gradient, exact directions, refusals."""

import numpy as np
import pytest

import refimpl
from refimpl.losses import dcdm_loss


def _spd(rng, n):
    m = rng.standard_normal((n, n))
    a = m @ m.T + n * np.eye(n)
    return (a + a.T) / 2


def test_dcdm_matches_hand_value():
    a, b, q = np.diag([2.0, 1.0]), np.array([[1.0, 1.0]]), np.array([[1.0, 0.0]])
    loss, pullback = refimpl.vjp(dcdm_loss, a, b, q)
    # α = qᵀb/qᵀAq = ½, r = b − α A q = (0, 1), L = 1
    assert loss == 1.0
    # ∇ = −2[α A r + (qᵀAr)(b − 2αAq)/qᵀAq] = −2[(0, ½) + 0] = (0, −1)
    np.testing.assert_allclose(pullback(np.array(1.0))[0], [[0.0, -1.0]], atol=1e-15)


def test_dcdm_is_invariant_to_the_scale_of_q():
    rng = np.random.default_rng(0)
    a, b, q = _spd(rng, 6), rng.standard_normal((4, 6)), rng.standard_normal((4, 6))
    base = dcdm_loss(a, b, q)
    for c in (-3.0, 1e-3, 1e4):
        assert dcdm_loss(a, b, c * q) == pytest.approx(base, rel=1e-13)


def test_dcdm_gradient_is_orthogonal_to_q():
    rng = np.random.default_rng(1)
    a, b, q = _spd(rng, 8), rng.standard_normal((5, 8)), rng.standard_normal((5, 8))
    _, pullback = refimpl.vjp(dcdm_loss, a, b, q)
    (g_q,) = pullback(np.array(1.0))
    dots = (g_q * q).sum(axis=1)
    assert np.abs(dots).max() < 1e-14 * np.abs(g_q).max() * np.abs(q).max() * 8 + 1e-15


def test_dcdm_is_zero_with_zero_gradient_at_the_exact_direction():
    rng = np.random.default_rng(2)
    a, b = _spd(rng, 5), rng.standard_normal((3, 5))
    q = np.linalg.solve(a, b.T).T * np.array([[2.0], [-1.0], [0.3]])
    loss, pullback = refimpl.vjp(dcdm_loss, a, b, q)
    assert loss < 1e-28
    assert np.abs(pullback(np.array(1.0))[0]).max() < 1e-13


def test_dcdm_works_on_a_singular_neumann_laplacian_off_the_null_space():
    n = 6
    a = 2 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
    a[0, 0] = a[-1, -1] = 1.0
    rng = np.random.default_rng(3)
    b = rng.standard_normal((2, n))
    loss = dcdm_loss(a, b, rng.standard_normal((2, n)))
    assert np.isfinite(loss) and loss > 0
    with pytest.raises(refimpl.InputError, match="null-space direction"):
        dcdm_loss(a, b, np.ones((2, n)))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_dcdm_float32_agrees_relatively_with_float64(backend):
    rng = np.random.default_rng(4)
    a, b, q = _spd(rng, 16), rng.standard_normal((4, 16)), rng.standard_normal((4, 16))
    loss64, pb64 = refimpl.vjp("dcdm_loss", a, b, q)
    loss32, pb32 = refimpl.vjp(
        "dcdm_loss", a.astype(np.float32), b.astype(np.float32), q.astype(np.float32), backend=backend
    )
    assert loss32.dtype == np.float32
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    g32 = pb32(np.array(1.0, np.float32))[0]
    np.testing.assert_allclose(g32, pb64(np.array(1.0))[0], rtol=1e-3, atol=1e-5 * np.abs(g32).max())


def test_dcdm_refuses_zero_output_and_asymmetric_matrix():
    with pytest.raises(refimpl.InputError, match="qᵀAq = 0 in row 1"):
        dcdm_loss(np.eye(2), np.ones((2, 2)), np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(refimpl.InputError, match="symmetric"):
        dcdm_loss(np.array([[2.0, 1.0], [0.0, 1.0]]), np.ones((1, 2)), np.ones((1, 2)))
