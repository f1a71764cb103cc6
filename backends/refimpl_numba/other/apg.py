"""Adaptive projected guidance: two fused Numba passes per sample.

Mirrors ``refimpl/other/apg.py``. Per sample (one row of the flattened (B, n) arrays):

1. one reduction reads D_c, D_u (and the state) once, writes the new state
   ``run' = Δ + β·run`` and sums ``‖run'‖²``, ``⟨run', D_c⟩`` and ``‖D_c‖²`` in float64;
2. one pass writes the output. With the rescaling factor ``s = min(1, r/‖run'‖)`` and
   ``c = s⟨run', D_c⟩/max(‖D_c‖, 1e-12)²``, ``Δ_∥ = c·D_c`` and ``Δ_⊥ = s·run' − c·D_c``, so
   ``D = D_c + (w − 1)(s·run' + (η − 1)·c·D_c)`` (paper) or
   ``D = D_u + w(s·run' + (η − 1)·c·D_c)`` (diffusers), each element in float64, rounded once.

One kernel runs both passes, parallel over the samples for large inputs (serial below 2²⁰
elements, where starting the thread pool costs more than the work).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel

NORMALIZE_EPS = 1e-12  # as in the reference (torch.nn.functional.normalize)


def _rows(
    cond, base, uncond, running, beta, has_running, threshold, eta_minus_one, step, scales, new_running, out
):
    """Both passes for every sample, parallel over the samples (the scale rounded via ``scales``)."""
    for b in prange(cond.shape[0]):
        update_squares = 0.0
        update_cond = 0.0
        cond_squares = 0.0
        for j in range(cond.shape[1]):
            delta = cond[b, j] - uncond[b, j]
            value = delta + beta * running[b, j] if has_running else delta
            new_running[b, j] = value
            u = np.float64(value)
            c = np.float64(cond[b, j])
            update_squares += u * u
            update_cond += u * c
            cond_squares += c * c
        norm = math.sqrt(update_squares)
        scales[b] = threshold / norm if 0.0 < threshold < norm else 1.0  # rounded to the dtype
        scale = np.float64(scales[b])
        guard = max(math.sqrt(cond_squares), NORMALIZE_EPS)
        parallel_coefficient = eta_minus_one * scale * update_cond / (guard * guard)
        for j in range(cond.shape[1]):
            update = scale * np.float64(new_running[b, j]) + parallel_coefficient * np.float64(cond[b, j])
            out[b, j] = np.float64(base[b, j]) + step * update


#: below this many elements one thread is faster: starting the pool costs more than the pass
#: (and on a loaded machine a parallel region waits for descheduled threads)
PARALLEL_MIN_SIZE = 1 << 20
_rows_kernel = parallel_kernel(min_elements=PARALLEL_MIN_SIZE, fastmath={"reassoc"})(_rows)


def adaptive_projected_guidance_forward(
    pred_cond,
    pred_uncond,
    running=None,
    *,
    guidance_scale,
    eta,
    norm_threshold,
    momentum,
    formulation="paper",
):
    dtype = pred_cond.dtype.type
    shape = pred_cond.shape
    batch = shape[0]
    cond = np.ascontiguousarray(pred_cond).reshape(batch, -1)
    uncond = np.ascontiguousarray(pred_uncond).reshape(batch, -1)
    state_in = cond if running is None else np.ascontiguousarray(running).reshape(batch, -1)
    new_running = np.empty_like(cond)
    guided = np.empty_like(cond)
    beta = dtype(momentum)
    paper = formulation == "paper"
    step = float(guidance_scale) - 1.0 if paper else float(guidance_scale)
    scales = np.empty(batch, dtype=pred_cond.dtype)
    base = cond if paper else uncond
    kernel = _rows_kernel.serial if batch == 1 else _rows_kernel  # one sample: no rows to split
    kernel(
        cond,
        base,
        uncond,
        state_in,
        beta,
        running is not None,
        float(norm_threshold),
        float(eta) - 1.0,
        step,
        scales,
        new_running,
        guided,
    )
    return (guided.reshape(shape), new_running.reshape(shape)), None


IMPLS = {"adaptive_projected_guidance": Impl(adaptive_projected_guidance_forward)}
