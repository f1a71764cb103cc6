"""Hand-written CUDA sources of the CuPy backend, and their compilation.

On a GPU machine the sources are loaded with ``cupy.RawModule``. Without one, CI still
compiles every source to PTX with NVRTC (``cuda-bindings`` + ``nvidia-cuda-nvrtc-cu12``,
the ``cupy`` extra), so a syntax or type error is caught on every run.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

__all__ = ["compile_checks", "compile_to_ptx", "raw_module", "source", "sources"]

HERE = Path(__file__).parent
ARCHITECTURE = "compute_70"  # the oldest architecture the kernels target (atomicAdd on double)


def sources() -> list[str]:
    """Names of the ``.cu`` files shipped with the backend."""
    return sorted(p.name for p in HERE.glob("*.cu"))


def source(name: str) -> str:
    return (HERE / name).read_text()


def compile_to_ptx(name: str, architecture: str = ARCHITECTURE) -> str:
    """Compile ``cuda/<name>`` with NVRTC and return the PTX; raise with the log on failure."""
    from cuda.bindings import nvrtc

    def ok(result):
        status, *values = result
        if status != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            raise RuntimeError(f"NVRTC {status.name}")
        return values[0] if len(values) == 1 else values

    program = ok(nvrtc.nvrtcCreateProgram(source(name).encode(), name.encode(), 0, [], []))
    options = [f"--gpu-architecture={architecture}".encode(), b"--std=c++17"]
    (status,) = nvrtc.nvrtcCompileProgram(program, len(options), options)
    if status != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        size = ok(nvrtc.nvrtcGetProgramLogSize(program))
        log = b" " * size
        nvrtc.nvrtcGetProgramLog(program, log)
        raise RuntimeError(f"NVRTC failed to compile {name}:\n{log.decode(errors='replace')}")
    size = ok(nvrtc.nvrtcGetPTXSize(program))
    ptx = b" " * size
    ok(nvrtc.nvrtcGetPTX(program, ptx))
    return ptx.decode().rstrip("\x00")


def compile_checks() -> dict[str, Callable[[], None]]:
    """One check per source: it compiles to PTX that defines every ``extern "C"`` kernel."""

    def check(name: str) -> None:
        ptx = compile_to_ptx(name)
        for kernel in _kernel_names(name):
            if f".entry {kernel}(" not in ptx:
                raise RuntimeError(f"{name}: kernel {kernel} missing from the PTX")

    return {name: functools.partial(check, name) for name in sources()}


def _kernel_names(name: str) -> list[str]:
    names = []
    for line in source(name).splitlines():
        line = line.strip()
        if line.startswith('extern "C" __global__'):
            names.append(line.split("(")[0].split()[-1])
    return names


@functools.cache
def raw_module(name: str):
    """The compiled ``cupy.RawModule`` of ``cuda/<name>`` (needs a GPU)."""
    import cupy

    return cupy.RawModule(code=source(name), options=("--std=c++17",))
