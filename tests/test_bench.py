"""Benchmarks declared beside the conformance cases (``OpCases.bench``)."""

import copy

import numpy as np
import pytest

import refimpl
import refimpl_cupy
from refimpl_conformance import all_cases
from refimpl_conformance.bench import bench, bench_case, bench_ops

FAST = {
    op.name
    for op in refimpl.ops()
    if refimpl.backend("numba").supports(op) or refimpl_cupy.host_backend().supports(op)
}


def test_a_declared_case_times_the_op_with_counted_bytes():
    case = bench_case("stablemax")
    assert case is not None and case.bytes_moved is None
    report = bench(["stablemax"], ["numpy"], (64, 16), "float32", repeat=2, torch_baseline=False)
    (row,) = report.results
    assert row.backend == "numpy" and row.median_ms > 0
    # z read and its gradient written; the (64, 16) probabilities written and their cotangent read
    assert row.bytes_moved == 4 * 64 * 16 * 4


def test_every_op_a_fast_backend_implements_declares_a_benchmark():
    assert FAST <= set(bench_ops())
    assert {"lion_step", "mobius_add", "poincare_fc", "lora_linear", "expert_merging"} <= set(bench_ops())


@pytest.mark.parametrize("op_name", sorted(FAST))
def test_the_declared_inputs_are_valid_at_a_small_scale(op_name):
    args, kwargs, cotangent = bench_case(op_name).make((48, 12), "float32", np.random.default_rng(0))
    outputs = refimpl.get(op_name)(*args, **kwargs)  # validated by the op layer
    first = outputs[0] if isinstance(outputs, tuple) else outputs
    assert np.all(np.isfinite(np.asarray(first, dtype=np.float64)))
    assert (cotangent is None) == (not refimpl.get(op_name).is_differentiable)


def test_every_fast_op_is_timed_against_the_same_computation_in_pytorch():
    with_torch = {name for name, cases in all_cases().items() if cases.bench and cases.bench.torch}
    # what the baseline computes is tested below (its forward equals the reference's)
    assert FAST <= with_torch, sorted(FAST - with_torch)
    assert all(all_cases()[name].bench.torch_label for name in with_torch)


WITH_TORCH = sorted(name for name, cases in all_cases().items() if cases.bench and cases.bench.torch)


@pytest.mark.parametrize("op_name", WITH_TORCH)
def test_each_pytorch_baseline_computes_the_ops_own_function(op_name):
    """ "vs torch" compares the same work: the baseline's forward equals the reference's."""
    torch = pytest.importorskip("torch")
    case = bench_case(op_name)
    args, kwargs, cotangent = case.make((48, 12), "float64", np.random.default_rng(0))
    expected = refimpl.get(op_name)(*args, **kwargs)
    expected = list(expected) if isinstance(expected, tuple) else [expected]
    got = case.torch(torch, copy.deepcopy(args), copy.deepcopy(kwargs), cotangent)()
    got = list(got) if isinstance(got, (tuple, list)) else [got]
    assert len(got) == len(expected), (
        f"{op_name}: the baseline returns {len(got)} outputs, the op {len(expected)}"
    )
    for want, have in zip(expected, got, strict=True):
        have = have.detach().cpu().numpy() if isinstance(have, torch.Tensor) else np.asarray(have)
        want = np.asarray(want)
        assert have.shape == want.shape, (op_name, have.shape, want.shape)
        if want.dtype.kind == "f":
            scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
            np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-7 * scale, err_msg=op_name)
        else:
            np.testing.assert_array_equal(have, want, err_msg=op_name)


def test_the_markdown_table_has_one_row_per_op_with_the_fastest_backend():
    from refimpl.cli import bench_markdown

    report = bench(
        ["stablemax", "layer_norm"], ["numpy", "numba"], (64, 16), "float32", repeat=2, min_time=0.0
    )
    text = bench_markdown(report)
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [row.split(" | ")[0] for row in rows] == ["| `stablemax`", "| `layer_norm`"]
    assert "(numba)" in rows[0] and "copy bandwidth" in text and "exp" in text
    layer_norm = next(r for r in report.results if r.op == "layer_norm" and r.backend == "numba")
    assert layer_norm.p25_ms <= layer_norm.median_ms <= layer_norm.p75_ms and layer_norm.runs >= 2
    assert (
        0 < layer_norm.roofline_ms and layer_norm.of_roofline == layer_norm.roofline_ms / layer_norm.median_ms
    )
