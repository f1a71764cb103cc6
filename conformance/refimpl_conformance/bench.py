"""Benchmarks: forward+backward time of each backend against the reference and PyTorch.

What is reported, per (op, backend):

* the median wall time of one forward+backward (``vjp`` then ``pullback``) after warm-up,
  over at least ``repeat`` runs and ``min_time`` seconds, with the spread (the 25th and
  75th percentiles) and the first call's time (JIT compilation, kernel loading);
* the ratio to the NumPy reference and to the same computation in PyTorch (CPU eager, its
  autograd for the backward or its own fused op), where the op's cases declare one;
* achieved bandwidth: the bytes a fused forward+backward must move (inputs and
  cotangents read once, outputs and gradients written once) over the time, as a fraction
  of this machine's copy bandwidth, measured by the same run;
* the roofline: the time this machine needs at least, ``bytes / copy bandwidth`` plus the
  op's exp-class evaluations at NumPy's one-thread float ``exp`` rate (measured in the same
  run) over the threads, plus the time NumPy's BLAS takes for the same matrix products
  where the op is built on them; ``of roofline`` is that time over the measured one.
"""

from __future__ import annotations

import inspect
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

import refimpl

__all__ = [
    "BenchCase",
    "BenchResult",
    "Timing",
    "bench",
    "bench_case",
    "bench_ops",
    "copy_bandwidth",
    "exp_throughput",
]


@dataclass
class BenchCase:
    """How to benchmark one op: inputs of a given shape, the bytes it must move, a torch twin."""

    op: str
    make: Callable[[tuple[int, ...], str, np.random.Generator], tuple[tuple, dict, Any]]
    bytes_moved: Callable[[tuple[Any, ...], dict[str, Any]], int] | None = (
        None  # None: counted from the inputs
    )
    torch: Callable[..., Callable[[], Any]] | None = None
    torch_label: str = ""
    transcendentals: Callable[[tuple[Any, ...], dict[str, Any]], int] | None = None
    blas: Callable[[tuple[Any, ...], dict[str, Any]], Callable[[], Any]] | None = None


@dataclass
class Timing:
    """One timed step: the first call, then the median and quartiles of the warm runs (s)."""

    first: float
    median: float
    p25: float
    p75: float
    runs: int


@dataclass
class BenchResult:
    op: str
    backend: str
    shape: tuple[int, ...]
    dtype: str
    median_ms: float
    first_call_ms: float
    bytes_moved: int
    gbps: float = 0.0
    fraction_of_copy: float = 0.0
    vs_numpy: float | None = None
    vs_torch: float | None = None
    note: str = ""
    p25_ms: float = 0.0
    p75_ms: float = 0.0
    runs: int = 0
    roofline_ms: float = 0.0
    of_roofline: float = 0.0

    @property
    def spread(self) -> float:
        """Half the interquartile range over the median."""
        return (self.p75_ms - self.p25_ms) / 2 / self.median_ms if self.median_ms else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BenchReport:
    copy_gbps: float
    copy_method: str
    threads: int
    results: list[BenchResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    device_copy_gbps: float | None = None  # GPU memory copy bandwidth, when a GPU backend ran
    device: str = ""
    exp_ns: float = 0.0  # NumPy's one-thread exp, ns per element, in the bench dtype
    dtype: str = "float32"
    repeat: int = 0
    min_time: float = 0.0


# -- the cases' declarations --------------------------------------------------------------
def _defaults(op) -> set[str]:
    return {name for name, p in op.signature.parameters.items() if p.default is not inspect.Parameter.empty}


def bench_case(op_name: str) -> BenchCase | None:
    """The bench case ``op_name``'s conformance cases declare (``OpCases.bench``), or None."""
    from ._cases import all_cases

    cases = all_cases().get(op_name)
    if cases is None or cases.bench is None:
        return None
    op = refimpl.get(op_name)
    declared = cases.bench

    def make(shape, dtype, rng):
        rows, cols = shape[0], shape[-1]
        if declared.make is not None:
            sample = declared.make(rng, rows, cols)
        else:
            sizes = {k: {"rows": rows, "cols": cols}.get(v, v) for k, v in declared.sizes.items()}
            sample = cases.random(rng, **{**cases.draw_dims(rng), **sizes})
        args = tuple(
            a.astype(dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in sample.args
        )
        # the op's defaults (the paper's configuration) for every option that has one; the
        # sampler's draw only for the required ones; the declaration's options over both
        kwargs = {k: v for k, v in sample.kwargs.items() if k not in _defaults(op)}
        kwargs.update(
            {
                k: (v.astype(dtype) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v)
                for k, v in declared.kwargs.items()
            }
        )
        cotangent = None
        if op.is_differentiable:
            outputs = op(*args, **kwargs)
            outs = outputs if isinstance(outputs, tuple) else (outputs,)
            ones = [np.ones_like(np.asarray(o)) if np.asarray(o).dtype.kind == "f" else None for o in outs]
            cotangent = ones[0] if len(outs) == 1 else tuple(ones)
        return args, kwargs, cotangent

    moved = None
    if declared.bytes_moved is not None:
        moved = declared.bytes_moved
    return BenchCase(
        op_name, make, moved, declared.torch, declared.torch_label, declared.transcendentals, declared.blas
    )


def bench_ops() -> list[str]:
    """Ops whose cases declare a benchmark, in catalog order."""
    return [op.name for op in refimpl.ops() if bench_case(op.name) is not None]


# -- timing -----------------------------------------------------------------------------
def _time(
    step: Callable[[], Any],
    repeat: int,
    sync: Callable[[], None] = lambda: None,
    min_time: float = 0.0,
) -> Timing:
    """Time ``step``: its first call, a warm-up (two calls and at least a tenth of
    ``min_time``), then at least ``repeat`` runs and ``min_time`` seconds (at most
    ``20·repeat`` runs), each synchronized."""
    sync()
    start = time.perf_counter()
    step()
    sync()
    first = time.perf_counter() - start
    warm_until = time.perf_counter() + min_time / 10
    for call in range(1000):  # allocator, caches, the thread pool's first wake-up
        step()
        sync()
        if call >= 1 and time.perf_counter() >= warm_until:
            break
    times: list[float] = []
    stop_after = time.perf_counter() + min_time
    while len(times) < repeat or (time.perf_counter() < stop_after and len(times) < 20 * repeat):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return Timing(first, statistics.median(times), quartiles[0], quartiles[2], len(times))


def copy_bandwidth(megabytes: int = 256) -> tuple[float, str]:
    """This machine's copy bandwidth in GB/s (read + write bytes over time), best method.

    Measured with NumPy's single-threaded copy and, when Numba is installed, a parallel
    copy over all threads; the larger is the yardstick.
    """
    n = megabytes * 2**20 // 8
    src = np.ones(n)
    dst = np.empty_like(src)
    best = {}
    t = _time(lambda: np.copyto(dst, src), 9).median
    best["numpy copyto (1 thread)"] = 2 * src.nbytes / t / 1e9
    try:
        import importlib.util

        if importlib.util.find_spec("refimpl_numba") is not None:
            import refimpl_numba  # noqa: F401 - its OpenMP wait policy, before Numba's threads start
        from numba import njit, prange

        @njit(parallel=True, cache=False)
        def parallel_copy(a, b):
            for i in prange(a.size):
                b[i] = a[i]

        t = _time(lambda: parallel_copy(src, dst), 9).median
        best["numba parallel copy"] = 2 * src.nbytes / t / 1e9
    except ImportError:
        pass
    method = max(best, key=best.get)
    return best[method], method


def exp_throughput(dtype: str = "float32", megabytes: int = 32) -> float:
    """NumPy's ``exp`` on this machine: nanoseconds per element on one thread (its SIMD loop)."""
    x = np.linspace(-10.0, 10.0, megabytes * 2**20 // np.dtype(dtype).itemsize).astype(dtype)
    y = np.empty_like(x)
    return _time(lambda: np.exp(x, out=y), 9).median / x.size * 1e9


def device_copy_bandwidth(megabytes: int = 1024) -> tuple[float, str]:
    """The GPU's copy bandwidth in GB/s (read + write over time) and the device's name."""
    import cupy

    n = megabytes * 2**20 // 8
    src = cupy.ones(n)
    dst = cupy.empty_like(src)
    t = _time(lambda: cupy.copyto(dst, src), 10, lambda: cupy.cuda.Device().synchronize()).median
    name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"].decode()
    return 2 * src.nbytes / t / 1e9, name


def _backend_step(op, backend, args, kwargs, cotangent):
    """Forward and backward through the backend (the forward alone for a non-differentiable op)."""
    device_args = [backend.asarray(a) if isinstance(a, np.ndarray) else a for a in args]
    if cotangent is None:
        call = backend.get(op)
        return lambda: call(*device_args, **kwargs)
    cotangents = cotangent if isinstance(cotangent, tuple) else (cotangent,)
    device_cot = tuple(backend.asarray(c) if c is not None else None for c in cotangents)
    given = device_cot if isinstance(cotangent, tuple) else device_cot[0]

    def step():
        _, pullback = refimpl.vjp(op, *device_args, backend=backend, **kwargs)
        pullback(given)

    return step


def _preallocated_step(op_name, backend, args, kwargs, cotangent):
    """Forward+backward through the backend's functions with ``out=`` buffers, when they take
    them: the same kernels without the page faults of fresh outputs (and without the op
    layer's validation, which is cheap). None when the backend has no such functions."""
    impl = backend.impl(op_name)
    takes_out = [
        impl.forward is not None and "out" in inspect.signature(impl.forward).parameters,
        impl.backward is not None and "out" in inspect.signature(impl.backward).parameters,
    ]
    if not any(takes_out):
        return None
    op = refimpl.get(op_name)
    bound = op.bind(args, kwargs, library=backend.array_library)
    outputs, _ = impl.forward(*bound.args, **bound.kwargs)
    forward_kw = {"out": np.empty_like(outputs)} if takes_out[0] else {}
    first = bound.arguments[op.differentiable[0]]
    backward_kw = {"out": np.empty_like(first)} if takes_out[1] else {}

    def step():
        _, residuals = impl.forward(*bound.args, **bound.kwargs, **forward_kw)
        impl.backward(residuals, cotangent, **backward_kw)

    return step


def _sync_for(backend) -> Callable[[], None]:
    if backend.array_library == "cupy":
        import cupy

        return lambda: cupy.cuda.Device().synchronize()
    return lambda: None


def bench(
    ops: Sequence[str] | None = None,
    backends: Sequence[str] | None = None,
    shape: tuple[int, ...] = (8192, 1024),
    dtype: str = "float32",
    repeat: int = 10,
    torch_baseline: bool = True,
    progress: Callable[[str], None] | None = None,
    min_time: float = 0.5,
) -> BenchReport:
    """Time forward+backward of ``ops`` on each backend (the reference always included)."""
    tick = progress or (lambda label: None)
    copy_gbps, method = copy_bandwidth()
    threads = _threads()
    report = BenchReport(copy_gbps, method, threads, dtype=dtype, repeat=repeat, min_time=min_time)
    report.exp_ns = exp_throughput(dtype)
    names = list(backends) if backends is not None else refimpl.backends()
    if "numpy" not in names:
        names.insert(0, "numpy")
    chosen = []
    for name in names:
        try:
            backend = refimpl.backend(name)
        except ImportError as error:
            report.notes.append(f"{name}: not importable ({error})")
            continue
        available, why = backend.available()
        if not available:
            report.notes.append(f"{name}: {why}; not timed")
            continue
        chosen.append(backend)
        if backend.array_library == "cupy" and report.device_copy_gbps is None:
            report.device_copy_gbps, report.device = device_copy_bandwidth()
    torch = None
    if torch_baseline:
        try:
            import torch

            torch.set_num_threads(threads)
        except ImportError:
            report.notes.append("torch not installed: no PyTorch baseline (pip install torch)")
    rng = np.random.default_rng(0)

    def timed(label, step, sync=lambda: None):
        timing = _time(step, repeat, sync, min_time)
        tick(label)
        return timing

    for op_name in ops or bench_ops():
        case = bench_case(op_name)
        if case is None:
            report.notes.append(f"{op_name}: its cases declare no benchmark (OpCases.bench)")
            continue
        try:
            args, kwargs, cotangent = case.make(shape, dtype, rng)
        except (ValueError, MemoryError) as error:  # a conformance sampler that does not scale
            report.notes.append(f"{op_name}: no inputs of shape {shape} ({error}); not timed")
            continue
        moved = (
            case.bytes_moved(args, kwargs)
            if case.bytes_moved is not None
            else _counted_bytes(op_name, args, kwargs)
        )
        roofline = moved / (copy_gbps * 1e9)
        if case.transcendentals is not None:
            roofline += case.transcendentals(args, kwargs) * report.exp_ns * 1e-9 / threads
        if case.blas is not None:
            roofline += timed(f"{op_name} blas", case.blas(args, kwargs)).median
        rows: list[BenchResult] = []

        for backend in chosen:
            if not backend.supports(op_name):
                continue
            step = _backend_step(op_name, backend, args, kwargs, cotangent)
            timing = timed(f"{op_name} {backend.name}", step, _sync_for(backend))
            rows.append(_row(op_name, backend.name, shape, dtype, timing, moved))
            if backend.array_library == "numpy":
                step = _preallocated_step(op_name, backend, args, kwargs, cotangent)
                if step is not None:
                    timing = timed(f"{op_name} {backend.name} (out=)", step)
                    rows.append(
                        _row(
                            op_name,
                            f"{backend.name} (out=)",
                            shape,
                            dtype,
                            timing,
                            moved,
                            "outputs written into reused buffers",
                        )
                    )
        if torch is not None and case.torch is not None:
            step = case.torch(torch, args, kwargs, cotangent)
            timing = timed(f"{op_name} torch", step)
            rows.append(_row(op_name, "torch-cpu", shape, dtype, timing, moved, case.torch_label))
        reference = next((r for r in rows if r.backend == "numpy"), None)
        torch_row = next((r for r in rows if r.backend == "torch-cpu"), None)
        on_gpu = {b.name for b in chosen if b.array_library == "cupy"}
        for row in rows:
            seconds = row.median_ms / 1e3
            row.gbps = row.bytes_moved / seconds / 1e9
            if row.backend in on_gpu:  # the GPU's limit: its own copy bandwidth
                row.fraction_of_copy = row.gbps / report.device_copy_gbps
                row.roofline_ms = row.bytes_moved / (report.device_copy_gbps * 1e9) * 1e3
            else:
                row.fraction_of_copy = row.gbps / copy_gbps
                row.roofline_ms = roofline * 1e3
            row.of_roofline = row.roofline_ms / row.median_ms
            if reference is not None:
                row.vs_numpy = reference.median_ms / row.median_ms
            if torch_row is not None:
                row.vs_torch = torch_row.median_ms / row.median_ms
        report.results.extend(rows)
    return report


def _row(op_name, backend_name, shape, dtype, timing: Timing, moved: int, note: str = "") -> BenchResult:
    row = BenchResult(op_name, backend_name, shape, dtype, timing.median * 1e3, timing.first * 1e3, moved)
    row.note, row.p25_ms, row.p75_ms, row.runs = note, timing.p25 * 1e3, timing.p75 * 1e3, timing.runs
    return row


def _threads() -> int:
    try:
        import numba

        return numba.config.NUMBA_NUM_THREADS
    except ImportError:
        return os.cpu_count() or 1


def _counted_bytes(op_name: str, args: tuple, kwargs: dict) -> int:
    """Float inputs and cotangents read once, outputs and gradients written once."""
    op = refimpl.get(op_name)
    bound = op.bind(args, kwargs)
    floats = {k: v for k, v in bound.arguments.items() if isinstance(v, np.ndarray) and v.dtype.kind == "f"}
    moved = sum(v.nbytes for v in floats.values())
    moved += sum(floats[k].nbytes for k in op.differentiable if k in floats)
    outputs = op(*args, **kwargs)
    outs = outputs if isinstance(outputs, tuple) else (outputs,)
    moved += sum(np.asarray(o).nbytes for o in outs) * (2 if op.is_differentiable else 1)
    return moved
