"""The CuPy backend's GPU-only code: declared where it is written, listed by a check without a GPU.

Without a GPU the CuPy backend is checked as ``cupy[host]`` (its array logic on NumPy), so a
passing check says nothing about the kernels built from CUDA source. These tests keep the
declarations (``refimpl_cupy._gpu_only``) equal to the kernels the sources build, and check
that ``refimpl check`` names them.
"""

import ast
import json
from collections import Counter
from pathlib import Path

import pytest

import refimpl
import refimpl_cupy
from refimpl.cli import main
from refimpl_cupy._gpu_only import DECLARED, KINDS, PACKAGE, gpu_only

LOADER = "cuda/__init__.py"  # builds the RawModule of each .cu file (cuda.raw_module)

no_gpu = pytest.mark.skipif(refimpl_cupy.gpu_available()[0], reason="a GPU is present: everything runs")


def _constructions(package: Path) -> Counter:
    """(file, kind) of every ``ElementwiseKernel(...)``, ``cupy.RawKernel(...)``, ... call."""
    found: Counter = Counter()
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                function = node.func
                name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
                if name in KINDS:
                    found[(path.relative_to(package).as_posix(), name)] += 1
    return found


@pytest.fixture(scope="module")
def declared():
    refimpl.backend("cupy"), refimpl.backend("cupy-raw")  # imports every module of the backend
    return list(DECLARED)


def test_every_kernel_built_from_cuda_source_is_declared_beside_it(declared):
    built = _constructions(PACKAGE)
    assert built.pop((LOADER, "RawModule")) == 1  # the .cu files: compared below
    in_python = Counter((k.source, k.kind) for k in declared if k.source.endswith(".py"))
    assert built == in_python
    assert ("optim/lion.py", "ElementwiseKernel") in built


def test_every_cu_file_is_declared_with_the_ops_that_launch_it(declared):
    files = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.cu")}
    assert files == {k.source for k in declared if k.source.endswith(".cu")}
    assert files >= {"cuda/layer_norm.cu", "cuda/stablemax.cu"}
    raw = [k for k in declared if k.source.endswith(".cu")]
    assert all(k.kind == "RawModule" and k.backend == "cupy-raw" for k in raw)
    # every op of cupy-raw launches hand-written CUDA: none of it runs without a GPU
    assert {op for k in raw for op in k.ops} == refimpl.backend("cupy-raw").ops


def test_the_scan_finds_a_kernel_built_without_a_declaration(tmp_path):
    (tmp_path / "new.py").write_text(
        "import cupy\nfrom cupy import RawKernel\n"
        "total = cupy.ReductionKernel('T x', 'T y', 'x', 'a + b', 'y = a', '0', 'total')\n"
        "k = RawKernel('extern \"C\" __global__ void k() {}', 'k')\n"
    )
    assert _constructions(tmp_path) == {("new.py", "ReductionKernel"): 1, ("new.py", "RawKernel"): 1}


def test_declared_ops_exist_in_their_backend_and_the_backend_carries_them(declared):
    for kernel in declared:
        backend = refimpl.backend(kernel.backend)
        assert kernel.ops and set(kernel.ops) <= backend.ops, kernel
        assert backend.device_only[kernel.describe()] == kernel.ops
    lion = next(k for k in declared if k.ops == ("lion_step",))
    assert lion.describe() == "ElementwiseKernel 'refimpl_lion_step' (backends/refimpl_cupy/optim/lion.py)"


def test_a_declaration_names_a_cupy_kernel_class():
    with pytest.raises(ValueError, match="ElementwiseKernel"):
        gpu_only("k", "fuse", ops=("lion_step",))


@no_gpu
def test_check_without_a_gpu_lists_the_kernels_it_did_not_run(tmp_path, capsys):
    report = tmp_path / "report.json"
    argv = ["check", "--op", "layer_norm", "--backend", "cupy", "--backend", "cupy-raw", "--seeds", "1"]
    assert main([*argv, "--dtype", "float64", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    listing = out[out.index("not run here (needs a CUDA device):") :]
    assert "layer_norm — RawModule backends/refimpl_cupy/cuda/layer_norm.cu [cupy-raw]" in listing
    assert "nvrtc compiles cuda/layer_norm.cu" in listing and "benchmarks/gpu.sh" in listing
    assert "lion_step" not in listing and "stablemax.cu" not in listing.split("ran here")[0]
    assert json.loads(report.read_text())["not_run"] == [
        {
            "backend": "cupy-raw",
            "code": "RawModule backends/refimpl_cupy/cuda/layer_norm.cu",
            "ops": ["layer_norm"],
        }
    ]


@no_gpu
def test_check_without_a_gpu_names_the_lion_kernel_and_quiet_counts_it(capsys):
    argv = ["check", "--op", "lion_step", "--backend", "cupy", "--seeds", "1", "--dtype", "float64"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert (
        "lion_step — ElementwiseKernel 'refimpl_lion_step' (backends/refimpl_cupy/optim/lion.py) [cupy]"
        in out
    )
    assert main([*argv, "--quiet"]) == 0
    quiet = capsys.readouterr().out
    assert "not run here (needs a CUDA device): 1 kernel(s) of cupy used by 1 op(s)" in quiet
    assert "refimpl_lion_step" not in quiet


def test_a_backend_that_runs_here_lists_nothing(capsys):
    assert main(["check", "--op", "lion_step", "--backend", "numba", "--seeds", "1", "--quiet"]) == 0
    assert "not run here" not in capsys.readouterr().out
