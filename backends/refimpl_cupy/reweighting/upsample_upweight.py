"""Temperature sampling, scalarization weights and the Cooldown schedule on CuPy.

Mirrors ``refimpl/reweighting/upsample_upweight.py``. ``log n/τ`` is one fused kernel
(an empty domain reads ``log 1`` there and is masked out by the next kernel, so no
``log 0`` is ever evaluated); the max over the non-empty domains and the sums are CuPy
reductions that stay on the device; the shifted exponentials and the log-space ratio
``p/q`` are fused kernels. The schedule is ``searchsorted`` plus a gather.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def scaled_log(counts, inverse_tau):
        # log n/τ; an empty domain reads log 1 = 0 here and is masked by the callers
        return xp.log(xp.where(counts > 0, counts, 1)) * inverse_tau

    @fuse
    def shifted_exp(counts, scaled, top):
        # subtract the max: exp cannot overflow (n^{1/τ} itself would for n = 1e9, τ < 0.1)
        return xp.where(counts > 0, xp.exp(scaled - top), 0)

    @fuse
    def ratio(counts, scaled, exponent_of_log_n, log_normalizer, log_total):
        # log w_i = (1/τ − 1)·log n_i − lse + log N
        return xp.where(counts > 0, xp.exp(scaled * exponent_of_log_n - log_normalizer + log_total), 0)

    return SimpleNamespace(scaled_log=scaled_log, shifted_exp=shifted_exp, ratio=ratio)


kernels_for = kernel_set(_kernels)


def _scaled_and_top(k, xp, counts, tau):
    dtype = counts.dtype.type
    scaled = k.scaled_log(counts, dtype(1 / tau))
    top = xp.where(counts > 0, scaled, dtype(-xp.inf)).max()  # max over the non-empty domains
    return scaled, top


def temperature_sampling_probs_forward(counts, *, tau):
    xp = xp_of(counts)
    k = kernels_for(counts)
    scaled, top = _scaled_and_top(k, xp, counts, tau)
    e = k.shifted_exp(counts, scaled, top)
    return e / e.sum(), None


def scalarization_weights_forward(counts, *, tau):
    xp = xp_of(counts)
    k = kernels_for(counts)
    dtype = counts.dtype.type
    scaled, top = _scaled_and_top(k, xp, counts, tau)
    log_normalizer = top + xp.log(k.shifted_exp(counts, scaled, top).sum())  # lse_j(log n_j/τ)
    log_total = xp.log(counts.sum())
    # (1/τ − 1)·log n = (log n/τ)·(1 − τ)
    weights = k.ratio(counts, scaled, dtype(1 - tau), log_normalizer, log_total)
    return weights.astype(counts.dtype, copy=False), None


def cooldown_temperature_schedule_forward(steps, taus, switch_steps):
    xp = xp_of(taus)
    stage = xp.searchsorted(switch_steps, steps, side="right") - 1
    return taus[stage], None


IMPLS = {
    "temperature_sampling_probs": Impl(temperature_sampling_probs_forward),
    "scalarization_weights": Impl(scalarization_weights_forward),
    "cooldown_temperature_schedule": Impl(cooldown_temperature_schedule_forward),
}
