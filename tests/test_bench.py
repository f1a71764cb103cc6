"""Benchmarks declared beside the conformance cases (``OpCases.bench``)."""

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


def test_a_pytorch_baseline_is_declared_only_where_pytorch_computes_the_same_function():
    with_torch = {name for name, cases in all_cases().items() if cases.bench and cases.bench.torch}
    # reviewed one by one: each baseline computes the op's own function (see its torch_label)
    assert with_torch == {
        "adaptive_projected_guidance",
        "adaquant_fake_quantize",
        "atlas_composition",
        "bone_block_affine",
        "corda_covariance",
        "corda_init",
        "cosine_infonce",
        "dagma_acyclicity_logdet",
        "distillation_kl",
        "el2n_score",
        "eora_compensation",
        "fastfood_projection",
        "fwht",
        "grand_score_last_layer",
        "interpolate_params",
        "layer_norm",
        "learned_soup",
        "lora_linear",
        "margin_score",
        "miss_shared_block",
        "multinomial_log_likelihood",
        "multiscale_retention",
        "nm_mask",
        "nm_sparse_weight",
        "notears_acyclicity_exp",
        "orthograd_step",
        "poly_acyclicity",
        "pskd_loss",
        "qkr_quantize",
        "residual_vector_quantize",
        "retention_chunkwise",
        "retention_parallel",
        "retention_recurrent",
        "sampled_softmax_logq",
        "sara_sparse_reparam",
        "sparse_simplex_projection",
        "statsq_quantize",
        "topo_acyclicity_logdet_abs",
        "tract_linear",
        "uniform_soup",
        "wta_crs_matmul",
    }
    assert all(all_cases()[name].bench.torch_label for name in with_torch)
