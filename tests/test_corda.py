"""CorDA: the calibration covariance (official scaling and divisor) and the oriented initialization."""

import numpy as np
import pytest

import refimpl
from refimpl.adapters import corda_covariance, corda_init, lora_linear, pissa_init

BACKENDS = ["numpy", "cupy[host]"]


def _backend(name):
    if name == "cupy[host]":
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


def _matrix_with_spectrum(singular_values, shape, seed=0):
    rng = np.random.default_rng(seed)
    k = len(singular_values)
    left, _ = np.linalg.qr(rng.standard_normal((shape[0], k)))
    right, _ = np.linalg.qr(rng.standard_normal((shape[1], k)))
    return left * np.asarray(singular_values) @ right.T


def _covariance(rows, features, seed=1):
    X = np.random.default_rng(seed).standard_normal((rows, features)) * np.linspace(0.5, 2.0, features)
    return X, X.T @ X / rows


# -- corda_covariance -------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_covariance_scales_each_sample_by_the_absolute_value_of_its_largest_element(backend):
    # sample 0 = [2, -4]: max = 2 -> [1, -2]; sample 1 = [-1, -2]: max = -1, |max| = 1 -> [-1, -2]
    # C = ([[1, -2], [-2, 4]] + [[1, 2], [2, 4]]) / 2 = [[1, 0], [0, 4]]
    X = np.array([[[2.0, -4.0]], [[-1.0, -2.0]]])
    call = _backend(backend).get("corda_covariance")
    np.testing.assert_allclose(call(X, sample_scaling="abs_of_max"), [[1.0, 0.0], [0.0, 4.0]], rtol=1e-15)
    # max |X_s| instead: [0.5, -1] and [-0.5, -1] -> [[0.25, 0], [0, 1]]
    np.testing.assert_allclose(call(X, sample_scaling="max_abs"), [[0.25, 0.0], [0.0, 1.0]], rtol=1e-15)
    # no scaling: ([[4, -8], [-8, 16]] + [[1, 2], [2, 4]]) / 2
    np.testing.assert_allclose(call(X, sample_scaling="none"), [[2.5, -3.0], [-3.0, 10.0]], rtol=1e-15)
    # the authors' hard-coded divisor 256 in place of N = 2
    np.testing.assert_allclose(
        call(X, sample_scaling="abs_of_max", official_divisor=256),
        [[2 / 256, 0.0], [0.0, 8 / 256]],
        rtol=1e-15,
    )


def test_covariance_equals_the_official_hook_loop():
    # the official hook, one sample per forward call: x / |max x|, C += xᵀx; PEFT then divides by N
    rng = np.random.default_rng(2)
    X = rng.standard_normal((5, 7, 4)) * np.array([1.0, 0.1, 10.0, 3.0, 0.5])[:, None, None] - 0.3
    expected = np.zeros((4, 4))
    for sample in X:
        scaled = sample / abs(sample.max())
        expected += scaled.T @ scaled
    np.testing.assert_allclose(corda_covariance(X, sample_scaling="abs_of_max"), expected / 5, rtol=1e-13)
    np.testing.assert_allclose(
        corda_covariance(X, sample_scaling="abs_of_max", official_divisor=256), expected / 256, rtol=1e-13
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("scaling", ["abs_of_max", "max_abs", "none"])
def test_padding_rows_are_ignored_like_separate_shorter_samples(backend, scaling):
    rng = np.random.default_rng(3)
    lengths = np.array([2, 5, 3])
    X = rng.standard_normal((3, 5, 4))
    X[0, 2:] = 100.0  # padding, larger than every real entry: it must enter neither scale nor C
    X[2, 3:] = -100.0
    padded = _backend(backend).get("corda_covariance")(X, lengths, sample_scaling=scaling)
    # the same samples one at a time (N = 1 each), averaged
    singles = [corda_covariance(X[s : s + 1, : lengths[s]], sample_scaling=scaling) for s in range(3)]
    np.testing.assert_allclose(padded, np.mean(singles, axis=0), rtol=1e-13)


def test_covariance_is_exactly_symmetric_and_float32_stays_float32():
    X = np.random.default_rng(4).standard_normal((3, 6, 5)).astype(np.float32)
    C = corda_covariance(X, sample_scaling="max_abs")
    assert C.dtype == np.float32
    assert np.array_equal(C, C.T)
    np.testing.assert_allclose(C, corda_covariance(X.astype(np.float64), sample_scaling="max_abs"), rtol=1e-5)


def test_covariance_refuses_a_sample_with_scale_zero():
    X = -np.ones((2, 3, 2))
    X[1, 0, 0] = 0.0  # sample 1's largest element is 0: |max| = 0 although max |X| = 1
    with pytest.raises(refimpl.InputError, match="sample 1 has scale 0"):
        corda_covariance(X, sample_scaling="abs_of_max")
    assert np.isfinite(corda_covariance(X, sample_scaling="max_abs")).all()
    with pytest.raises(refimpl.InputError, match="'lengths'.*T = 3"):
        corda_covariance(X, np.array([3, 4]), sample_scaling="none")


def test_sample_scaling_has_no_default():
    with pytest.raises(refimpl.InputError, match="required argument: 'sample_scaling'"):
        corda_covariance(np.ones((1, 2, 2)))


# -- corda_init ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["ipm", "kpm"])
def test_lora_layer_after_corda_init_reproduces_the_original_outputs(backend, mode):
    # ‖X W_resᵀ + s X Aᵀ Bᵀ − X Wᵀ‖ ≈ 0
    rng = np.random.default_rng(5)
    W = rng.standard_normal((6, 8))
    X, C = _covariance(20, 8)
    A, B, W_res = _backend(backend).get("corda_init")(W, C, 3, mode=mode, scale=2.0)
    assert A.shape == (3, 8) and B.shape == (6, 3) and W_res.shape == (6, 8)
    outputs = lora_linear(X, W_res, A, B, scale=2.0)
    assert np.linalg.norm(outputs - X @ W.T) <= 1e-13 * np.linalg.norm(X @ W.T)


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_ipm_with_identity_covariance_is_pissa(scale):
    W = _matrix_with_spectrum([5.0, 3.0, 2.0, 1.0, 0.5], (7, 6), seed=6)
    A, B, W_res = corda_init(W, np.eye(6), 2, mode="ipm", scale=scale)
    pissa_A, pissa_B, pissa_W_res = pissa_init(W, 2, scale=scale)
    np.testing.assert_allclose(B @ A, pissa_B @ pissa_A, atol=1e-13)
    np.testing.assert_allclose(W_res, pissa_W_res, atol=1e-13)


def test_the_context_decides_which_input_direction_is_trained():
    # W = diag(3, 1): without context (C = I) the first input direction is the principal one;
    # with C = diag(1, 4) (mean diag 2.5, λ = 0.01): W C_λ = diag(3·1.025, 1·4.025), the second leads
    W, C = np.diag([3.0, 1.0]), np.diag([1.0, 4.0])
    A, B, W_res = corda_init(W, C, 1, mode="ipm")
    np.testing.assert_allclose(B @ A, [[0.0, 0.0], [0.0, 1.0]], atol=1e-15)
    np.testing.assert_allclose(B, [[0.0], [np.sqrt(4.025)]], atol=1e-15)  # √σ with σ = 4.025
    np.testing.assert_allclose(A, [[0.0, np.sqrt(4.025) / 4.025]], atol=1e-15)  # √σ · C_λ⁻¹ row
    np.testing.assert_allclose(W_res, [[3.0, 0.0], [0.0, 0.0]], atol=1e-15)
    A, B, W_res = corda_init(W, C, 1, mode="kpm")  # the smallest oriented component: input 1
    np.testing.assert_allclose(B @ A, [[3.0, 0.0], [0.0, 0.0]], atol=1e-15)
    np.testing.assert_allclose(W_res, [[0.0, 0.0], [0.0, 1.0]], atol=1e-15)
    A, B, W_res = corda_init(W, np.eye(2), 1, mode="ipm")
    np.testing.assert_allclose(B @ A, [[3.0, 0.0], [0.0, 0.0]], atol=1e-15)


def _damped(C, lam):
    return C + lam * np.mean(np.diag(C)) * np.eye(len(C))


@pytest.mark.parametrize("mode", ["ipm", "kpm"])
def test_kept_and_frozen_parts_split_the_oriented_spectrum(mode):
    W = np.random.default_rng(7).standard_normal((5, 7))
    _, C = _covariance(12, 7, seed=8)
    A, B, W_res = corda_init(W, C, 2, mode=mode, scale=4.0)
    C_damped = _damped(C, 0.01)
    sigma = np.linalg.svd(W @ C_damped, compute_uv=False)
    kept = np.linalg.svd(4.0 * B @ A @ C_damped, compute_uv=False)[:2]
    frozen = np.linalg.svd(W_res @ C_damped, compute_uv=False)[:3]
    expected_kept, expected_frozen = (sigma[:2], sigma[2:]) if mode == "ipm" else (sigma[3:], sigma[:3])
    np.testing.assert_allclose(kept, expected_kept, rtol=1e-12)
    np.testing.assert_allclose(frozen, expected_frozen, rtol=1e-12)


def test_rank_deficient_covariance_is_damped_once_at_the_default():
    # 2 calibration rows of 6 features: C has rank 2; C_λ = C + 0.01·mean(diag C)·I is invertible
    W = np.random.default_rng(9).standard_normal((4, 6))
    _, C = _covariance(2, 6, seed=10)
    assert np.linalg.matrix_rank(C) == 2
    A, B, W_res = corda_init(W, C, 2, mode="ipm")
    # by hand: s·B A = U_r Σ_r V_rᵀ C_λ⁻¹ with the SVD of W C_λ at λ = 0.01
    C_damped = _damped(C, 0.01)
    U, S, Vh = np.linalg.svd(W @ C_damped)
    np.testing.assert_allclose(B @ A, U[:, :2] * S[:2] @ Vh[:2] @ np.linalg.inv(C_damped), atol=1e-12)
    np.testing.assert_allclose(W_res + B @ A, W, atol=1e-13)


def test_damping_loop_doubles_lambda_until_the_inverse_is_accurate():
    # from λ = 1e-20 on a rank-1 C, C_λ is numerically singular: λ doubles until ‖C_λ C_λ⁻¹ − I‖_F < 0.05
    W = np.random.default_rng(11).standard_normal((4, 5))
    _, C = _covariance(1, 5, seed=12)
    doublings, lam = 0, 1e-20
    while True:  # the loop, written out independently
        C_damped = _damped(C, lam)
        try:
            error = np.linalg.norm(C_damped @ np.linalg.inv(C_damped) - np.eye(5))
        except np.linalg.LinAlgError:
            error = np.inf
        if error < 0.05:
            break
        lam, doublings = 2 * lam, doublings + 1
    assert doublings > 5  # the loop really ran
    looped = corda_init(W, C, 2, mode="ipm", damping=1e-20)
    direct = corda_init(W, C, 2, mode="ipm", damping=lam)  # converges at once at the final λ
    for got, want in zip(looped, direct, strict=True):
        np.testing.assert_array_equal(got, want)
    # a stricter tolerance damps more: the loop goes on past that λ
    stricter = corda_init(W, C, 2, mode="ipm", damping=1e-20, inverse_tolerance=1e-9)
    assert not np.allclose(stricter[2], direct[2], rtol=0, atol=1e-13)


def test_the_scale_of_the_covariance_does_not_matter():
    W = np.random.default_rng(13).standard_normal((5, 4))
    _, C = _covariance(9, 4, seed=14)
    for mode in ("ipm", "kpm"):
        A, B, W_res = corda_init(W, C, 2, mode=mode)
        A2, B2, W_res2 = corda_init(W, 1e5 * C, 2, mode=mode)
        np.testing.assert_allclose(B2 @ A2, B @ A, atol=1e-12)
        np.testing.assert_allclose(B2, B * np.sqrt(1e5), rtol=1e-10)  # Σ scales by c, V̂ by 1/c
        np.testing.assert_allclose(W_res2, W_res, atol=1e-12)


def test_kpm_on_a_rank_deficient_weight_keeps_empty_components():
    W = _matrix_with_spectrum([2.0, 0.7], (5, 4), seed=15)
    _, C = _covariance(9, 4, seed=16)
    A, B, W_res = corda_init(W, C, 2, mode="kpm")
    assert np.abs(B @ A).max() < 1e-14  # the two smallest oriented singular values are 0
    np.testing.assert_allclose(W_res, W, atol=1e-14)


def test_corda_init_float32_stays_float32_and_refuses_a_zero_covariance():
    W = np.random.default_rng(17).standard_normal((4, 6)).astype(np.float32)
    _, C = _covariance(10, 6, seed=18)
    A, B, W_res = corda_init(W, C.astype(np.float32), 2, mode="ipm")
    assert A.dtype == B.dtype == W_res.dtype == np.float32
    reference = corda_init(W.astype(np.float64), C.astype(np.float32).astype(np.float64), 2, mode="ipm")
    np.testing.assert_allclose(B @ A, reference[1] @ reference[0], atol=1e-4)
    with pytest.raises(refimpl.InputError, match="positive mean diagonal"):
        corda_init(W, np.zeros((6, 6), np.float32), 2, mode="ipm")
    with pytest.raises(refimpl.InputError, match=r"min\(out, in\) = 4"):
        corda_init(W, C.astype(np.float32), 5, mode="ipm")
    # the mode has no default (PEFT's is IPM, the authors' script KPM)
    with pytest.raises(refimpl.InputError, match="required argument: 'mode'"):
        corda_init(W, C.astype(np.float32), 2)
