"""refimpl_cupy: GPU implementations of refimpl ops (CuPy).

Elementwise pieces are ``cupy.fuse`` kernels and row statistics are CuPy reductions
(see ``_fuse.py``: the same code runs as plain NumPy on a machine without a GPU, which is
how CI checks its array logic). Backend ``cupy-raw`` runs hand-written CUDA kernels
(``cuda/*.cu``, launched from ``raw.py``) for the hottest row-wise ops; CI compiles them
with NVRTC even without a GPU, and the conformance suite checks them on a GPU. The kernels
only a GPU runs are declared in ``_gpu_only.py``; without one, ``refimpl check`` lists them.
"""

from __future__ import annotations

from refimpl import Backend, Impl
from refimpl.authoring import collect_impls

__all__ = ["gpu_available", "host_backend", "load", "load_raw"]


def gpu_available() -> tuple[bool, str]:
    """Whether CuPy can use a CUDA device here, and why not."""
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # no driver, no device, or CuPy missing
        return False, f"no usable CUDA device ({type(error).__name__}: {str(error)})"
    if count < 1:
        return False, "no CUDA device"
    return True, ""


def _impls() -> dict[str, Impl]:
    import refimpl_cupy

    return collect_impls(refimpl_cupy)


def host_backend() -> Backend:
    """The same implementations on NumPy inputs (fusion off): checks the array logic."""
    return Backend(
        "cupy[host]",
        _impls(),
        array_library="numpy",
        description="the CuPy backend's code run on NumPy arrays (no GPU needed)",
    )


def _self_checks():
    from . import cuda

    return {f"nvrtc compiles cuda/{name}": check for name, check in cuda.compile_checks().items()}


def load() -> Backend:
    """Build the backend; it reports itself unavailable when no GPU is present."""
    import cupy

    from ._gpu_only import device_only

    impls = _impls()  # imports every module, and so declares its GPU-only kernels
    return Backend(
        "cupy",
        impls,
        array_library="cupy",
        description="CuPy on a CUDA GPU: fused elementwise kernels, CuPy reductions",
        asarray=cupy.asarray,
        to_numpy=cupy.asnumpy,
        available=gpu_available,
        host_variant=host_backend,
        device_only=device_only("cupy"),
    )


def load_raw() -> Backend:
    """The hand-written CUDA kernels; without a GPU only their compilation is checked."""
    import cupy

    from ._gpu_only import device_only
    from .raw import RAW_IMPLS

    return Backend(
        "cupy-raw",
        RAW_IMPLS,
        array_library="cupy",
        description="hand-written CUDA kernels (one block per row) through CuPy",
        asarray=cupy.asarray,
        to_numpy=cupy.asnumpy,
        available=gpu_available,
        self_checks=_self_checks(),
        device_only=device_only("cupy-raw"),
    )
