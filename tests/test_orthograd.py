"""⊥Grad: orthogonality, rescaling to ‖g‖, idempotence, the ‖g_⊥‖ = 0 rule, the official variant."""

import numpy as np
import pytest

import refimpl
from refimpl import Backend, Impl
from refimpl.optim import orthograd_step
from refimpl_conformance import cases_for, check_sample

BACKENDS = ["numpy", "numba", "cupy[host]"]


def _backend(name):
    if name == "cupy[host]":
        from refimpl_cupy import host_backend

        return host_backend()
    return refimpl.backend(name)


@pytest.fixture
def tensors():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((8, 5))
    g = rng.standard_normal((8, 5)) + 0.7 * w  # a share along the weights, as after memorization
    return w, g


def test_known_values_by_hand():
    w, g = np.array([1.0, 0.0]), np.array([3.0, 4.0])
    np.testing.assert_array_equal(orthograd_step(w, g), [0.0, 4.0])
    np.testing.assert_array_equal(orthograd_step(w, g, rescale=True), [0.0, 5.0])
    # w = (1, 1), g = (2, 0): c = 2/2 = 1, g_⊥ = (1, −1); rescaled by ‖g‖/‖g_⊥‖ = 2/√2
    np.testing.assert_allclose(orthograd_step(np.ones(2), np.array([2.0, 0.0])), [1.0, -1.0], rtol=1e-15)
    np.testing.assert_allclose(
        orthograd_step(np.ones(2), np.array([2.0, 0.0]), rescale=True), [np.sqrt(2), -np.sqrt(2)], rtol=1e-15
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_projected_gradient_is_orthogonal_to_the_weights(tensors, backend):
    w, g = tensors
    for rescale in (False, True):
        g_perp = _backend(backend).get("orthograd_step")(w, g, rescale=rescale)
        assert abs(np.vdot(w, g_perp)) < 1e-13 * np.linalg.norm(w) * np.linalg.norm(g)
        assert abs(np.vdot(w, g)) > 1.0  # the input was far from orthogonal


@pytest.mark.parametrize("backend", BACKENDS)
def test_rescaled_gradient_keeps_the_norm_of_the_gradient(tensors, backend):
    w, g = tensors
    g_tilde = _backend(backend).get("orthograd_step")(w, g, rescale=True)
    np.testing.assert_allclose(np.linalg.norm(g_tilde), np.linalg.norm(g), rtol=1e-14)
    assert np.linalg.norm(orthograd_step(w, g)) < 0.9 * np.linalg.norm(g)  # the plain one is shorter
    # same direction as the unscaled projection
    g_perp = orthograd_step(w, g)
    np.testing.assert_allclose(g_tilde, g_perp * np.linalg.norm(g) / np.linalg.norm(g_perp), rtol=1e-13)


def test_projection_is_idempotent(tensors):
    w, g = tensors
    once = orthograd_step(w, g)
    np.testing.assert_allclose(orthograd_step(w, once), once, rtol=0, atol=1e-15 * np.abs(once).max())


def test_result_equals_the_formula_g_minus_projection(tensors):
    w, g = tensors
    expected = g - (np.sum(w * g) / np.sum(w * w)) * w
    np.testing.assert_allclose(orthograd_step(w, g), expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_exactly_parallel_gradient_gives_zero_on_both_paths(backend, dtype):
    # c = 1.2e10/4 = 3e9 exactly: g_⊥ = 0 exactly; ‖g‖/1e-30 = 6e39 overflows float32
    w, g = np.array([0.0, 2.0, 0.0], dtype), np.array([0.0, 6e9, 0.0], dtype)
    for rescale in (False, True):
        out = _backend(backend).get("orthograd_step")(w, g, rescale=rescale)
        assert out.dtype == dtype
        np.testing.assert_array_equal(out, 0.0)


@pytest.mark.parametrize("backend", ["numba", "cupy[host]"])
def test_nearly_parallel_gradient_agrees_with_the_reference(backend):
    # sin ∠(w, g) ~ 1e-3: the Numba kernel's ‖g_⊥‖² from the three sums would cancel, so it
    # takes its exact path; the result is still g_⊥ to a few ulps of ‖g‖
    rng = np.random.default_rng(8)
    w = rng.standard_normal(300)
    g = 2.5 * w + 1e-3 * rng.standard_normal(300)
    for rescale in (False, True):
        expected = orthograd_step(w, g, rescale=rescale)
        got = _backend(backend).get("orthograd_step")(w, g, rescale=rescale)
        # rescaling multiplies the rounding of g − c·w (~ ulps of ‖g‖) by ‖g‖/‖g_⊥‖ ~ 1e3
        amplification = np.linalg.norm(g) / np.linalg.norm(orthograd_step(w, g)) if rescale else 1.0
        tolerance = 1e-12 * np.linalg.norm(g) * amplification
        np.testing.assert_allclose(got, expected, rtol=0, atol=tolerance)


def test_zero_weights_leave_the_gradient_unchanged():
    g = np.array([[0.5, -1.5], [2.0, 3.0]])
    np.testing.assert_array_equal(orthograd_step(np.zeros((2, 2)), g), g)
    np.testing.assert_allclose(orthograd_step(np.zeros((2, 2)), g, rescale=True), g, rtol=1e-15)


def test_the_guard_epsilon_is_the_official_1e_minus_30():
    # ⟨w, w⟩ = 1e-30 = ε: the coefficient is halved, c = ⟨w, g⟩/(2e-30)
    w, g = np.array([6e-16, -8e-16]), np.array([1.0, 2.0])
    np.testing.assert_allclose(orthograd_step(w, g), [1.3, 1.6], rtol=1e-12)


def test_the_official_rescaling_is_a_recorded_variant():
    (deviation,) = refimpl.deviations("orthograd_step")
    assert deviation.flag == {"rescale": True}
    args = deviation.example.args
    np.testing.assert_allclose(orthograd_step(*args), deviation.example.reference["grads"])
    np.testing.assert_allclose(orthograd_step(*args, rescale=True), deviation.example.official["grads"])


def _failures(forward):
    backend = Backend("port", {"orthograd_step": Impl(forward)})
    op, cases = refimpl.get("orthograd_step"), cases_for("orthograd_step")
    return [
        result
        for sample in cases.samples(seeds=range(6))
        for dtype in ("float64", "float32")
        for result in check_sample(op, cases, backend, sample, dtype)
        if result.status != "pass"
    ]


def test_suite_catches_a_port_without_the_zero_rule():
    # the official expression alone: 0·(‖g‖/1e-30) is 0·inf = NaN in float32 for large ‖g‖
    def forward(params, grads, *, rescale=False):
        dtype = grads.dtype.type
        w, g = params.reshape(-1), grads.reshape(-1)
        perp = g - dtype(np.vdot(w, g) / (np.vdot(w, w) + dtype(1e-30))) * w
        if rescale:
            with np.errstate(over="ignore", invalid="ignore"):
                perp = perp * (np.linalg.norm(g) / (np.linalg.norm(perp) + dtype(1e-30)))
        return perp.reshape(grads.shape), None

    failures = _failures(forward)
    assert {f.sample for f in failures} == {"g = 3e9·w exactly, rescaled"}
    assert {f.dtype for f in failures} == {"float32"}


def test_suite_catches_a_port_without_the_guard():
    def forward(params, grads, *, rescale=False):
        w, g = params.reshape(-1), grads.reshape(-1)
        ww = np.vdot(w, w)
        perp = g - (np.vdot(w, g) / ww) * w if ww > 0 else g.copy()
        if rescale and np.linalg.norm(perp) > 0:
            perp = perp * (np.linalg.norm(g) / np.linalg.norm(perp))
        return perp.reshape(grads.shape), None

    assert "‖w‖² ~ 1e-30" in {f.sample for f in _failures(forward)}
