"""TrAct: both solve branches agree, the λ limits, the stated formula, a convolution through im2col."""

import numpy as np
import pytest

import refimpl
from refimpl.optim import tract_linear
from refimpl.optim.tract import weight_gradient_dual, weight_gradient_primal
from refimpl_conformance.cases.optim.tract import im2col


def _backend(name):
    if name == "cupy[host]":
        from refimpl_cupy import host_backend

        return host_backend()
    return refimpl.backend(name)


def _layer(rows, features, outputs, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, features)) + 0.3
    W = rng.standard_normal((outputs, features))
    bias = rng.standard_normal(outputs)
    g_y = rng.standard_normal((rows, outputs))
    return x, W, bias, g_y


def _pullback(x, W, bias, g_y, lam, backend="numpy"):
    _, pullback = refimpl.vjp("tract_linear", x, W, bias, lam=lam, backend=_backend(backend))
    return pullback(g_y)


def test_known_value_by_hand():
    # X = 2I (b = n = 2): XᵀX/b = 2I, W̄ = GᵀX (2I + λI)⁻¹ = GᵀX/3 for λ = 1
    x = np.array([[2.0, 0.0], [0.0, 2.0]])
    g_y = np.array([[1.0, 2.0], [3.0, 4.0]])
    g_x, g_W, g_bias = _pullback(x, np.eye(2), np.zeros(2), g_y, lam=1.0)
    np.testing.assert_allclose(g_W, g_y.T @ x / 3, rtol=1e-15)
    np.testing.assert_array_equal(g_x, g_y)  # W = I: X̄ = G W = G
    np.testing.assert_array_equal(g_bias, [4.0, 6.0])


def test_forward_is_the_plain_linear_layer():
    x, W, bias, _ = _layer(5, 3, 2)
    np.testing.assert_allclose(tract_linear(x, W, bias), x @ W.T + bias, rtol=1e-15)


@pytest.mark.parametrize("rows, features", [(3, 8), (8, 3), (6, 6), (1, 5), (40, 7)])
def test_both_branches_agree(rows, features):
    x, _, _, g_y = _layer(rows, features, 4, seed=rows)
    for lam in (1e-3, 0.1, 10.0):
        primal, dual = weight_gradient_primal(x, g_y, lam), weight_gradient_dual(x, g_y, lam)
        # the (b, b) system of a wide X is singular but for λ: its condition number is ~ ‖X‖²/(bλ)
        np.testing.assert_allclose(primal, dual, rtol=0, atol=1e-11 * np.abs(primal).max() / min(lam, 1))


def test_the_papers_woodbury_form_is_the_same_matrix():
    # (1/λ) Gᵀ (I − (1/λ) A (A/λ + I)⁻¹) X with A = XXᵀ/b, written out with explicit inverses
    x, _, _, g_y = _layer(3, 9, 2, seed=4)
    lam, rows = 0.3, 3
    A = x @ x.T / rows
    woodbury = g_y.T @ (np.eye(rows) - A @ np.linalg.inv(A / lam + np.eye(rows)) / lam) @ x / lam
    np.testing.assert_allclose(weight_gradient_dual(x, g_y, lam), woodbury, rtol=1e-12)


def test_input_and_bias_gradients_are_the_true_ones():
    x, W, bias, g_y = _layer(6, 4, 3)
    g_x, _, g_bias = _pullback(x, W, bias, g_y, lam=0.1)
    np.testing.assert_allclose(g_x, g_y @ W, rtol=1e-15)
    np.testing.assert_allclose(g_bias, g_y.sum(axis=0), rtol=1e-15)


@pytest.mark.parametrize("rows, features", [(12, 4), (3, 9)])
def test_large_lambda_gives_the_ordinary_gradient_over_lambda(rows, features):
    x, W, bias, g_y = _layer(rows, features, 3)
    lam = 1e8
    _, g_W, _ = _pullback(x, W, bias, g_y, lam=lam)
    np.testing.assert_allclose(lam * g_W, g_y.T @ x, rtol=1e-6)


def test_small_lambda_gives_the_input_whitened_update():
    x, W, bias, g_y = _layer(50, 4, 3)
    _, g_W, _ = _pullback(x, W, bias, g_y, lam=1e-10)
    whitened = g_y.T @ x @ np.linalg.inv(x.T @ x / 50)
    np.testing.assert_allclose(g_W, whitened, rtol=1e-7)
    # the whitened update undoes an invertible mixing of the inputs: X → X P gives W̄ → W̄ P⁻ᵀ
    mix = np.array([[2.0, 0.5, 0.0, 0.0], [0.0, 1.0, 0.0, 0.3], [0.0, 0.0, 3.0, 0.0], [1.0, 0.0, 0.0, 1.0]])
    _, g_W_mixed, _ = _pullback(x @ mix, W, bias, g_y, lam=1e-10)
    np.testing.assert_allclose(g_W_mixed, g_W @ np.linalg.inv(mix).T, rtol=1e-6)


def test_the_weight_step_solves_the_ridge_problem():
    # G = ∂(mean loss)/∂Y, so b·G holds each row's own gradient: Δ = Gᵀ X M⁻¹ minimizes
    # (1/b)‖X Δᵀ − b·G‖² + λ‖Δ‖², whose gradient (2/b)(X Δᵀ − b·G)ᵀ X + 2λΔ is 0 there
    x, W, bias, g_y = _layer(7, 5, 3)
    lam, rows = 0.2, 7
    _, delta, _ = _pullback(x, W, bias, g_y, lam=lam)
    gradient = 2 * (x @ delta.T - rows * g_y).T @ x / rows + 2 * lam * delta
    np.testing.assert_allclose(gradient, 0.0, atol=1e-12)


def test_convolution_through_im2col(backend="numpy"):
    rng = np.random.default_rng(5)
    images = rng.standard_normal((2, 3, 6, 5))  # (B, C, H, W)
    kernel = rng.standard_normal((4, 3, 3, 3))  # (out, C, k, k)
    bias = rng.standard_normal(4)
    stride, padding = 2, 1
    patches, (out_h, out_w) = im2col(images, 3, stride, padding)
    assert patches.shape == (2 * out_h * out_w, 27) and (out_h, out_w) == (3, 3)
    # the forward is the convolution (direct correlation loops)
    padded = np.pad(images, ((0, 0), (0, 0), (1, 1), (1, 1)))
    direct = np.zeros((2, 4, out_h, out_w))
    for b in range(2):
        for o in range(4):
            for i in range(out_h):
                for j in range(out_w):
                    window = padded[b, :, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3]
                    direct[b, o, i, j] = np.sum(window * kernel[o]) + bias[o]
    layer = _backend(backend)
    y, pullback = refimpl.vjp("tract_linear", patches, kernel.reshape(4, -1), bias, lam=0.1, backend=layer)
    np.testing.assert_allclose(y.reshape(2, out_h, out_w, 4).transpose(0, 3, 1, 2), direct, rtol=1e-12)
    # the weight gradient: the stated formula on the im2col rows (b = 18 patches < n = 27)
    g_out = rng.standard_normal((2, 4, out_h, out_w))
    g_y = g_out.transpose(0, 2, 3, 1).reshape(-1, 4)
    _, g_W, _ = pullback(g_y)
    stated = g_y.T @ patches @ np.linalg.inv(patches.T @ patches / 18 + 0.1 * np.eye(27))
    np.testing.assert_allclose(g_W, stated, rtol=1e-9, atol=1e-12)
    # for large λ, λ·W̄ is the convolution's own weight gradient (direct loops)
    _, pullback_large = refimpl.vjp(
        "tract_linear", patches, kernel.reshape(4, -1), bias, lam=1e9, backend=layer
    )
    _, g_W_large, _ = pullback_large(g_y)
    conv_grad = np.zeros_like(kernel)
    for b in range(2):
        for i in range(out_h):
            for j in range(out_w):
                window = padded[b, :, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3]
                conv_grad += g_out[b, :, i, j][:, None, None, None] * window[None]
    np.testing.assert_allclose(1e9 * g_W_large.reshape(kernel.shape), conv_grad, rtol=1e-6)


@pytest.mark.parametrize("backend", ["numba", "cupy[host]"])
@pytest.mark.parametrize("rows, features", [(30, 6), (4, 11)])
def test_fast_backends_take_the_same_branches(backend, rows, features):
    x, W, bias, g_y = _layer(rows, features, 5)
    expected = _pullback(x, W, bias, g_y, lam=0.05)
    got = _pullback(x, W, bias, g_y, lam=0.05, backend=backend)
    for e, g in zip(expected, got, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-11, atol=1e-13)


def test_float32_small_lambda_keeps_the_solve_in_float64():
    x, W, bias, g_y = _layer(200, 5, 3)
    x32, W32, b32, g32 = (a.astype(np.float32) for a in (x, W, bias, g_y))
    _, g_W, _ = _pullback(x32, W32, b32, g32, lam=1e-7)
    assert g_W.dtype == np.float32
    x64, g64 = x32.astype(np.float64), g32.astype(np.float64)
    expected = np.linalg.solve(x64.T @ x64 / 200 + 1e-7 * np.eye(5), x64.T @ g64).T
    np.testing.assert_allclose(g_W, expected, rtol=1e-6)


def test_the_custom_vjp_is_declared_and_stated():
    from refimpl_conformance import cases_for

    op = refimpl.get("tract_linear")
    assert op.custom_vjp and "ridge" in op.custom_vjp
    x, W, bias, g_y = _layer(4, 6, 2)
    stated = cases_for("tract_linear").stated_vjp((x, W, bias), {"lam": 0.1}, [g_y])
    for s, g in zip(stated, _pullback(x, W, bias, g_y, lam=0.1), strict=True):
        np.testing.assert_allclose(g, s, rtol=1e-12, atol=1e-14)


def test_suite_catches_the_plain_weight_gradient():
    from refimpl import Backend, Impl
    from refimpl_conformance import cases_for, check_finite_differences

    # the derivative Gᵀ X instead of the TrAct step fails the stated-formula check
    op = refimpl.get("tract_linear")

    def backward(residuals, g_y):
        x, W, _ = residuals
        return g_y @ W, g_y.T @ x, g_y.sum(axis=0)

    port = Backend("port", {"tract_linear": Impl(op.forward, backward)})
    from refimpl_conformance import check_sample

    sample = cases_for("tract_linear").edges()[2]  # b ≥ n
    results = check_sample(op, cases_for("tract_linear"), port, sample, "float64")
    assert any(r.check == "vjp" and r.status == "fail" for r in results)
    # and the reference passes its own stated formula
    assert all(r.status == "pass" for r in check_finite_differences(op, sample))
