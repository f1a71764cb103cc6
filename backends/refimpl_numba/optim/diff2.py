"""DIFF2 estimator step: two Numba passes over the (N, P) node gradients.

Mirrors ``refimpl/optim/diff2.py``:

1. parallel over nodes: each row's ``‖u_i‖²`` (``u_i = g_i`` at restarts, ``g_i − g_i'``
   otherwise) summed in float64, giving the clip factor ``min(1, C/‖u_i‖)``;
2. parallel over blocks of 256 coordinates: the node average ``(1/N) Σ_i factor_i·u_i`` summed over rows in
   order (the reference's order), then ``v_r`` and ``x_{r+1}`` in float64, rounded once.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel


@parallel_kernel()
def _clip_factors(grads, grads_previous, difference, radius, clip, out):
    for i in prange(grads.shape[0]):
        squares = 0.0
        for j in range(grads.shape[1]):
            u = np.float64(grads[i, j])
            if difference:
                u -= np.float64(grads_previous[i, j])
            squares += u * u
        norm = math.sqrt(squares)
        out[i] = radius / norm if clip and norm > radius else 1.0


BLOCK = 256  # coordinates per task: each row's slice is read contiguously


@parallel_kernel()
def _update(
    params, grads, grads_previous, estimator, noise, factors, difference, sigma, lr, out_params, out_estimator
):
    n, p = grads.shape
    for block in prange((p + BLOCK - 1) // BLOCK):
        start = block * BLOCK
        stop = min(p, start + BLOCK)
        total = np.zeros(stop - start)
        for i in range(n):  # rows in order, as the reference sums them
            factor = factors[i]
            for j in range(start, stop):
                u = np.float64(grads[i, j])
                if difference:
                    u -= np.float64(grads_previous[i, j])
                total[j - start] += factor * u
        for j in range(start, stop):
            base = np.float64(estimator[j]) if difference else 0.0
            v = base + total[j - start] / n + sigma * np.float64(noise[j])
            out_estimator[j] = v
            out_params[j] = np.float64(params[j]) - lr * v


def diff2_estimator_step_forward(
    params,
    grads,
    grads_previous,
    estimator,
    noise,
    *,
    round_index,
    period,
    clip_restart,
    clip_difference,
    sigma_restart,
    sigma_difference,
    lr,
):
    difference = round_index % period != 0
    radius = clip_difference if difference else clip_restart
    sigma = sigma_difference if difference else sigma_restart
    grads = np.ascontiguousarray(grads)
    grads_previous = np.ascontiguousarray(grads_previous)
    factors = np.empty(grads.shape[0])
    _clip_factors(grads, grads_previous, difference, float(radius or 0.0), radius is not None, factors)
    new_params = np.empty_like(params)
    new_estimator = np.empty_like(params)
    _update(
        params,
        grads,
        grads_previous,
        estimator,
        noise,
        factors,
        difference,
        float(sigma),
        float(lr),
        new_params,
        new_estimator,
    )
    return (new_params, new_estimator), None


IMPLS = {"diff2_estimator_step": Impl(diff2_estimator_step_forward)}
