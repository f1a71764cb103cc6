"""refimpl_numba: JIT-compiled CPU implementations of refimpl ops (Numba).

Kernels are compiled on first use and cached on disk (``cache=True``); ``parallel=True``
kernels split rows across threads (``NUMBA_NUM_THREADS``). The layout mirrors the
reference: ``refimpl_numba/losses/stablemax.py`` sits beside ``refimpl/losses/stablemax.py``.
"""

from __future__ import annotations

from refimpl import Backend
from refimpl.authoring import collect_impls

__all__ = ["load"]


def load() -> Backend:
    """Build the backend (imports numba and every kernel module; each lists its ``IMPLS``)."""
    import refimpl_numba

    from ._finite import all_finite

    return Backend(
        "numba",
        collect_impls(refimpl_numba),
        description="Numba JIT kernels on the CPU, parallel over rows",
        all_finite=all_finite,
    )
