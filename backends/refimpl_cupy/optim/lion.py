"""Lion on CuPy: one elementwise kernel reads θ, g, m once and writes θ' and m'.

Mirrors ``refimpl/optim/lion.py``, in the same operation order. On the host the update
below runs as plain NumPy (fusion off), which checks its array logic without a GPU.

On the GPU the same four lines run as an ``ElementwiseKernel`` compiled with
``--fmad=false``. ``cupy.fuse`` cannot pass compile options, and NVRTC's default
``--fmad=true`` contracts ``β1·m + (1 − β1)·g`` and ``β2·m + (1 − β2)·g`` into fused
multiply-adds (``fma.rn.f64`` in the PTX): one rounding instead of two, one ulp off the
reference on a few percent of coordinates, in float64 too — and Lion's conformance
tolerance in float64 is zero. ``tests/test_lion.py`` compiles ``LION_CUDA`` with NVRTC
(no GPU needed) and checks the PTX has no ``fma``.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of
from .._gpu_only import gpu_only

LION_PARAMS = (
    "T params, T grads, T momentum, T lr, T beta1, T one_minus_beta1, T beta2, T one_minus_beta2, T decay"
)
LION_OUTPUTS = "T new_params, T new_momentum"
LION_CUDA = """
T c = beta1 * momentum + one_minus_beta1 * grads;
T sign_c = c > T(0) ? T(1) : (c < T(0) ? T(-1) : c + T(0));  // NumPy's sign: +0 for ±0, NaN for NaN
new_params = params * decay - lr * sign_c;
new_momentum = beta2 * momentum + one_minus_beta2 * grads;
"""
LION_OPTIONS = ("--fmad=false",)  # every product and sum rounded on its own, as in NumPy
LION_KERNEL = gpu_only("refimpl_lion_step", "ElementwiseKernel", ops=("lion_step",))


def _kernels(xp, fuse):
    @fuse
    def lion_update(params, grads, momentum, lr, beta1, one_minus_beta1, beta2, one_minus_beta2, decay):
        c = beta1 * momentum + one_minus_beta1 * grads
        new_params = params * decay - lr * xp.sign(c)
        new_momentum = beta2 * momentum + one_minus_beta2 * grads
        return new_params, new_momentum

    if xp is not np:  # on the GPU: the same lines in CUDA, without FMA contraction
        lion_update = xp.ElementwiseKernel(
            LION_PARAMS, LION_OUTPUTS, LION_CUDA, LION_KERNEL.name, options=LION_OPTIONS
        )
    return SimpleNamespace(lion_update=lion_update)


kernels_for = kernel_set(_kernels)


def lion_init_forward(params):
    return xp_of(params).zeros_like(params), None


def lion_step_forward(params, grads, momentum, *, lr=1e-4, beta1=0.9, beta2=0.99, weight_decay=0.0):
    dtype = params.dtype.type  # coefficients are rounded once to the arrays' dtype
    new_params, new_momentum = kernels_for(params).lion_update(
        params,
        grads,
        momentum,
        dtype(lr),
        dtype(beta1),
        dtype(1 - beta1),
        dtype(beta2),
        dtype(1 - beta2),
        dtype(1 - lr * weight_decay),
    )
    return (new_params, new_momentum), None


IMPLS = {
    "lion_init": Impl(lion_init_forward),
    "lion_step": Impl(lion_step_forward),
}
