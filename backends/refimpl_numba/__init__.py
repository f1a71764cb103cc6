"""refimpl_numba: JIT-compiled CPU implementations of refimpl ops (Numba).

Kernels are compiled on first use and cached on disk (``cache=True``). Row-parallel kernels
are declared with ``@parallel_kernel`` (``_jit.py``): their ``prange`` loops split rows across
threads (``NUMBA_NUM_THREADS``) in a ``parallel=True`` build compiled only when an input is
large, and run in a one-thread build, three times cheaper to compile, on small inputs such
as the conformance samples (``REFIMPL_NUMBA_PARALLEL=auto|always|never``). The cache is
rebuilt whenever any file of the package changes (``_cache.py``). The layout mirrors the
reference: ``refimpl_numba/losses/stablemax.py`` sits beside ``refimpl/losses/stablemax.py``.
"""

from __future__ import annotations

from refimpl import Backend
from refimpl.authoring import collect_impls

from ._cache import install as _install_cache

__all__ = ["load"]

_install_cache()  # before any kernel is declared: see _cache.py


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
