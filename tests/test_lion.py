"""Lion: the published update rule, bit for bit, on every backend."""

import math
import re
from fractions import Fraction

import numpy as np
import pytest

import refimpl
from refimpl import Backend, Impl
from refimpl.optim import lion_init, lion_step
from refimpl_conformance import cases_for, check_sample


def _backend(name):
    if name == "cupy[host]":
        from refimpl_cupy import host_backend

        return host_backend()
    return refimpl.backend(name)


BACKENDS = ["numpy", "numba", "cupy[host]"]


def test_first_step_from_zero_momentum_is_minus_lr_times_sign_of_gradient():
    rng = np.random.default_rng(0)
    theta, g = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    g[0, :2] = 0.0
    new_theta, m = lion_step(theta, g, lion_init(theta), lr=3e-3)
    np.testing.assert_array_equal(new_theta, theta - 3e-3 * np.sign(g))
    np.testing.assert_array_equal(new_theta[0, :2], theta[0, :2])  # sign(0) = 0: no move


def test_first_step_is_invariant_to_positive_rescaling_of_the_gradient():
    rng = np.random.default_rng(1)
    theta, g = rng.standard_normal(50), rng.standard_normal(50)
    zero = np.zeros(50)
    step = lion_step(theta, g, zero, lr=0.01, weight_decay=0.3)[0]
    for scale in (1e-8, 0.37, 1e6):
        np.testing.assert_array_equal(lion_step(theta, scale * g, zero, lr=0.01, weight_decay=0.3)[0], step)


def test_coordinates_with_zero_direction_only_decay():
    theta = np.array([1.5, -2.0, 0.25])
    m = np.array([0.0, 0.3, 0.0])
    g = np.array([0.0, -0.3, 0.4])  # with β1 = 1/2, c = m/2 + g/2 is exactly 0 for the first two
    new_theta, _ = lion_step(theta, g, m, lr=0.01, beta1=0.5, weight_decay=0.5)
    decay = 1 - 0.01 * 0.5
    np.testing.assert_array_equal(new_theta[:2], theta[:2] * decay)  # sign(0) = 0: decay only
    assert new_theta[2] == theta[2] * decay - 0.01


def test_momentum_update_has_no_bias_correction():
    g1, g2 = np.array([0.4, -2.0]), np.array([1.0, 3.0])
    theta = np.zeros(2)
    _, m1 = lion_step(theta, g1, lion_init(theta))
    np.testing.assert_array_equal(m1, (1 - 0.99) * g1)  # not g1 (Adam would divide by 1 − β2)
    _, m2 = lion_step(theta, g2, m1)
    np.testing.assert_array_equal(m2, 0.99 * m1 + (1 - 0.99) * g2)


def test_lion_init_returns_zeros_of_the_parameters_dtype_and_shape():
    m = lion_init(np.ones((2, 3), np.float32))
    assert m.dtype == np.float32 and m.shape == (2, 3)
    np.testing.assert_array_equal(m, 0.0)


def _official_lion_step(theta, g, m, lr, beta1, beta2, weight_decay):
    """google/automl lion_pytorch.py, element by element in Python floats (IEEE double)."""

    def sign(x):
        return 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)

    new_theta, new_m = [], []
    for p, grad, exp_avg in zip(theta, g, m, strict=True):
        p = p * (1 - lr * weight_decay)  # p.data.mul_(1 - lr * weight_decay)
        update = exp_avg * beta1 + grad * (1 - beta1)  # exp_avg * beta1 + grad * (1 - beta1)
        p = p + -lr * sign(update)  # p.add_(update.sign_(), alpha=-lr)
        exp_avg = exp_avg * beta2 + grad * (1 - beta2)  # exp_avg.mul_(beta2).add_(grad, alpha=1 - beta2)
        new_theta.append(p)
        new_m.append(exp_avg)
    return new_theta, new_m


def _quadratic_problem():
    rng = np.random.default_rng(2)
    curvature = rng.uniform(0.5, 3.0, 16)
    target = rng.standard_normal(16)
    theta0 = rng.standard_normal(16)
    return curvature, target, theta0


HYPER = {"lr": 0.02, "beta1": 0.9, "beta2": 0.99, "weight_decay": 0.1}


def test_lion_matches_the_official_update_order_bit_for_bit_over_20_steps():
    curvature, target, theta = _quadratic_problem()
    m = lion_init(theta)
    theta_py, m_py = [float(v) for v in theta], [0.0] * len(theta)
    for _ in range(20):
        g = curvature * (theta - target)  # gradient of ½ Σ a (θ − t)²
        theta, m = lion_step(theta, g, m, **HYPER)
        g_py = [a * (p - t) for a, p, t in zip(curvature, theta_py, target, strict=True)]
        theta_py, m_py = _official_lion_step(theta_py, g_py, m_py, **HYPER)
        np.testing.assert_array_equal(theta, theta_py)
        np.testing.assert_array_equal(m, m_py)
    # the trajectory did optimize: sign steps of 0.02 brought every coordinate closer
    assert np.abs(theta - target).max() < np.abs(_quadratic_problem()[2] - target).max()


def _trajectory(backend, dtype, steps=20):
    curvature, target, theta = (a.astype(dtype) for a in _quadratic_problem())
    step = _backend(backend).get("lion_step")
    m = _backend(backend).get("lion_init")(theta)
    history = []
    for _ in range(steps):
        g = curvature * (theta - target)
        theta, m = step(theta, g, m, **HYPER)
        history.append((theta, m))
    return history


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("backend", ["numba", "cupy[host]"])
def test_backend_trajectory_is_bit_exact_with_the_reference(backend, dtype):
    for (theta, m), (theta_ref, m_ref) in zip(
        _trajectory(backend, dtype), _trajectory("numpy", dtype), strict=True
    ):
        assert theta.dtype == dtype and m.dtype == dtype
        np.testing.assert_array_equal(theta, theta_ref)
        np.testing.assert_array_equal(m, m_ref)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_inputs_give_float32_outputs_with_the_same_shape(backend):
    theta = np.ones((2, 1, 3), np.float32)
    new_theta, m = _backend(backend).get("lion_step")(theta, theta, np.zeros_like(theta), lr=0.5)
    assert new_theta.dtype == m.dtype == np.float32 and new_theta.shape == m.shape == (2, 1, 3)
    np.testing.assert_array_equal(new_theta, 0.5)


def test_bad_hyperparameters_raise_input_error_naming_op_and_argument():
    x = np.zeros(3)
    for kwargs, argument in [
        ({"lr": -1.0}, "lr"),
        ({"beta1": 1.0}, "beta1"),
        ({"weight_decay": -0.1}, "weight_decay"),
    ]:
        with pytest.raises(refimpl.InputError, match=rf"^lion_step: argument '{argument}'"):
            lion_step(x, x, x, **kwargs)
    with pytest.raises(refimpl.InputError, match=r"^lion_step: argument 'momentum'.*nothing is cast"):
        lion_step(x, x, x.astype(np.float32))


# -- the conformance suite: rounding variants pass, wrong updates fail ----------------------
def _results(forward, dtypes=("float64", "float32")):
    backend = Backend("port", {"lion_step": Impl(forward)})
    op, cases = refimpl.get("lion_step"), cases_for("lion_step")
    return [
        result
        for sample in cases.samples(seeds=range(4))
        for dtype in dtypes
        for result in check_sample(op, cases, backend, sample, dtype)
    ]


def _failures(forward, dtypes=("float64", "float32")):
    return [r for r in _results(forward, dtypes) if r.status != "pass"]


def test_the_algebraic_weight_decay_form_rounds_differently_and_passes():
    # optax's Lion: θ − η(sign(c) + λθ). Not the official order, but the same update up to one
    # rounding: the verifier must accept it (it is correct code), in float64 as in float32
    def forward(params, grads, momentum, *, lr=1e-4, beta1=0.9, beta2=0.99, weight_decay=0.0):
        c = beta1 * momentum + (1 - beta1) * grads
        new_params = params - lr * (np.sign(c) + weight_decay * params)  # θ − η(sign(c) + λθ)
        return (new_params, beta2 * momentum + (1 - beta2) * grads), None

    results = _results(forward)
    decayed = [r for r in results if r.sample == "large η·λ" and r.dtype == "float64"]
    reference = lion_step(*cases_for("lion_step").edges()[2].args, lr=0.03, weight_decay=7.0)[0]
    assert not np.array_equal(
        forward(*cases_for("lion_step").edges()[2].args, lr=0.03, weight_decay=7.0)[0][0], reference
    )
    assert decayed and all(r.status == "pass" for r in decayed)  # differs in the last bit, and passes
    assert not [r for r in results if r.status != "pass"]


def test_suite_catches_a_sign_without_zero():
    def forward(params, grads, momentum, *, lr=1e-4, beta1=0.9, beta2=0.99, weight_decay=0.0):
        c = beta1 * momentum + (1 - beta1) * grads
        sign = np.where(c >= 0, 1.0, -1.0)  # sign(0) = +1
        new_params = params * (1 - lr * weight_decay) - lr * sign
        return (new_params, beta2 * momentum + (1 - beta2) * grads), None

    failures = _failures(forward)
    assert {f.sample for f in failures} >= {"c = 0 exactly: decay only"}
    assert all(f.status == "fail" for f in failures)


def test_suite_catches_adam_style_bias_correction_of_the_momentum():
    def forward(params, grads, momentum, *, lr=1e-4, beta1=0.9, beta2=0.99, weight_decay=0.0):
        c = beta1 * momentum + (1 - beta1) * grads
        new_params = params * (1 - lr * weight_decay) - lr * np.sign(c)
        return (new_params, (beta2 * momentum + (1 - beta2) * grads) / (1 - beta2)), None

    failures = _failures(forward)
    assert failures and all(f.status == "fail" and "output 'momentum'" in f.detail for f in failures)


def test_suite_catches_the_decay_applied_after_the_step():
    # θ' = (θ − η·sign(c))·(1 − ηλ): off by η²λ, far above rounding wherever λ > 0
    def forward(params, grads, momentum, *, lr=1e-4, beta1=0.9, beta2=0.99, weight_decay=0.0):
        c = beta1 * momentum + (1 - beta1) * grads
        new_params = (params - lr * np.sign(c)) * (1 - lr * weight_decay)
        return (new_params, beta2 * momentum + (1 - beta2) * grads), None

    failures = _failures(forward, dtypes=("float64",))
    assert "large η·λ" in {f.sample for f in failures}
    assert all(f.status == "fail" and "output 'params'" in f.detail for f in failures)


def _fma(a, b, c):
    """a·b + c rounded once (exact rational arithmetic, then one rounding)."""
    return float(Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c)))


def test_fused_multiply_add_in_the_momentum_is_one_rounding_and_passes():
    # PyTorch's exp_avg.mul_(β2).add_(grad, alpha=1 − β2) on vectorized CPU paths and CUDA
    def forward(params, grads, momentum, *, lr=1e-4, beta1=0.9, beta2=0.99, weight_decay=0.0):
        c = beta1 * momentum + (1 - beta1) * grads
        new_params = params * (1 - lr * weight_decay) - lr * np.sign(c)
        fused = [_fma(1 - beta2, g, beta2 * m) for g, m in zip(grads.ravel(), momentum.ravel(), strict=True)]
        return (new_params, np.array(fused, dtype=momentum.dtype).reshape(momentum.shape)), None

    sample = next(s for s in cases_for("lion_step").edges() if s.name == "4096 coordinates")
    fused = forward(*sample.args, **sample.kwargs)[0][1]
    plain = lion_step(*sample.args, **sample.kwargs)[1]
    assert 0 < np.count_nonzero(fused != plain)  # the FMA really rounds differently here
    assert not _failures(forward)


def _ptx(source, options):
    nvrtc = pytest.importorskip("cuda.bindings.nvrtc")

    def ok(result):
        status, *values = result
        assert status == nvrtc.nvrtcResult.NVRTC_SUCCESS, status
        return values[0] if values else None

    program = ok(nvrtc.nvrtcCreateProgram(source.encode(), b"lion.cu", 0, [], []))
    flags = [b"--gpu-architecture=compute_70", *(o.encode() for o in options)]
    (status,) = nvrtc.nvrtcCompileProgram(program, len(flags), flags)
    if status != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        log = b" " * ok(nvrtc.nvrtcGetProgramLogSize(program))
        nvrtc.nvrtcGetProgramLog(program, log)
        pytest.fail(log.decode(errors="replace"))
    ptx = b" " * ok(nvrtc.nvrtcGetPTXSize(program))
    ok(nvrtc.nvrtcGetPTX(program, ptx))
    return ptx.decode()


@pytest.mark.parametrize("ctype", ["double", "float"])
def test_cupy_lion_cuda_kernel_rounds_every_product_and_sum_separately(ctype):
    from refimpl_cupy.optim.lion import LION_CUDA, LION_OPTIONS, LION_OUTPUTS, LION_PARAMS

    # the kernel body inside a harness shaped like CuPy's ElementwiseKernel (one element per thread)
    inputs = [p.split()[1] for p in LION_PARAMS.split(",")]
    outputs = [p.split()[1] for p in LION_OUTPUTS.split(",")]
    pointers = ", ".join([f"const T* in_{n}" for n in inputs] + [f"T* out_{n}" for n in outputs])
    source = (
        f"typedef {ctype} T;\n"
        f'extern "C" __global__ void lion({pointers}, int size) {{\n'
        "  int i = blockIdx.x * blockDim.x + threadIdx.x;\n  if (i >= size) return;\n"
        + "".join(f"  const T {n} = in_{n}[i];\n" for n in inputs)
        + "".join(f"  T& {n} = out_{n}[i];\n" for n in outputs)
        + LION_CUDA
        + "}\n"
    )
    suffix = "f64" if ctype == "double" else "f32"
    exact = _ptx(source, LION_OPTIONS)
    assert not re.search(r"\bfma\.", exact)
    assert f"mul.rn.{suffix}" in exact and f"add.rn.{suffix}" in exact
    # without the option NVRTC contracts the momentum updates (why cupy.fuse is not used here)
    assert re.search(rf"\bfma\.rn\.{suffix}", _ptx(source, ()))


def test_published_form_is_what_the_reference_computes():
    # the docstring example: one step from m = 0, η = 0.1
    new_theta, m = lion_step(np.array([1.0, -2.0, 0.5]), np.array([0.3, -4.0, 0.0]), np.zeros(3), lr=0.1)
    np.testing.assert_array_equal(new_theta, [1.0 - 0.1, -2.0 + 0.1, 0.5])
    assert math.isclose(m[0], 0.003, rel_tol=1e-12) and math.isclose(m[1], -0.04, rel_tol=1e-12)
