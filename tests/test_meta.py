"""Meta-tests: the conformance suite must catch deliberately wrong implementations.

Each mutant is a plausible bug — a flipped sign in a VJP, a softmax habit applied where
it does not belong, a dropped ε, a cancelling float32 formula — packaged as a backend. The
suite must fail it, on the check and the sample that expose the bug.
"""

import inspect

import numpy as np
import pytest

import refimpl
from refimpl import Backend, Impl
from refimpl.layers.layer_norm import layer_norm_backward
from refimpl.losses.stablemax import log_s_of
from refimpl_conformance import _accuracy, cases_for, check_finite_differences, check_sample


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


# -- bugs the backend comparison cannot see: defaults, constants, shared blocks ----------------
# A bug in the reference (or in a block the reference and the backends share) agrees with
# itself on every backend, and a constant used by forward and backward alike agrees with
# finite differences. The declared defaults, the docstring examples run on every backend and
# the catalog's known values pin the reference to numbers written down apart from the code.
@pytest.fixture
def reference_mutant(monkeypatch):
    """Patch the reference's ops (``plant(op_name, forward=..., default=(name, value))``)."""
    from refimpl._op import _reference_backend

    def plant(op_name, *, forward=None, default=None):
        op = refimpl.get(op_name)
        if forward is not None:
            monkeypatch.setattr(op, "forward", forward)
        if default is not None:  # the forward's own keyword default, as an edit would change it
            name, value = default
            function = op.forward
            monkeypatch.setattr(function, "__kwdefaults__", {**function.__kwdefaults__, name: value})
            signature = inspect.signature(function)
            monkeypatch.setattr(op, "signature", signature)
            monkeypatch.setattr(op, "__signature__", signature)
        _reference_backend.cache_clear()
        _accuracy.CACHE.entries.clear()  # expected values computed by the unpatched reference

    yield plant
    monkeypatch.undo()
    _reference_backend.cache_clear()
    _accuracy.CACHE.entries.clear()


def _check(ops, backends=("numpy",)):
    from refimpl_conformance import plan, run

    return run(plan(backends=list(backends), ops=list(ops), seeds=(0, 1)))


def test_a_changed_default_is_caught(reference_mutant):
    reference_mutant("layer_norm", default=("eps", 1e-4))  # PyTorch's 1e-5
    report = _check(["layer_norm"], backends=("numpy", "numba"))
    failures = report.failures
    assert [f.check for f in failures] == ["defaults"]
    assert "eps = 0.0001 in the signature, 1e-05 declared" in failures[0].detail


def test_a_changed_official_constant_is_caught(reference_mutant):
    # OFFICIAL_EPSILON of the normalized HSIC (hsic_normalized_cca: 1e-5) feeds two defaults
    reference_mutant("normalized_hsic", default=("epsilon", 1e-4))
    reference_mutant("bido_loss", default=("epsilon", 1e-4))
    report = _check(["normalized_hsic", "bido_loss"])
    caught = {(f.op, f.check) for f in report.failures}
    assert caught >= {("normalized_hsic", "defaults"), ("bido_loss", "defaults")}


def test_an_off_by_one_in_a_schedule_is_caught_by_its_docstring_values(reference_mutant):
    op = refimpl.get("mult_vae_beta_schedule")
    original = op.forward

    def forward(step, **kwargs):  # counts from 1: β one step ahead everywhere
        return original(step + 1, **kwargs)

    forward.__doc__, forward.__name__ = original.__doc__, original.__name__
    reference_mutant("mult_vae_beta_schedule", forward=forward)
    report = _check(["mult_vae_beta_schedule"])
    assert {f.check for f in report.failures} == {"example"}
    assert "1.00005e-01" in report.failures[0].detail


def test_a_consistent_bug_in_a_shared_block_is_caught(monkeypatch):
    # reduce_rows and row_weights share one wrong normalizer, 1/(B + 1): forward and backward
    # agree with each other (finite differences pass) and every backend imports the pair
    import sys

    from refimpl import _blocks

    def reduce_rows(per_row, reduction, dtype):
        if reduction == "mean":
            return np.asarray(per_row.sum() / (per_row.size + 1), dtype=dtype)
        return original["reduce_rows"](per_row, reduction, dtype)

    def row_weights(g_loss, reduction, batch):
        if reduction == "mean":
            return np.full(batch, np.asarray(g_loss) / (batch + 1))
        return original["row_weights"](g_loss, reduction, batch)

    original = {"reduce_rows": _blocks.reduce_rows, "row_weights": _blocks.row_weights}
    mutant = {"reduce_rows": reduce_rows, "row_weights": row_weights}
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith(("refimpl.", "refimpl_numba.")):
            for name, function in original.items():
                if getattr(module, name, None) is function:
                    monkeypatch.setattr(module, name, mutant[name])
    report = _check(["comp_sum_loss", "ldr_kl_loss", "z_loss"], backends=("numpy", "numba"))
    caught = {(f.op, f.check) for f in report.failures}
    assert ("z_loss", "example") in caught and ("z_loss", "fd-directional") not in caught


def test_a_float32_accumulator_in_a_backend_is_caught():
    def forward(x, gamma, beta, *, eps=1e-5):
        # the row mean summed term by term in float32, as a plain Numba loop would
        mu = (np.cumsum(x, axis=-1, dtype=x.dtype)[..., -1:] / x.dtype.type(x.shape[-1])).astype(x.dtype)
        centered = x - mu
        rstd = 1 / np.sqrt((centered * centered).mean(axis=-1, keepdims=True) + x.dtype.type(eps))
        x_hat = centered * rstd
        return gamma * x_hat + beta, (x_hat, rstd, gamma)

    backend = Backend("mutant", {"layer_norm": Impl(forward, layer_norm_backward)})
    sample = next(s for s in cases_for("layer_norm").edges() if s.name.startswith("long rows"))
    results = check_sample(refimpl.get("layer_norm"), cases_for("layer_norm"), backend, sample, "float32")
    assert {r.status for r in results if r.check == "vjp"} == {"inaccurate"}
    numba = refimpl.backend("numba")
    results = check_sample(refimpl.get("layer_norm"), cases_for("layer_norm"), numba, sample, "float32")
    assert all(r.status == "pass" and r.ratio < 0.2 for r in results)  # the real kernel sums in float64
