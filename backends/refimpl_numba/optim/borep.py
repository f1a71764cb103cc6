"""BO-REP's update rules in Numba: fused elementwise passes, parallel over the flat index.

Mirrors ``refimpl/optim/borep.py``. The linear-system step and the hypergradient are one
pass each (read the inputs once, write the output once). The normalized momentum step is
two passes: the first writes m' and accumulates ‖m'‖² in float64 (a ``prange`` reduction),
the second writes x' = x − s·m'. Where the float64 sum of squares overflows or underflows
(|m'ᵢ| beyond ~1e154 or below ~1e-154) the norm is recomputed scaled by max|m'ᵢ|, as the
reference always computes it. Coefficients are rounded to the arrays' dtype before the
kernels, in the reference's operation order, without ``fastmath``.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel

# below this the float64 sum of squares may have lost digits to underflow; above, it is safe
_SQUARES_SAFE_LOW = 1e-290


@parallel_kernel()
def _linear_system_flat(z, hvp_yy, grad_y_f, nu, out_z):
    for i in prange(z.shape[0]):
        out_z[i] = z[i] - nu * (hvp_yy[i] - grad_y_f[i])


@parallel_kernel()
def _difference_flat(a, b, out):
    for i in prange(a.shape[0]):
        out[i] = a[i] - b[i]


@parallel_kernel()
def _momentum_flat(hypergradient, momentum, beta, one_minus_beta, out_m):
    squares = 0.0  # float64 accumulator, whatever the dtype
    for i in prange(momentum.shape[0]):
        m = beta * momentum[i] + one_minus_beta * hypergradient[i]
        out_m[i] = m
        squares += np.float64(m) * np.float64(m)
    return squares


@parallel_kernel()
def _scaled_step_flat(params, new_momentum, step, out_p):
    for i in prange(params.shape[0]):
        out_p[i] = params[i] - step * new_momentum[i]


def _flat(*arrays):
    return [np.ascontiguousarray(a).reshape(-1) for a in arrays]


def borep_linear_system_step_forward(z, hvp_yy, grad_y_f, *, nu):
    flat = _flat(z, hvp_yy, grad_y_f)
    out = np.empty_like(flat[0])
    _linear_system_flat(*flat, z.dtype.type(nu), out)
    return out.reshape(z.shape), None


def borep_hypergradient_forward(grad_x_f, hvp_xy):
    flat = _flat(grad_x_f, hvp_xy)
    out = np.empty_like(flat[0])
    _difference_flat(*flat, out)
    return out.reshape(grad_x_f.shape), None


def _norm(new_momentum, squares):
    if np.isfinite(squares) and squares > _SQUARES_SAFE_LOW:
        return float(np.sqrt(squares))
    # overflow, underflow, zero or NaN: the reference's scaled form
    largest = float(np.max(np.abs(new_momentum), initial=0.0))
    if largest == 0.0 or not np.isfinite(largest):
        return largest
    scaled = new_momentum.astype(np.float64) / largest
    return largest * float(np.sqrt(np.dot(scaled, scaled)))


def normalized_momentum_step_forward(params, hypergradient, momentum, *, lr, beta=0.9, eps=1e-10):
    dtype = params.dtype.type
    flat_p, flat_g, flat_m = _flat(params, hypergradient, momentum)
    new_momentum = np.empty_like(flat_m)
    squares = _momentum_flat(flat_g, flat_m, dtype(beta), dtype(1 - beta), new_momentum)
    denominator = _norm(new_momentum, squares) + eps
    step = lr / denominator if denominator > 0 else 0.0
    new_params = np.empty_like(flat_p)
    _scaled_step_flat(flat_p, new_momentum, dtype(step), new_params)
    return (new_params.reshape(params.shape), new_momentum.reshape(params.shape)), None


IMPLS = {
    "borep_linear_system_step": Impl(borep_linear_system_step_forward),
    "borep_hypergradient": Impl(borep_hypergradient_forward),
    "normalized_momentum_step": Impl(normalized_momentum_step_forward),
}
