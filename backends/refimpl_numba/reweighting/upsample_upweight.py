"""Temperature sampling, scalarization weights and the Cooldown schedule: Numba kernels.

Mirrors ``refimpl/reweighting/upsample_upweight.py``. Both weight rules are one kernel
with three passes over the D domain sizes: the max of ``log n/τ`` over the non-empty
domains, the shifted exponentials (their sum and N = Σn accumulated in float64), then
the normalization (probabilities) or the log-space ratio ``p/q`` (weights). Empty domains
are skipped, never passed through ``log 0``. The schedule is a binary search per step.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from refimpl.authoring import Impl


@njit(cache=True)
def _max_scaled_log(counts, inverse_tau):
    best = -np.inf
    for i in range(counts.shape[0]):
        if counts[i] > 0:
            best = max(best, np.log(np.float64(counts[i])) * inverse_tau)
    return best


@njit(cache=True)
def _probs(counts, inverse_tau, out):
    top = _max_scaled_log(counts, inverse_tau)
    total = 0.0
    for i in range(counts.shape[0]):
        # subtract the max: exp cannot overflow (n^{1/τ} itself would for n = 1e9, τ < 0.1)
        e = np.exp(np.log(np.float64(counts[i])) * inverse_tau - top) if counts[i] > 0 else 0.0
        out[i] = e
        total += e
    for i in range(counts.shape[0]):
        out[i] = out[i] / total


@njit(cache=True)
def _weights(counts, inverse_tau, out):
    top = _max_scaled_log(counts, inverse_tau)
    shifted_sum = 0.0
    total = 0.0
    for i in range(counts.shape[0]):
        if counts[i] > 0:
            shifted_sum += np.exp(np.log(np.float64(counts[i])) * inverse_tau - top)
        total += counts[i]
    log_normalizer = top + np.log(shifted_sum)  # lse_j(log n_j / τ)
    log_total = np.log(total)
    for i in range(counts.shape[0]):
        if counts[i] > 0:
            # log w_i = (1/τ − 1)·log n_i − lse + log N
            out[i] = np.exp((inverse_tau - 1.0) * np.log(np.float64(counts[i])) - log_normalizer + log_total)
        else:
            out[i] = 0


def temperature_sampling_probs_forward(counts, *, tau):
    probs = np.empty_like(counts)
    _probs(np.ascontiguousarray(counts), 1.0 / tau, probs)
    return probs, None


def scalarization_weights_forward(counts, *, tau):
    weights = np.empty_like(counts)
    _weights(np.ascontiguousarray(counts), 1.0 / tau, weights)
    return weights, None


@njit(cache=True)
def _schedule(steps, taus, switch_steps, out):
    stages = switch_steps.shape[0]
    for n in range(steps.shape[0]):
        # the last stage k with switch_steps[k] <= t (switch_steps[0] = 0 <= t always)
        low, high = 0, stages
        while high - low > 1:
            middle = (low + high) // 2
            if switch_steps[middle] <= steps[n]:
                low = middle
            else:
                high = middle
        out[n] = taus[low]


def cooldown_temperature_schedule_forward(steps, taus, switch_steps):
    out = np.empty(steps.shape[0], dtype=taus.dtype)
    _schedule(
        np.ascontiguousarray(steps, dtype=np.int64),
        np.ascontiguousarray(taus),
        np.ascontiguousarray(switch_steps, dtype=np.int64),
        out,
    )
    return out, None


IMPLS = {
    "temperature_sampling_probs": Impl(temperature_sampling_probs_forward),
    "scalarization_weights": Impl(scalarization_weights_forward),
    "cooldown_temperature_schedule": Impl(cooldown_temperature_schedule_forward),
}
