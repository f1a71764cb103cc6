"""Hand-written CUDA kernels (``cuda/*.cu``) for the hottest row-wise ops: backend ``cupy-raw``.

One thread block per row: the row's reductions stay in shared memory and registers, so a
forward+backward reads each input once and writes each output once. These launchers mirror
the fused implementations (``layers/layer_norm.py``, ``losses/stablemax.py``) and are
checked against the reference by the conformance suite whenever a GPU is present; without
one, CI compiles the sources with NVRTC.
"""

from __future__ import annotations

import numpy as np

from refimpl.authoring import Impl, reduce_rows

from ._gpu_only import gpu_only
from .cuda import raw_module

THREADS = 256
LAYER_NORM_CU = gpu_only(
    "layer_norm.cu", "RawModule", ops=("layer_norm",), backend="cupy-raw", source="cuda/layer_norm.cu"
)
STABLEMAX_CU = gpu_only(
    "stablemax.cu",
    "RawModule",
    ops=("stablemax_cross_entropy",),
    backend="cupy-raw",
    source="cuda/stablemax.cu",
)


def _suffix(dtype) -> str:
    return "f32" if dtype == np.float32 else "f64"


def layer_norm_forward(x, gamma, beta, *, eps=1e-5):
    import cupy

    d = x.shape[-1]
    rows = cupy.ascontiguousarray(x).reshape(-1, d)
    n = rows.shape[0]
    y = cupy.empty_like(rows)
    mean = cupy.empty(n, dtype=cupy.float64)
    rstd = cupy.empty(n, dtype=cupy.float64)
    gamma = cupy.ascontiguousarray(gamma)
    kernel = raw_module(LAYER_NORM_CU.name).get_function(f"layer_norm_forward_{_suffix(x.dtype)}")
    kernel(
        (n,),
        (THREADS,),
        (rows, gamma, cupy.ascontiguousarray(beta), np.float64(eps), np.int64(d), y, mean, rstd),
    )
    return y.reshape(x.shape), (rows, mean, rstd, gamma, x.shape)


def layer_norm_backward(residuals, g_y):
    import cupy

    rows, mean, rstd, gamma, shape = residuals
    n, d = rows.shape
    g_rows = cupy.ascontiguousarray(g_y).reshape(n, d)
    g_x = cupy.empty_like(rows)
    suffix = _suffix(rows.dtype)
    module = raw_module(LAYER_NORM_CU.name)
    module.get_function(f"layer_norm_backward_input_{suffix}")(
        (n,), (THREADS,), (rows, mean, rstd, gamma, g_rows, np.int64(d), g_x)
    )
    chunks = max(1, min(n, 128))
    rows_per_chunk = -(-n // chunks)
    g_gamma = cupy.zeros(d, dtype=cupy.float64)
    g_beta = cupy.zeros(d, dtype=cupy.float64)
    module.get_function(f"layer_norm_backward_params_{suffix}")(
        (-(-d // THREADS), chunks),
        (THREADS,),
        (rows, mean, rstd, g_rows, np.int64(n), np.int64(d), np.int64(rows_per_chunk), g_gamma, g_beta),
    )
    return g_x.reshape(shape), g_gamma.astype(rows.dtype), g_beta.astype(rows.dtype)


def stablemax_cross_entropy_forward(z, y, *, reduction="mean", compute_in_float64=False):
    import cupy

    dtype = z.dtype
    work = cupy.ascontiguousarray(z, dtype=cupy.float64 if compute_in_float64 else z.dtype)
    labels = cupy.ascontiguousarray(y, dtype=cupy.int64)
    n, k = work.shape
    per_row = cupy.empty(n, dtype=cupy.float64)
    total_s = cupy.empty(n, dtype=cupy.float64)
    kernel = raw_module(STABLEMAX_CU.name).get_function(
        f"stablemax_cross_entropy_forward_{_suffix(work.dtype)}"
    )
    kernel((n,), (THREADS,), (work, labels, np.int64(k), per_row, total_s))
    return reduce_rows(per_row, reduction, dtype), (work, labels, total_s, reduction, dtype)


def stablemax_cross_entropy_backward(residuals, g_loss):
    import cupy

    work, labels, total_s, reduction, dtype = residuals
    n, k = work.shape
    g = g_loss.astype(cupy.float64)
    if reduction == "none":
        scale = cupy.ascontiguousarray(g)
    elif reduction == "mean":
        scale = cupy.full(n, 1.0 / n, dtype=cupy.float64) * g
    else:
        scale = cupy.full(n, 1.0, dtype=cupy.float64) * g
    g_z = cupy.empty(work.shape, dtype=work.dtype)
    kernel = raw_module(STABLEMAX_CU.name).get_function(
        f"stablemax_cross_entropy_backward_{_suffix(work.dtype)}"
    )
    kernel((n,), (THREADS,), (work, labels, total_s, scale, np.int64(k), g_z))
    return (g_z.astype(dtype),)


IMPLS = {}  # not collected into the fused backend: these make up `cupy-raw`
RAW_IMPLS = {
    "layer_norm": Impl(layer_norm_forward, layer_norm_backward),
    "stablemax_cross_entropy": Impl(stablemax_cross_entropy_forward, stablemax_cross_entropy_backward),
}
