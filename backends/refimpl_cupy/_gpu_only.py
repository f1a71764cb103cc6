"""The code of the CuPy backend that only a CUDA device runs, declared where it is written.

Without a GPU the backend's array logic still runs, on NumPy arrays (``cupy[host]``), and
``cuda/*.cu`` still compiles with NVRTC; but a kernel built from CUDA source text
(``ElementwiseKernel``, ``ReductionKernel``, ``RawKernel``, ``RawModule``, the ``.cu``
files) has no host form, so nothing here runs it. Each one is declared with
:func:`gpu_only` beside its code, when its module is imported, so the list that
``refimpl check`` prints where no GPU is usable (the backend's ``device_only``) comes from
the code, not from a list kept by hand; ``tests/test_gpu_paths.py`` scans the sources and
fails on a kernel built without a declaration. ``benchmarks/gpu.sh`` runs them all.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DECLARED", "KINDS", "GpuOnly", "device_only", "gpu_only"]

PACKAGE = Path(__file__).resolve().parent
IN_REPOSITORY = "backends/refimpl_cupy"  # where the package lives in refimpl's repository
KINDS = ("ElementwiseKernel", "ReductionKernel", "RawKernel", "RawModule")


@dataclass(frozen=True)
class GpuOnly:
    """A kernel only a CUDA device runs: its name, the CuPy class that compiles it, the ops
    that call it, the file holding its CUDA source (relative to the package) and its backend."""

    name: str
    kind: str
    ops: tuple[str, ...]
    source: str
    backend: str

    def describe(self) -> str:
        path = f"{IN_REPOSITORY}/{self.source}"
        if self.name == Path(self.source).name:  # a .cu file: the file is the name
            return f"{self.kind} {path}"
        return f"{self.kind} {self.name!r} ({path})"


DECLARED: list[GpuOnly] = []


def gpu_only(
    name: str, kind: str, *, ops: tuple[str, ...], backend: str = "cupy", source: str = ""
) -> GpuOnly:
    """Declare a kernel that only a CUDA device runs; ``source`` defaults to the calling module."""
    if kind not in KINDS:
        raise ValueError(f"gpu_only: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not source:
        caller = Path(sys._getframe(1).f_code.co_filename).resolve()
        source = caller.relative_to(PACKAGE).as_posix()
    declared = GpuOnly(name, kind, tuple(ops), source, backend)
    if declared not in DECLARED:  # a module imported again declares nothing new
        DECLARED.append(declared)
    return declared


def device_only(backend: str) -> dict[str, tuple[str, ...]]:
    """``Backend(device_only=...)``: each kernel of ``backend``, described, with its ops."""
    return {k.describe(): k.ops for k in DECLARED if k.backend == backend}
