"""The bundled backends: what they claim, the CuPy host variant, the CUDA sources."""

import numpy as np
import pytest

import refimpl
import refimpl_cupy
import refimpl_numba
from refimpl.authoring import collect_impls
from refimpl_cupy import cuda
from refimpl_cupy.raw import RAW_IMPLS


def test_numba_claims_exactly_what_its_modules_implement():
    assert refimpl.backend("numba").ops == frozenset(collect_impls(refimpl_numba))
    assert {"layer_norm", "stablemax", "stablemax_cross_entropy"} <= refimpl.backend("numba").ops


def test_cupy_host_variant_runs_the_same_implementations():
    gpu = refimpl.backend("cupy")
    host = refimpl_cupy.host_backend()
    assert host.ops == gpu.ops == frozenset(collect_impls(refimpl_cupy))
    assert host.array_library == "numpy" and gpu.array_library == "cupy"
    x = np.random.default_rng(0).standard_normal((3, 6))
    y, _ = refimpl.vjp("layer_norm", x, np.ones(6), np.zeros(6), backend=host)
    np.testing.assert_allclose(y, refimpl.layers.layer_norm(x, np.ones(6), np.zeros(6)), rtol=1e-12)


@pytest.mark.skipif(refimpl_cupy.gpu_available()[0], reason="a GPU is present")
def test_cupy_reports_why_it_cannot_run_without_a_gpu():
    available, why = refimpl.backend("cupy").available()
    assert not available and "CUDA" in why


def test_cupy_raw_claims_only_the_ops_with_cuda_kernels():
    assert (
        refimpl.backend("cupy-raw").ops == frozenset(RAW_IMPLS) == {"layer_norm", "stablemax_cross_entropy"}
    )


@pytest.mark.parametrize("name", cuda.sources())
def test_cuda_source_compiles_with_nvrtc(name):
    ptx = cuda.compile_to_ptx(name)
    kernels = cuda._kernel_names(name)
    assert kernels
    for kernel in kernels:
        assert f".entry {kernel}(" in ptx


def test_every_kernel_the_launchers_call_exists():
    import inspect
    import re

    from refimpl_cupy import raw

    launched = set(re.findall(r'"(\w+)_\{', inspect.getsource(raw)))
    launched |= {m for m in re.findall(r'f"(\w+?)_\{_suffix', inspect.getsource(raw))}
    defined = {k for name in cuda.sources() for k in cuda._kernel_names(name)}
    for stem in launched:
        assert {f"{stem}_f32", f"{stem}_f64"} <= defined, stem


def test_nvrtc_reports_compile_errors_with_the_log(tmp_path, monkeypatch):
    (tmp_path / "broken.cu").write_text('extern "C" __global__ void k(float* x) { x[0] = undefined_name; }')
    monkeypatch.setattr(cuda, "HERE", tmp_path)
    with pytest.raises(RuntimeError, match="undefined_name"):
        cuda.compile_to_ptx("broken.cu")
