"""Numba and CuPy (host) Expert Merging / distillation kernels at sizes the conformance cases never reach.

The conformance cases keep n ≤ 12, so the Numba reductions never split a chunk into several
parallel pieces (``PIECE`` elements each) and never have more pieces than threads; these
tests run a parameter of ~50 000 elements and thousands of distillation rows against the
reference, float64 and float32.
"""

import numpy as np
import pytest

import refimpl
import refimpl_cupy
from refimpl_numba.merging import expert_merging as numba_merging

BACKENDS = ["numba", refimpl_cupy.host_backend()]
IDS = ["numba", "cupy[host]"]
TOLERANCE = {np.float64: 1e-10, np.float32: 2e-4}


def _close(actual, expected, dtype):
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max()))
    assert float(np.abs(actual.astype(np.float64) - expected).max()) <= TOLERANCE[dtype] * scale


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("official_chunking", [True, False])
def test_large_merge_and_its_vjp_match_the_reference(backend, dtype, official_chunking):
    rng = np.random.default_rng(4)
    shape = (7, 7_001)  # n = 49 007, odd: chunks of 24 504 and 24 503 (even) or 24 504, 24 503 (official)
    num_experts, num_chunks = 3, 2
    assert shape[0] * shape[1] // num_chunks > numba_merging.PIECE  # two parallel pieces per chunk
    theta = rng.standard_normal(shape).astype(dtype)
    taus = rng.standard_normal((*shape, num_experts)).astype(dtype)
    a = rng.standard_normal((num_experts, num_chunks)).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    kwargs = {"official_chunking": official_chunking}
    expected, pull = refimpl.vjp("expert_merging", theta, taus, a, **kwargs)
    actual, pull_backend = refimpl.vjp("expert_merging", theta, taus, a, backend=backend, **kwargs)
    _close(actual, expected, dtype)
    _close(pull_backend(g)[0], pull(g)[0], dtype)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_large_hidden_state_mse_matches_the_reference(backend, dtype):
    rng = np.random.default_rng(5)
    h_expert = rng.standard_normal((3, 8, 4_000)).astype(dtype)  # 96 000 elements: 6 pieces
    h_merged = (h_expert + 0.1 * rng.standard_normal(h_expert.shape)).astype(dtype)
    expected, pull = refimpl.vjp("hidden_state_mse", h_merged, h_expert)
    actual, pull_backend = refimpl.vjp("hidden_state_mse", h_merged, h_expert, backend=backend)
    _close(actual, expected, dtype)
    for mine, reference in zip(pull_backend(np.array(0.7, dtype)), pull(np.array(0.7, dtype)), strict=True):
        _close(mine, reference, dtype)


@pytest.mark.parametrize("backend", BACKENDS, ids=IDS)
@pytest.mark.parametrize("form", ["kl", "cross_entropy"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_many_token_rows_of_distillation_match_the_reference(backend, form, reduction):
    rng = np.random.default_rng(6)
    z_teacher = 3 * rng.standard_normal((16, 128, 50))  # (B, T, V): 2 048 rows
    z_student = z_teacher + rng.standard_normal(z_teacher.shape)
    kwargs = {"temperature": 3.0, "form": form, "reduction": reduction}
    expected, pull = refimpl.vjp("distillation_kl", z_student, z_teacher, **kwargs)
    actual, pull_backend = refimpl.vjp("distillation_kl", z_student, z_teacher, backend=backend, **kwargs)
    _close(actual, expected, np.float64)
    g = rng.standard_normal(expected.shape) if reduction == "none" else np.array(1.3)
    for mine, reference in zip(pull_backend(g), pull(g), strict=True):
        _close(mine, reference, np.float64)
