"""irfft2_adjoint: the adjoint identity for every normalization and grid parity, hand values,
and that it is not rfft2."""

import numpy as np
import pytest

import refimpl
from refimpl.layers import irfft2_adjoint


@pytest.mark.parametrize("norm", ("backward", "ortho", "forward"))
@pytest.mark.parametrize("shape", [(4, 6), (5, 7), (3, 2), (1, 5), (6, 1)])
def test_irfft2_adjoint_satisfies_the_adjoint_identity(norm, shape):
    # <irfft2(u), v> = Re Σ conj(u)·A*(v) for arbitrary complex u (imaginary parts at the
    # self-conjugate entries included: irfft2 drops them, A*(v) is real there)
    height, width = shape
    rng = np.random.default_rng(height * 10 + width)
    u = rng.standard_normal((2, height, width // 2 + 1)) + 1j * rng.standard_normal(
        (2, height, width // 2 + 1)
    )
    v = rng.standard_normal((2, height, width))
    a = irfft2_adjoint(v, norm=norm)
    lhs = np.sum(np.fft.irfft2(u, s=shape, norm=norm) * v)
    rhs = np.sum(u.real * a[..., 0] + u.imag * a[..., 1])
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12, atol=1e-12)


def test_irfft2_adjoint_hand_values_and_difference_from_rfft2():
    # v = [[1, 2, 3, 4]]: rfft = (10, −2 + 2i, −2); backward norm → /4, then c = (1, 2, 1)
    u = irfft2_adjoint(np.array([[1.0, 2.0, 3.0, 4.0]]))
    np.testing.assert_allclose(u[..., 0], [[2.5, -1.0, -0.5]])
    np.testing.assert_allclose(u[..., 1], [[0.0, 1.0, 0.0]])
    plain = np.fft.rfft2(np.array([[1.0, 2.0, 3.0, 4.0]]))
    assert not np.allclose(u[..., 0], plain.real)  # the pitfall: irfft2* ≠ rfft2


def test_irfft2_adjoint_backward_is_irfft2():
    rng = np.random.default_rng(3)
    v = rng.standard_normal((3, 4, 5))
    g_u = rng.standard_normal((3, 4, 3, 2))
    _, pullback = refimpl.vjp(irfft2_adjoint, v, norm="ortho")
    (g_v,) = pullback(g_u)
    np.testing.assert_allclose(g_v, np.fft.irfft2(g_u[..., 0] + 1j * g_u[..., 1], s=(4, 5), norm="ortho"))


def test_irfft2_adjoint_round_trip_on_the_range_of_irfft2():
    # under "ortho", irfft2 restricted to Hermitian-consistent spectra is an isometry onto real
    # fields, and A*·A is the identity on fields: irfft2(A*(v)/c) = v
    rng = np.random.default_rng(4)
    v = rng.standard_normal((5, 8))
    a = irfft2_adjoint(v, norm="ortho")
    c = np.array([1.0, 2.0, 2.0, 2.0, 1.0])
    back = np.fft.irfft2((a[..., 0] + 1j * a[..., 1]) / c, s=(5, 8), norm="ortho")
    np.testing.assert_allclose(back, v, atol=1e-13)
