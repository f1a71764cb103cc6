"""Benchmarks derived from the conformance samplers for (B, K) losses."""

from refimpl_conformance.bench import bench, bench_case, bench_ops


def test_a_batch_by_classes_loss_gets_a_derived_case_with_counted_bytes():
    case = bench_case("stablemax")
    assert case is not None and case.bytes_moved is None
    report = bench(["stablemax"], ["numpy"], (64, 16), "float32", repeat=2, torch_baseline=False)
    (row,) = report.results
    assert row.backend == "numpy" and row.median_ms > 0
    assert row.bytes_moved == 2 * 64 * 16 * 4  # z read once, its gradient written once


def test_ops_without_a_batch_by_classes_shape_have_no_derived_case():
    assert bench_case("mobius_add") is None
    assert {"layer_norm", "stablemax_cross_entropy"} <= set(bench_ops())
