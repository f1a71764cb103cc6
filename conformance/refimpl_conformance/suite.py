"""The conformance suite as pytest tests (``pytest --pyargs refimpl_conformance.suite``).

One battery over every op with registered cases: finite differences for the reference,
forward and VJP against the reference for each selected backend in float64 and float32,
and the error cases. Random samples are drawn by Hypothesis (dimensions and a seed); the
failure message carries the `refimpl check` command that rebuilds the sample.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import refimpl

from ._cases import all_cases
from ._engine import check_errors, check_finite_differences, check_sample

OPS = list(all_cases())
DTYPES = ["float64", "float32"]
# The draws are the same on every run (a red CI is always reproducible); set
# REFIMPL_HYPOTHESIS_EXPLORE=1 to draw new ones, and REFIMPL_HYPOTHESIS_EXAMPLES=N for more.
# Four per op by default keeps the whole suite inside CI's budget as the catalog grows; CI's
# `refimpl check` runs five more (seeds 0-4) on every backend.
SETTINGS = settings(
    max_examples=int(os.environ.get("REFIMPL_HYPOTHESIS_EXAMPLES", "4")),
    deadline=None,
    derandomize=os.environ.get("REFIMPL_HYPOTHESIS_EXPLORE", "") in ("", "0"),
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _dims(cases):
    return st.fixed_dictionaries({k: st.integers(lo, hi) for k, (lo, hi) in cases.dims.items()})


def _assert_passed(results):
    failures = [r for r in results if r.status in ("fail", "inaccurate")]
    assert not failures, "\n".join(
        f"{r.check} {r.backend} {r.dtype} [{r.sample}]: {r.detail}\n  repro: {r.repro}" for r in failures
    )


@pytest.mark.parametrize("op_name", OPS)
@SETTINGS
@given(data=st.data())
def test_reference_backward_matches_finite_differences(op_name, data):
    cases = all_cases()[op_name]
    sample = cases.random_sample(data.draw(st.integers(0, 2**32 - 1)), data.draw(_dims(cases)))
    _assert_passed(check_finite_differences(refimpl.get(op_name), sample))


@pytest.mark.parametrize("op_name", OPS)
def test_reference_backward_matches_finite_differences_on_edge_cases(op_name):
    op = refimpl.get(op_name)
    for sample in all_cases()[op_name].edges():
        _assert_passed(check_finite_differences(op, sample))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op_name", OPS)
def test_backend_matches_reference(refimpl_target, op_name, dtype):
    # skipped before Hypothesis starts: a skip raised inside @given, repeated over hundreds of
    # (backend, op) pairs a backend does not implement, exhausts Python's recursion limit
    if not refimpl_target.supports(op_name):
        pytest.skip(f"{refimpl_target.name} does not implement {op_name}")
    _backend_matches_reference(refimpl_target, op_name, dtype)


@SETTINGS
@given(data=st.data())
def _backend_matches_reference(target, op_name, dtype, data):
    cases = all_cases()[op_name]
    sample = cases.random_sample(data.draw(st.integers(0, 2**32 - 1)), data.draw(_dims(cases)))
    _assert_passed(check_sample(refimpl.get(op_name), cases, target, sample, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op_name", OPS)
def test_backend_matches_reference_on_edge_cases(refimpl_target, op_name, dtype):
    if not refimpl_target.supports(op_name):
        pytest.skip(f"{refimpl_target.name} does not implement {op_name}")
    cases = all_cases()[op_name]
    for sample in cases.edges():
        _assert_passed(check_sample(refimpl.get(op_name), cases, refimpl_target, sample, dtype))


@pytest.mark.parametrize("op_name", OPS)
def test_bad_input_raises_input_error(refimpl_target, op_name):
    if not refimpl_target.supports(op_name):
        pytest.skip(f"{refimpl_target.name} does not implement {op_name}")
    errors = all_cases()[op_name].all_errors()
    assert errors, f"{op_name} has no error cases"
    _assert_passed(check_errors(refimpl.get(op_name), refimpl_target, errors))


def test_every_registered_op_has_conformance_cases():
    missing = sorted(op.name for op in refimpl.ops() if op.name not in all_cases())
    assert not missing, f"ops without conformance cases: {missing}"
