"""refimpl_numba: JIT-compiled CPU implementations of refimpl ops (Numba).

Kernels are compiled on first use and cached on disk (``cache=True``); ``parallel=True``
kernels split rows across threads (``NUMBA_NUM_THREADS``). The layout mirrors the
reference: ``refimpl_numba/losses/stablemax.py`` sits beside ``refimpl/losses/stablemax.py``.
"""

from __future__ import annotations

from refimpl import Backend, Impl

__all__ = ["load"]


def load() -> Backend:
    """Build the backend (imports numba and the kernel modules)."""
    from .layers import layer_norm
    from .losses import stablemax

    impls = {
        "stablemax": Impl(stablemax.stablemax_forward, stablemax.stablemax_backward),
        "stablemax_cross_entropy": Impl(
            stablemax.stablemax_cross_entropy_forward, stablemax.stablemax_cross_entropy_backward
        ),
        "layer_norm": Impl(layer_norm.layer_norm_forward, layer_norm.layer_norm_backward),
    }
    return Backend(
        "numba",
        impls,
        description="Numba JIT kernels on the CPU, parallel over rows",
    )
