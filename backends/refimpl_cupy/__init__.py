"""refimpl_cupy: GPU implementations of refimpl ops (CuPy). Work in progress."""

from __future__ import annotations

from refimpl import Backend

__all__ = ["load"]


def load() -> Backend:
    return Backend("cupy", {}, array_library="cupy", description="CuPy kernels on a CUDA GPU")
