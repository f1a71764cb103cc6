"""Meta-tests: the conformance suite must catch deliberately wrong implementations.

Each mutant is a plausible bug — a flipped sign in a VJP, a softmax habit applied where
it does not belong, a dropped ε, a cancelling float32 formula — packaged as a backend. The
suite must fail it, on the check and the sample that expose the bug.
"""

import numpy as np
import pytest

import refimpl
from refimpl import Backend, Impl
from refimpl.layers.layer_norm import layer_norm_backward
from refimpl.losses.stablemax import log_s_of
from refimpl_conformance import cases_for, check_finite_differences, check_sample


def _results(backend: Backend, op_name: str, dtypes=("float64", "float32")):
    op, cases = refimpl.get(op_name), cases_for(op_name)
    results = []
    for sample in cases.samples(seeds=range(4)):
        for dtype in dtypes:
            results += check_sample(op, cases, backend, sample, dtype)
    return results


def _failures(backend: Backend, op_name: str, dtypes=("float64", "float32")):
    return [r for r in _results(backend, op_name, dtypes) if r.status == "fail"]


def _layer_norm_forward(x, gamma, beta, *, eps=1e-5):
    return refimpl.get("layer_norm").forward(x, gamma, beta, eps=eps)


def test_suite_catches_a_wrong_sign_in_the_layer_norm_input_gradient():
    def backward(residuals, g_y):
        g_x, g_gamma, g_beta = layer_norm_backward(residuals, g_y)
        return -g_x, g_gamma, g_beta

    failures = _failures(Backend("mutant", {"layer_norm": Impl(_layer_norm_forward, backward)}), "layer_norm")
    assert failures and all(f.check == "vjp" for f in failures)
    assert any("cotangent of 'x'" in f.detail for f in failures)
    assert all(f.repro.startswith("refimpl check --op layer_norm --backend mutant") for f in failures)


def test_suite_catches_a_dropped_eps_in_layer_norm():
    def forward(x, gamma, beta, *, eps=1e-5):
        mu = x.mean(axis=-1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):  # the mutant's 1/0 is the point
            rstd = 1 / np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True))  # ε forgotten
            x_hat = (x - mu) * rstd
        return gamma * x_hat + beta, (x_hat, rstd, gamma)

    failures = _failures(Backend("mutant", {"layer_norm": Impl(forward, layer_norm_backward)}), "layer_norm")
    assert {f.sample for f in failures} >= {"constant row"}
    assert any(f.check == "forward" for f in failures)


def test_suite_catches_float32_variance_by_cancellation_in_layer_norm():
    def forward(x, gamma, beta, *, eps=1e-5):
        mu = x.mean(axis=-1, keepdims=True)
        variance = (x * x).mean(axis=-1, keepdims=True) - mu * mu  # E[x²] − μ², in x's dtype
        rstd = 1 / np.sqrt(np.maximum(variance, 0) + eps)
        x_hat = (x - mu) * rstd
        return gamma * x_hat + beta, (x_hat, rstd, gamma)

    results = _results(Backend("mutant", {"layer_norm": Impl(forward, layer_norm_backward)}), "layer_norm")
    # E[x²] − μ² cancels ~8 digits at offset 1e4: a right formula that loses accuracy, so
    # its verdict is "inaccurate" (not "fail"), in float32 and in float64 alike
    flagged = [r for r in results if r.status != "pass"]
    assert {r.sample for r in flagged} == {"large mean offset 1e4"}
    assert {r.dtype for r in flagged} == {"float32", "float64"}
    assert all(r.status == "inaccurate" and r.detail.startswith("loses accuracy") for r in flagged)


def test_suite_catches_max_subtraction_in_stablemax():
    reference = refimpl.get("stablemax")

    def forward(z):  # the softmax habit: StableMax is not shift-invariant
        return reference.forward(z - z.max(axis=-1, keepdims=True))

    failures = _failures(Backend("mutant", {"stablemax": Impl(forward, reference.backward)}), "stablemax")
    assert "shifted row" in {f.sample for f in failures}


def test_suite_catches_the_official_two_branch_stablemax_nan_in_float32():
    reference = refimpl.get("stablemax_cross_entropy")

    def forward(z, y, *, reduction="mean", compute_in_float64=False):
        return reference.forward(z, y, reduction=reduction, compute_in_float64=compute_in_float64)

    def backward(residuals, g_loss):
        p, z, y, reduction, dtype = residuals
        # the official select evaluates 1/(1 - z + 1e-30) everywhere: 1e30 at z = 1 in float32
        # and autograd's select multiplies the unused branch's derivative by 0: 0·inf = nan
        unused = 1 / (1 - z + np.asarray(1e-30, z.dtype))
        mask = (z >= 0).astype(z.dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            ds = mask * 1 + (1 - mask) * (unused * unused)
            s = np.maximum(z, 0) + 1 / (1 - np.minimum(z, 0))
            (g_z,) = reference.backward(residuals, g_loss)
            return (g_z * (1 + np.abs(z)) * ds / s,)

    backend = Backend("mutant", {"stablemax_cross_entropy": Impl(forward, backward)})
    failures = _failures(backend, "stablemax_cross_entropy", dtypes=("float32",))
    assert any(f.sample == "float32 logit exactly 1.0" and f.check == "vjp" for f in failures)


def test_finite_differences_catch_a_wrong_reference_backward():
    op = refimpl.get("stablemax_cross_entropy")
    wrong = refimpl.Op(
        op.forward,
        family=op.family,
        paper=op.paper,
        inputs=op.specs,
        outputs=op.outputs,
        differentiable=op.differentiable,
    )

    @wrong.defvjp
    def backward(residuals, g_loss):  # forgets the 1/(1 + |z|) factor: the softmax gradient
        p, z, y, reduction, dtype = residuals
        p_minus_y = p.copy()
        p_minus_y[np.arange(z.shape[0]), y] -= 1
        scale = g_loss / z.shape[0] if reduction == "mean" else g_loss
        scale = scale[:, None] if reduction == "none" else scale
        return (scale * p_minus_y,)

    sample = cases_for("stablemax_cross_entropy").random_sample(0)
    results = check_finite_differences(wrong, sample)
    assert {r.check for r in results if r.status == "fail"} >= {"fd-directional"}


@pytest.mark.parametrize("op_name", ["layer_norm", "stablemax", "stablemax_cross_entropy"])
def test_reference_passes_its_own_suite(op_name):
    assert not _failures(refimpl.backend("numpy"), op_name)


def test_log_s_is_odd_and_equals_log_of_s():
    z = np.array([0.5, 3.0, 1e6])
    np.testing.assert_array_equal(log_s_of(-z), -log_s_of(z))
    np.testing.assert_allclose(log_s_of(z), np.log(z + 1), rtol=1e-15)
    np.testing.assert_allclose(log_s_of(-z), np.log(1 / (1 + z)), rtol=1e-15)
