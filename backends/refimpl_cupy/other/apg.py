"""Adaptive projected guidance on CuPy: one fused pass for the state, float64 row sums, one
fused pass for the output.

Mirrors ``refimpl/other/apg.py``. The new state ``run' = Δ + β·run`` is written once; the
per-sample sums ``‖run'‖²``, ``⟨run', D_c⟩`` and ``‖D_c‖²`` are float64 reductions over the
non-batch axes; with ``s = min(1, r/‖run'‖)`` (rounded to the dtype, as the reference) and
``c = s⟨run', D_c⟩/max(‖D_c‖, 1e-12)²`` the output is one fused elementwise kernel,
``D = base + step·(s·run' + (η − 1)·c·D_c)`` in float64 and rounded once (base = D_c and
step = w − 1 for the paper, D_u and w for diffusers). On the host the same functions run as
plain NumPy.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of

NORMALIZE_EPS = 1e-12  # as in the reference (torch.nn.functional.normalize)


def _kernels(xp, fuse):
    @fuse
    def momentum_state(cond, uncond, running, beta):
        return (cond - uncond) + beta * running

    @fuse
    def guided_output(base, cond, state, scale, parallel_coefficient, step):
        # scale and parallel_coefficient are float64 (B, 1) arrays: the arithmetic is float64
        update = scale * state + parallel_coefficient * cond
        return base + step * update

    return SimpleNamespace(momentum_state=momentum_state, guided_output=guided_output)


kernels_for = kernel_set(_kernels)


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
    xp = xp_of(pred_cond)
    k = kernels_for(pred_cond)
    dtype = pred_cond.dtype.type
    shape = pred_cond.shape
    batch = shape[0]
    cond = pred_cond.reshape(batch, -1)
    uncond = pred_uncond.reshape(batch, -1)
    if running is None:
        state = cond - uncond
    else:
        state = k.momentum_state(cond, uncond, running.reshape(batch, -1), dtype(momentum))
    state64 = state.astype(xp.float64)
    cond64 = cond.astype(xp.float64)
    norm = xp.sqrt((state64 * state64).sum(axis=1, keepdims=True))
    scale = xp.ones_like(norm)
    if norm_threshold > 0:
        binding = norm > norm_threshold
        scale = xp.where(binding, norm_threshold / xp.where(binding, norm, 1.0), 1.0)
    scale = scale.astype(pred_cond.dtype).astype(xp.float64)  # the reference's factor, in the dtype
    guard = xp.maximum(xp.sqrt((cond64 * cond64).sum(axis=1, keepdims=True)), NORMALIZE_EPS)
    coefficient = scale * (state64 * cond64).sum(axis=1, keepdims=True) / (guard * guard)
    paper = formulation == "paper"
    base = cond if paper else uncond
    step = float(guidance_scale) - 1.0 if paper else float(guidance_scale)
    guided = k.guided_output(base, cond, state, scale, (float(eta) - 1.0) * coefficient, step)
    return (guided.astype(pred_cond.dtype).reshape(shape), state.astype(pred_cond.dtype).reshape(shape)), None


IMPLS = {"adaptive_projected_guidance": Impl(adaptive_projected_guidance_forward)}
