"""Intrinsic-dimension reparameterizations: FWHT normalization and ordering, the Fastfood adjoint
and its materialized matrix, θ_d = 0 gives θ_0, SAID's gradients and size accounting."""

import math

import numpy as np
import pytest
from scipy.linalg import hadamard

import refimpl
import refimpl_cupy
from refimpl.adapters import (
    fastfood_projection,
    fwht,
    random_subspace_reparam,
    said_intrinsic_size,
    said_reparam,
)

BACKENDS = ["numpy", "numba", refimpl_cupy.host_backend()]


def _fastfood_inputs(rng, d, D):  # noqa: N803
    length = 1 << (D - 1).bit_length()
    return (
        rng.standard_normal(d),
        rng.choice(np.array([-1, 1]), size=length),
        rng.permutation(length),
        rng.standard_normal(length),
    )


def _dense_fastfood(B, Pi, G, d, D):  # noqa: N803
    """P = S H G Π H B E / c as an explicit D × d matrix (Π: the gather z = v[Π])."""
    length = B.shape[0]
    H = hadamard(length).astype(np.float64)  # noqa: N806
    gather = np.eye(length)[Pi]  # (gather @ v)_i = v_{Π_i}
    c = math.sqrt(length * float(np.sum(G**2))) * math.sqrt(D / length)
    full = H @ np.diag(G) @ gather @ H @ np.diag(B.astype(np.float64))
    return full[:D, :d] / c


# -- fwht -----------------------------------------------------------------------------------------
def test_fwht_known_value_and_sylvester_order():
    np.testing.assert_array_equal(fwht(np.array([1.0, 2.0, 3.0, 4.0])), [10.0, -2.0, -4.0, 0.0])
    # the transform of the identity's rows is H itself, in Sylvester's (natural) order
    np.testing.assert_array_equal(fwht(np.eye(16)), hadamard(16))
    np.testing.assert_array_equal(fwht(np.array([[2.5]])), [[2.5]])  # L = 1: the identity


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_fwht_twice_is_length_times_identity(backend):
    rng = np.random.default_rng(0)
    call = refimpl.backend(backend).get("fwht")
    for length in (1, 2, 8, 4096, 2**13, 2**14):  # blocked stages only, then radix-2, radix-4, both
        x = rng.standard_normal((2, length))
        np.testing.assert_allclose(call(call(x)), length * x, rtol=0, atol=1e-12 * length)
        integers = rng.integers(-9, 10, size=(3, length)).astype(np.float64)
        np.testing.assert_array_equal(call(call(integers)), length * integers)  # exact in float64


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_fwht_backward_is_the_transform_of_the_cotangent(backend):
    rng = np.random.default_rng(1)
    x, g = rng.standard_normal((2, 3, 32)), rng.standard_normal((2, 3, 32))
    y, pullback = refimpl.vjp("fwht", x, backend=backend)
    (g_x,) = pullback(g)
    np.testing.assert_allclose(g_x, fwht(g), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(np.sum(y * g), np.sum(x * g_x), rtol=1e-12)  # ⟨Hx, g⟩ = ⟨x, Hg⟩


def _float32_butterflies(x):
    """The FWHT accumulated in float32 (what the float64 accumulation avoids)."""
    work = x.astype(np.float32)
    length, half = x.shape[-1], 1
    while half < length:
        pairs = work.reshape(-1, length // (2 * half), 2, half)
        work = np.stack((pairs[:, :, 0] + pairs[:, :, 1], pairs[:, :, 0] - pairs[:, :, 1]), axis=2)
        work = work.reshape(-1, length)
        half *= 2
    return work


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
def test_fwht_float32_is_rounded_once_from_float64_butterflies(backend):
    rng = np.random.default_rng(2)
    # 1e4 + multiples of 2⁻¹⁰: exact in float32, and every partial sum is exact in float64
    # (< 2²⁸ with 10 fractional bits), so the float64 transform is the exact one
    x = (1e4 + rng.integers(-2048, 2048, size=(1, 2**14)) / 1024).astype(np.float32)
    exact = fwht(x.astype(np.float64))[0]
    got = refimpl.backend(backend).get("fwht")(x)[0].astype(np.float64)
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert np.all(np.abs(got - exact) <= 0.5 * ulp + 1e-9 * np.abs(exact))  # correctly rounded
    naive = _float32_butterflies(x)[0].astype(np.float64)
    assert np.max(np.abs(naive - exact) / ulp) > 4  # float32 accumulation misses by several ulps


def test_fwht_refuses_a_length_that_is_not_a_power_of_two():
    with pytest.raises(refimpl.InputError, match="argument 'x'.*length L = 2\\^m.*got length 12"):
        fwht(np.ones((2, 12)))


# -- fastfood_projection -------------------------------------------------------------------------
def test_fastfood_known_value():
    x, B, Pi, G = np.array([1.0, 2.0]), np.array([1, -1]), np.array([1, 0]), np.array([1.0, 2.0])  # noqa: N806
    # H B x = H[1, −2] = [−1, 3]; gathered [3, −1]; ⊙G [3, −2]; H: [1, 5]; c = √(2·5)·√(2/2)
    np.testing.assert_allclose(fastfood_projection(x, B, Pi, G, D=2), np.array([1.0, 5.0]) / math.sqrt(10))
    _, pullback = refimpl.vjp(fastfood_projection, x, B, Pi, G, D=2)
    # Pᵀ[1, 1]: H[1, 1]/√10 = [2, 0]/√10; ⊙G [2, 0]; scatter u[Π] → [0, 2]; H [2, −2]; ⊙B [2, 2]
    np.testing.assert_allclose(pullback(np.ones(2))[0], np.array([2.0, 2.0]) / math.sqrt(10))


@pytest.mark.parametrize("backend", BACKENDS, ids=str)
@pytest.mark.parametrize(("d", "D"), [(3, 5), (8, 8), (16, 9), (1, 1), (40, 1000)])
def test_fastfood_adjoint_identity(backend, d, D):  # noqa: N803
    rng = np.random.default_rng(d * 1000 + D)
    x, B, Pi, G = _fastfood_inputs(rng, d, D)  # noqa: N806
    y = rng.standard_normal(D)
    Px, pullback = refimpl.vjp("fastfood_projection", x, B, Pi, G, D=D, backend=backend)  # noqa: N806
    (Pty,) = pullback(y)  # noqa: N806
    np.testing.assert_allclose(np.dot(Px, y), np.dot(x, Pty), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(("d", "D"), [(3, 5), (8, 8), (16, 9), (6, 17)])
def test_fastfood_materialized_column_by_column_equals_the_dense_product(d, D):  # noqa: N803
    rng = np.random.default_rng(d + D)
    _, B, Pi, G = _fastfood_inputs(rng, d, D)  # noqa: N806
    dense = _dense_fastfood(B, Pi, G, d, D)
    columns = np.stack([fastfood_projection(e, B, Pi, G, D=D) for e in np.eye(d)], axis=1)
    np.testing.assert_allclose(columns, dense, rtol=1e-12, atol=1e-14)
    _, pullback = refimpl.vjp(fastfood_projection, rng.standard_normal(d), B, Pi, G, D=D)
    rows = np.stack([pullback(e)[0] for e in np.eye(D)])  # Pᵀ e_i: row i of P
    np.testing.assert_allclose(rows, dense, rtol=1e-12, atol=1e-14)


def test_fastfood_columns_have_unit_length_when_nothing_is_cut():
    # D = d = L: ‖H G Π H B e_j‖² = L·Σ G², and c² = D·Σ G²: every column of P has norm 1
    rng = np.random.default_rng(4)
    _, B, Pi, G = _fastfood_inputs(rng, 16, 16)  # noqa: N806
    columns = np.stack([fastfood_projection(e, B, Pi, G, D=16) for e in np.eye(16)], axis=1)
    np.testing.assert_allclose(np.linalg.norm(columns, axis=0), 1.0, rtol=1e-13)


def _official_hadamard_backward(g):
    """FastWalshHadamard.backward of the official code: H g times 1/√L."""
    return fwht(g) / math.sqrt(g.shape[0])


def test_official_fastfood_backward_is_the_adjoint_divided_by_length():
    rng = np.random.default_rng(5)
    d, D = 5, 12  # noqa: N806
    x, B, Pi, G = _fastfood_inputs(rng, d, D)  # noqa: N806
    length, g = B.shape[0], rng.standard_normal(D)
    c = math.sqrt(length * np.sum(G**2)) * math.sqrt(D / length)
    # autograd through the official graph: the two FWHT nodes use the 1/√L backward
    padded = np.zeros(length)
    padded[:D] = g / c
    after_second = G * _official_hadamard_backward(padded)
    scattered = np.empty(length)
    scattered[Pi] = after_second
    official = (B * _official_hadamard_backward(scattered))[:d]
    _, pullback = refimpl.vjp(fastfood_projection, x, B, Pi, G, D=D)
    (true_adjoint,) = pullback(g)
    np.testing.assert_allclose(official * length, true_adjoint, rtol=1e-12)
    assert not np.allclose(official, true_adjoint)
    (record,) = fastfood_projection.deviations
    assert record.kind == "bug" and "divided by L" in record.official


@pytest.mark.slow  # imports torch (seconds): run with `pytest -m slow`
def test_a_port_of_the_official_fastfood_is_told_its_known_deviation():
    torch = pytest.importorskip("torch")
    from refimpl_conformance import check

    def hadamard_torch(v):
        length, half = v.shape[0], 1
        while half < length:
            pairs = v.reshape(length // (2 * half), 2, half)
            v = torch.stack((pairs[:, 0] + pairs[:, 1], pairs[:, 0] - pairs[:, 1]), dim=1).reshape(length)
            half *= 2
        return v

    class OfficialHadamard(torch.autograd.Function):  # FastWalshHadamard: H x, backward H g/√L
        @staticmethod
        def forward(ctx, v):
            ctx.length = v.shape[0]
            return hadamard_torch(v)

        @staticmethod
        def backward(ctx, g):
            return hadamard_torch(g) / math.sqrt(ctx.length)

    def official_port(x, B, Pi, G, *, D):  # noqa: N803 - fastfood_torched
        length = B.shape[0]
        padded = torch.nn.functional.pad(x, (0, length - x.shape[0])) * B.to(x.dtype)
        mixed = OfficialHadamard.apply(padded)[Pi] * G
        divisor = torch.sqrt(length * torch.sum(G**2)) * math.sqrt(D / length)
        return OfficialHadamard.apply(mixed)[:D] / divisor

    report = check(
        "fastfood_projection",
        official_port,
        framework="torch",
        dtypes=("float64",),
        seeds=range(5),
        edges=False,
    )
    assert report.failures and report.recognized == ["fastfood-hadamard-backward-over-sqrt-l"]
    assert all("refimpl follows the paper" in f.detail for f in report.failures)


def test_fastfood_refuses_a_length_that_does_not_match_D():  # noqa: N802
    rng = np.random.default_rng(6)
    x, B, Pi, G = _fastfood_inputs(rng, 3, 5)  # noqa: N806  (L = 8)
    with pytest.raises(refimpl.InputError, match="argument 'B'.*= 16 for D = 9"):
        fastfood_projection(x, B, Pi, G, D=9)
    with pytest.raises(refimpl.InputError, match="argument 'Pi': expected a permutation"):
        fastfood_projection(x, B, np.zeros(8, dtype=np.int64), G, D=5)


# -- random_subspace_reparam ---------------------------------------------------------------------
def test_random_subspace_at_zero_is_theta0_and_its_gradient_is_P_transpose_g():  # noqa: N802
    rng = np.random.default_rng(7)
    theta0, P, g = rng.standard_normal(9), rng.standard_normal((9, 4)), rng.standard_normal(9)  # noqa: N806
    theta, pullback = refimpl.vjp(random_subspace_reparam, theta0, P, np.zeros(4))
    np.testing.assert_array_equal(theta, theta0)
    np.testing.assert_allclose(pullback(g)[0], P.T @ g, rtol=1e-14)
    theta_d = rng.standard_normal(4)
    np.testing.assert_allclose(random_subspace_reparam(theta0, P, theta_d), theta0 + P @ theta_d, rtol=1e-14)


def test_random_subspace_with_the_materialized_fastfood_matrix_is_the_fastfood_update():
    rng = np.random.default_rng(8)
    theta_d, B, Pi, G = _fastfood_inputs(rng, 6, 21)  # noqa: N806
    theta0 = rng.standard_normal(21)
    dense = _dense_fastfood(B, Pi, G, 6, 21)
    np.testing.assert_allclose(
        random_subspace_reparam(theta0, dense, theta_d),
        theta0 + fastfood_projection(theta_d, B, Pi, G, D=21),
        rtol=1e-12,
        atol=1e-14,
    )


# -- said_reparam --------------------------------------------------------------------------------
@pytest.fixture
def said_inputs():
    rng = np.random.default_rng(9)
    D, m, k = 10, 3, 4  # noqa: N806
    ids = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    return (
        rng.standard_normal(D),
        rng.standard_normal(k),
        rng.uniform(0.5, 2, m),
        ids,
        rng.standard_normal((D, k)),
    )


def test_said_at_zero_is_theta0_and_at_unit_scales_is_the_plain_subspace(said_inputs):
    theta0, theta_d, lam, ids, P = said_inputs  # noqa: N806
    np.testing.assert_array_equal(said_reparam(theta0, np.zeros(4), lam, ids, P, budget=7), theta0)
    np.testing.assert_allclose(
        said_reparam(theta0, theta_d, np.ones(3), ids, P, budget=7),
        random_subspace_reparam(theta0, P, theta_d),
        rtol=1e-15,
    )


def test_said_gradients_by_hand(said_inputs):
    theta0, theta_d, lam, ids, P = said_inputs  # noqa: N806
    g = np.linspace(-1.0, 2.0, 10)
    theta, pullback = refimpl.vjp(said_reparam, theta0, theta_d, lam, ids, P, budget=7)
    u = P @ theta_d
    np.testing.assert_allclose(theta, theta0 + lam[ids] * u, rtol=1e-15)
    g_theta_d, g_lam = pullback(g)
    expected_lam = [np.dot(g[:4], u[:4]), np.dot(g[4:6], u[4:6]), np.dot(g[6:], u[6:])]
    np.testing.assert_allclose(g_lam, expected_lam, rtol=1e-13)
    np.testing.assert_allclose(g_theta_d, P.T @ (lam[ids] * g), rtol=1e-13)


def test_said_with_fastfood_equals_said_with_its_materialized_matrix(said_inputs):
    theta0, _, lam, ids, _ = said_inputs
    rng = np.random.default_rng(10)
    theta_d, B, Pi, G = _fastfood_inputs(rng, 4, 10)  # noqa: N806  (L = 16)
    dense = _dense_fastfood(B, Pi, G, 4, 10)
    g = rng.standard_normal(10)
    via_fastfood, pull_fastfood = refimpl.vjp(
        said_reparam, theta0, theta_d, lam, ids, None, B, Pi, G, budget=7
    )
    via_dense, pull_dense = refimpl.vjp(said_reparam, theta0, theta_d, lam, ids, dense, budget=7)
    np.testing.assert_allclose(via_fastfood, via_dense, rtol=1e-12, atol=1e-14)
    for fast, slow in zip(pull_fastfood(g), pull_dense(g), strict=True):
        np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-14)


def test_said_size_accounting_paper_and_official(said_inputs):
    theta0, theta_d, lam, ids, P = said_inputs  # noqa: N806
    # paper: d = 7 pays for m = 3 scales and d − m = 4 coordinates; d trainable in all
    assert said_intrinsic_size(7, 3) == 4 == theta_d.shape[0]
    assert said_intrinsic_size(7, 3) + lam.shape[0] == 7
    # official: d − (m_all + 1), m_all counting every named tensor (here 3 scaled + 2 filtered out)
    assert said_intrinsic_size(10, 3, official_said_size=True, num_named_parameters=5) == 4
    assert said_intrinsic_size(8, 3, official_said_size=True) == 4
    paper = said_reparam(theta0, theta_d, lam, ids, P, budget=7)
    official = said_reparam(
        theta0, theta_d, lam, ids, P, budget=10, official_said_size=True, num_named_parameters=5
    )
    np.testing.assert_array_equal(paper, official)  # the accounting changes sizes, not values
    with pytest.raises(refimpl.InputError, match="argument 'theta_d'.*d − m = 8 − 3 = 5 entries.*got 4"):
        said_reparam(theta0, theta_d, lam, ids, P, budget=8)
    with pytest.raises(refimpl.InputError, match="d − \\(m_all \\+ 1\\) = 7 − \\(3 \\+ 1\\) = 3"):
        said_reparam(theta0, theta_d, lam, ids, P, budget=7, official_said_size=True)
    (record,) = said_reparam.deviations
    assert record.flag == {"official_said_size": True}


def test_said_refuses_two_projections_and_a_tensor_without_entries(said_inputs):
    theta0, theta_d, lam, ids, P = said_inputs  # noqa: N806
    rng = np.random.default_rng(11)
    _, B, Pi, G = _fastfood_inputs(rng, 4, 10)  # noqa: N806
    with pytest.raises(refimpl.InputError, match="argument 'P'.*both P and Fastfood"):
        said_reparam(theta0, theta_d, lam, ids, P, B, Pi, G, budget=7)
    with pytest.raises(refimpl.InputError, match="argument 'tensor_ids'.*no entry of tensor 1"):
        said_reparam(theta0, theta_d, lam, np.where(ids == 1, 0, ids), P, budget=7)
