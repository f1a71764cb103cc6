"""Kernels written once, run fused on the GPU and as plain NumPy on the host.

Each kernel module defines its elementwise and reducing pieces inside a
``kernels(xp, fuse)`` factory. :func:`kernel_set` builds it twice: with ``cupy`` and
``cupy.fuse()`` (one fused CUDA kernel per piece) and with ``numpy`` and no fusion. The
text of the computation is the same, so the host run on a machine without a GPU checks
the array logic the GPU runs, and the GPU conformance run checks the fused kernels.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

try:  # CuPy imports without a GPU; device calls then raise CUDARuntimeError
    import cupy
except ImportError:  # pragma: no cover - the extra is not installed
    cupy = None


def _no_fusion(function: Callable[..., Any]) -> Callable[..., Any]:
    return function


def kernel_set(factory: Callable[[Any, Callable], Any]) -> Callable[[Any], Any]:
    """Return ``kernels_for(array)``: the GPU set for CuPy arrays, the host set otherwise."""

    @functools.cache
    def build(on_gpu: bool) -> Any:
        if on_gpu:
            return factory(cupy, cupy.fuse())
        return factory(np, _no_fusion)

    def kernels_for(array: Any) -> Any:
        return build(cupy is not None and isinstance(array, cupy.ndarray))

    return kernels_for


def xp_of(array: Any) -> Any:
    """The array module of ``array`` (``cupy`` or ``numpy``)."""
    if cupy is not None and isinstance(array, cupy.ndarray):
        return cupy
    return np
