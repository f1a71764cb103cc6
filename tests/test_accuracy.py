"""The allowed error: Monte Carlo arithmetic on the reference, and what it does and does not allow."""

import numpy as np
import pytest

import refimpl
from refimpl_conformance import OpCases, Sample, Tolerance, cases_for, register
from refimpl_conformance._accuracy import SAFETY, allowed_error, rounding_errors, unit_roundoff
from refimpl_conformance._engine import expected_values

U32 = unit_roundoff("float32")


def _spread(fn, dtype="float32", moved=(), **arguments):
    """The rounding spread of ``fn(**arguments)`` (one output, no cotangents)."""
    clean = ([np.asarray(fn(**arguments), dtype=np.float64)], [])
    spreads, _ = rounding_errors(lambda given: ([fn(**given)], []), arguments, clean, dtype, moved=moved)
    return spreads[0]


def test_exact_operations_are_not_perturbed():
    x = np.array([[-3.0, 0.5, 2.0], [1e6, -1e-6, 0.0]])
    assert np.all(_spread(lambda x: np.abs(np.maximum(x, 0)[:, ::-1]).T, x=x) == 0)
    assert np.all(_spread(lambda x: np.where(x > 0, x, -x).max(axis=1), x=x) == 0)


def test_an_elementwise_operation_rounds_once_relative_to_its_result():
    x = np.array([0.5, 3.0, 1e5])
    spread = _spread(lambda x: np.exp(x / 1e5), x=x)
    assert np.all(spread <= U32 * np.exp(x / 1e5) * 2.01)  # the division and the exp, once each
    assert np.all(spread > 0)


def test_a_sum_rounds_at_the_size_of_its_terms_whatever_its_order():
    x = np.array([1e4, 1.0, -1e4])  # Σ = 1, but a sum in another order rounds at 1e4
    spread = _spread(lambda x: x.sum(), x=x)
    assert 1e4 * U32 * 0.05 < spread <= 1e4 * U32 * 2.01


def test_the_difference_of_two_inputs_is_exact_but_a_computed_operand_carries_its_rounding():
    a, b = np.array([1e4 + 0.25]), np.array([1e4])
    assert _spread(lambda a, b: a - b, a=a, b=b)[0] <= 0.25 * U32 * 1.01  # only the result's rounding
    computed = _spread(lambda a, b: (a * 3) / 3 - b, a=a, b=b)[0]
    assert computed > 100 * 0.25 * U32  # (3a)/3 was rounded at 1e4: the cancellation exposes it


def test_a_differentiable_input_is_moved_by_one_rounding_the_others_stay_exact():
    z = np.array([1e4, 1e4 - 1.0])  # softmax of nearly equal large logits
    moved = _spread(lambda z: np.exp(z - z.max()) / np.exp(z - z.max()).sum(), z=z, moved=("z",))
    exact = _spread(lambda z: np.exp(z - z.max()) / np.exp(z - z.max()).sum(), z=z)
    assert moved.max() > 100 * exact.max()  # a stable algorithm may round the logits at 1e4


def test_float64_is_simulated_at_a_coarser_unit_and_scaled():
    x = np.linspace(-3, 3, 100)  # not 0: sin(0)·cos(0) = 0 exactly
    spread32 = _spread(lambda x: np.sin(x) * np.cos(x), x=x, dtype="float32")
    spread64 = _spread(lambda x: np.sin(x) * np.cos(x), x=x, dtype="float64")
    assert np.all(spread64 > 0)  # float64's own rounding did not swallow the perturbation
    ratio = np.median(spread32[spread64 > 0] / spread64[spread64 > 0])
    assert 0.1 * U32 / unit_roundoff("float64") < ratio < 10 * U32 / unit_roundoff("float64")


def test_allowed_error_has_a_floor_at_the_typical_spread_underflow_and_the_final_rounding():
    expected = np.array([1.0, 2.0, 1e-300])
    spread = np.array([0.0, 1e-7, 0.0])
    allowed = allowed_error(expected, spread, "float32")
    typical = np.sqrt(np.mean(spread**2))
    tiny = float(np.finfo(np.float32).tiny)
    np.testing.assert_allclose(allowed, SAFETY * (spread + typical + tiny) + 2 * U32 * np.abs(expected))
    assert allowed[2] > 1e-37  # what float32 flushes to zero is never an error


def test_layer_norm_over_one_feature_allows_float32_rounding_amplified_by_one_over_sqrt_eps():
    # x − μ is 0 in exact arithmetic but a float32 mean rounds: x̂ = (x − μ)/√ε carries |x|·u/√ε
    op, cases = refimpl.get("layer_norm"), cases_for("layer_norm")
    sample = next(s for s in cases.edges() if s.name == "D = 1")
    expected = expected_values(op, cases, sample, "float32")
    x = expected.args[0]
    eps = sample.kwargs.get("eps", 1e-5)
    rounding = np.abs(x).max() * U32 / np.sqrt(eps)
    assert expected.allowed["cotangent of 'gamma'"].max() > rounding
    assert expected.allowed["cotangent of 'gamma'"].max() < 1e3 * SAFETY * rounding


def test_a_tolerance_override_without_a_reason_is_refused():
    def sample(rng, B):
        return Sample("random", (rng.standard_normal((B, 3)),))

    with pytest.raises(TypeError, match="without a reason"):
        register(
            OpCases(
                "stablemax", dims={"B": (1, 2)}, random=sample, tolerances={"float32": Tolerance(1e-3, 0)}
            )
        )


def test_no_registered_case_needs_an_override_today():
    from refimpl_conformance import all_cases

    overrides = [
        (name, s.name)
        for name, cases in all_cases().items()
        for s in cases.edges()
        if s.tolerances or cases.tolerances
    ]
    assert overrides == []


def test_a_perturbed_run_that_changes_an_integer_output_is_not_counted():
    # CRAIG's kernel gives the farthest pair s = 0 exactly: a perturbed run may flip that point's
    # assignment, a branch no passing implementation can take (clusters are compared exactly)
    op, cases = refimpl.get("coreset_cluster_weights"), cases_for("coreset_cluster_weights")
    sample = next(s for s in cases.edges() if s.name == "CRAIG kernel ignores the farthest point")
    for dtype in ("float64", "float32"):
        expected = expected_values(op, cases, sample, dtype)
        weights = expected.outputs["output 'weights'"]
        assert np.all(expected.allowed["output 'weights'"] <= 1e-3 * np.abs(weights).max())


def test_an_exact_tie_that_every_rounding_breaks_leaves_the_float_outputs_unmeasured():
    """At exact ties that every perturbed run breaks another way somewhere (20 rows of two equal
    values), the float outputs' rounding on the reference's branch cannot be measured: they are
    not held to a zero allowance (the indices are still compared exactly)."""

    def fn(a):
        d = a * 3.0  # rounded in the perturbed runs: each row's tie breaks one way or the other
        index = np.argmin(d, axis=1)
        rows = np.arange(len(d))
        return [index, d[rows, index] - d[rows, 1 - index]]

    def spreads_at(a):
        clean = [np.asarray(v, dtype=np.float64) if i else v for i, v in enumerate(fn(a))]
        out, _ = rounding_errors(
            lambda given: (fn(**given), []), {"a": a}, (clean, []), "float32", moved=("a",)
        )
        return out[1]

    assert np.all(np.isinf(spreads_at(np.ones((20, 2)))))
    # away from the ties the same computation is measured as usual
    measured = spreads_at(np.tile([1.0, 2.0], (20, 1)))
    assert np.all(np.isfinite(measured)) and np.all(measured < 1e-5)
