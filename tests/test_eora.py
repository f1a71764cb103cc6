"""EoRA: optimality in the input eigenspace, invariances, and the zero-eigenvalue pitfall."""

import numpy as np
import pytest

import refimpl
from refimpl.adapters import eora_compensation, lora_linear

BACKENDS = ["numpy", "cupy[host]"]


def _backend(name):
    if name == "cupy[host]":
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


def _problem(seed=0, out_features=6, in_features=5, rows=20):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((out_features, in_features))
    W_c = np.round(W * 2.0) / 2.0  # a coarse quantization grid
    X = rng.standard_normal((rows, in_features)) * np.linspace(0.2, 3.0, in_features)
    return W, W_c, X


def _output_error(W, W_eff, X):
    return np.linalg.norm((W - W_eff) @ X.T) ** 2


def _whitened_singular_values(delta, C):
    eigenvalues, Q = np.linalg.eigh(C)
    return np.linalg.svd(delta @ (Q * np.sqrt(eigenvalues)), compute_uv=False)


def test_hand_example():
    # ΔW = [[1, 0]], C = diag(4, 1): ΔW Q' = [[2, 0]] (up to the eigenvector order), σ = 2
    A, B, W_eff = eora_compensation(np.array([[2.0, 1.0]]), np.array([[1.0, 1.0]]), np.diag([4.0, 1.0]), 1)
    np.testing.assert_allclose(B, [[np.sqrt(2.0)]], rtol=1e-15)
    np.testing.assert_allclose(A, [[1 / np.sqrt(2.0), 0.0]], rtol=1e-15, atol=1e-16)
    np.testing.assert_allclose(W_eff, [[2.0, 1.0]], rtol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_output_error_is_the_tail_of_the_whitened_spectrum_and_beats_plain_svd(backend, rank):
    W, W_c, X = _problem(1)
    C = X.T @ X
    A, B, W_eff = _backend(backend).get("eora_compensation")(W, W_c, C, rank)
    sigma = _whitened_singular_values(W - W_c, C)
    achieved = _output_error(W, W_eff, X)
    np.testing.assert_allclose(achieved, np.sum(sigma[rank:] ** 2), rtol=1e-10)
    # the plain truncated SVD of ΔW (what the official `llama_sequential_svd` baseline computes)
    U, S, Vh = np.linalg.svd(W - W_c)
    plain = W_c + U[:, :rank] * S[:rank] @ Vh[:rank]
    assert achieved <= _output_error(W, plain, X) * (1 + 1e-12)
    assert achieved < _output_error(W, plain, X)  # strictly better on non-isotropic inputs
    # and the layer with the branch computes x W_effᵀ
    np.testing.assert_allclose(lora_linear(X, W_c, A, B, scale=1.0), X @ W_eff.T, rtol=1e-12, atol=1e-12)


def test_no_other_rank_r_update_has_a_smaller_output_error():
    W, W_c, X = _problem(2)
    C = X.T @ X
    A, B, W_eff = eora_compensation(W, W_c, C, 2)
    best = _output_error(W, W_eff, X)
    rng = np.random.default_rng(3)
    for _ in range(20):  # other rank-2 updates: perturbed factors
        other = W_c + (B + 1e-3 * rng.standard_normal(B.shape)) @ (A + 1e-3 * rng.standard_normal(A.shape))
        assert _output_error(W, other, X) > best


@pytest.mark.parametrize("c", [1e-6, 3.0, 1e8])
def test_compensation_does_not_depend_on_the_scale_of_C(c):
    W, W_c, X = _problem(4)
    C = X.T @ X / len(X)
    A, B, W_eff = eora_compensation(W, W_c, C, 2)
    A_c, B_c, W_eff_c = eora_compensation(W, W_c, c * C, 2)
    np.testing.assert_allclose(B_c @ A_c, B @ A, atol=1e-12)
    np.testing.assert_allclose(W_eff_c, W_eff, atol=1e-12)
    np.testing.assert_allclose(B_c, B * c**0.25, rtol=1e-9)  # Σ ∝ √c: B ∝ c^{¼}, A ∝ c^{-¼}
    np.testing.assert_allclose(A_c, A * c**-0.25, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("rank", [1, 3])
def test_identity_covariance_is_the_plain_truncated_svd(rank):
    W, W_c, _ = _problem(5)
    A, B, W_eff = eora_compensation(W, W_c, np.eye(5), rank)
    U, S, Vh = np.linalg.svd(W - W_c)
    np.testing.assert_allclose(B @ A, U[:, :rank] * S[:rank] @ Vh[:rank], atol=1e-13)
    np.testing.assert_allclose(np.linalg.svd(B, compute_uv=False) ** 2, S[:rank], rtol=1e-13)  # B = U √S


@pytest.mark.parametrize("backend", BACKENDS)
def test_rank_of_delta_recovers_the_original_weight(backend):
    rng = np.random.default_rng(6)
    W = rng.standard_normal((6, 5))
    delta = np.outer(rng.standard_normal(6), rng.standard_normal(5)) + np.outer(
        rng.standard_normal(6), rng.standard_normal(5)
    )
    _, _, X = _problem(7)
    A, B, W_eff = _backend(backend).get("eora_compensation")(W, W - delta, X.T @ X, 2)
    np.testing.assert_allclose(W_eff, W, atol=1e-13)
    # one rank more: the extra component is empty (σ = 0 up to rounding), its product ~ 0
    A, B, W_eff = eora_compensation(W, W - delta, X.T @ X, 3)
    np.testing.assert_allclose(W_eff, W, atol=1e-13)
    assert np.abs(np.outer(B[:, 2], A[2])).max() < 1e-13


def test_matches_the_official_inverse_formula_when_C_is_invertible():
    # the official A = √Σ_r V_rᵀ Λ^{-½} Qᵀ equals the reference's Σ_r^{-½} U_rᵀ ΔW
    W, W_c, X = _problem(8)
    C = X.T @ X
    eigenvalues, Q = np.linalg.eigh(C)
    U, S, Vh = np.linalg.svd((W - W_c) @ (Q * np.sqrt(eigenvalues)), full_matrices=False)
    official_A = np.sqrt(S[:2])[:, None] * (Vh[:2] @ (Q / np.sqrt(eigenvalues)).T)
    official_B = U[:, :2] * np.sqrt(S[:2])
    A, B, _ = eora_compensation(W, W_c, C, 2)
    np.testing.assert_allclose(B @ A, official_B @ official_A, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_exactly_zero_eigenvalue_gives_the_limit_of_damping(backend):
    # feature 2 is never excited: C has a zero row and column, the official Λ^{-½} is inf there
    W, W_c, X = _problem(9)
    X[:, 2] = 0.0
    C = X.T @ X
    A, B, W_eff = _backend(backend).get("eora_compensation")(W, W_c, C, 2)
    assert np.isfinite(A).all() and np.isfinite(B).all()
    # the reference is the ε → 0 limit of the damped problem C + εI (Q' moves like √ε)
    gaps = []
    for eps in (1e-8, 1e-12):
        A_eps, B_eps, _ = eora_compensation(W, W_c, C + eps * np.eye(5), 2)
        gaps.append(np.abs(B @ A - B_eps @ A_eps).max())
    assert gaps[1] < 1e-5 and gaps[1] < gaps[0] / 30
    # still the optimal output error on the calibration data: the tail of the whitened spectrum
    eigenvalues, Q = np.linalg.eigh(C)
    sigma = np.linalg.svd((W - W_c) @ (Q * np.sqrt(np.clip(eigenvalues, 0, None))), compute_uv=False)
    np.testing.assert_allclose(_output_error(W, W_eff, X), np.sum(sigma[2:] ** 2), rtol=1e-10)


def test_official_code_gives_nan_on_the_zero_eigenvalue_example():
    deviation = next(
        d for d in refimpl.deviations("eora_compensation") if d.name == "eora-zero-eigenvalue-nan"
    )
    W, W_c, C, r = deviation.example.args
    A, B, W_eff = eora_compensation(W, W_c, C, r)
    # ΔW = [[1, 1]], C = diag(0, 1): ΔW Q' = [[0, 1]], σ = 1, U = [[1]], A = Uᵀ ΔW / √1
    np.testing.assert_allclose(A, [[1.0, 1.0]], rtol=1e-15)
    np.testing.assert_allclose(B, [[1.0]], rtol=1e-15)
    np.testing.assert_allclose(W_eff, W, rtol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_negative_eigenvalues_become_zero_or_officially_the_smallest_positive_one(backend):
    W, W_c, _ = _problem(10, in_features=4)
    call = _backend(backend).get("eora_compensation")
    indefinite = np.diag([2.0, 1.0, -0.5, 3.0])
    for rule, replaced in (("zero", 0.0), ("smallest_positive", 1.0)):
        got = call(W, W_c, indefinite, 2, negative_eigenvalues=rule)
        want = eora_compensation(W, W_c, np.diag([2.0, 1.0, replaced, 3.0]), 2)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, atol=1e-14)


def test_a_rounding_level_negative_eigenvalue_does_not_switch_the_answer():
    # a dead feature whose eigenvalue comes out −1e-16 or +1e-16 or 0: the same compensation;
    # the official rule gives the −1e-16 case the weight of the weakest live direction instead
    W, W_c = np.diag([3.0, 1.0]), np.zeros((2, 2))
    results = [eora_compensation(W, W_c, np.diag([tiny, 1.0]), 1)[2] for tiny in (-1e-16, 0.0, 1e-16)]
    for result in results:
        np.testing.assert_allclose(result, [[0.0, 0.0], [0.0, 1.0]], atol=1e-7)
    official = eora_compensation(W, W_c, np.diag([-1e-16, 1.0]), 1, negative_eigenvalues="smallest_positive")
    np.testing.assert_allclose(official[2], [[3.0, 0.0], [0.0, 0.0]], atol=1e-14)


def test_no_compression_error_gives_zero_factors():
    W, _, X = _problem(11)
    A, B, W_eff = eora_compensation(W, W.copy(), X.T @ X, 2)
    assert not A.any() and not B.any()
    np.testing.assert_array_equal(W_eff, W)


def test_float32_and_the_refusals():
    W, W_c, X = _problem(12)
    C = X.T @ X
    A, B, W_eff = eora_compensation(W.astype(np.float32), W_c.astype(np.float32), C.astype(np.float32), 2)
    assert A.dtype == B.dtype == W_eff.dtype == np.float32
    np.testing.assert_allclose(W_eff, eora_compensation(W, W_c, C, 2)[2], atol=1e-4)
    with pytest.raises(refimpl.InputError, match="positive trace"):
        eora_compensation(W, W_c, np.zeros((5, 5)), 2)
    with pytest.raises(refimpl.InputError, match=r"min\(out, in\) = 5"):
        eora_compensation(W, W_c, C, 6)
