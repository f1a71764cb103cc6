"""Benchmarks: forward+backward time of each backend against the reference and PyTorch.

What is reported, per (op, backend):

* the median wall time of one forward+backward (``vjp`` then ``pullback``), after
  warm-up, and the first call's time (JIT compilation, kernel loading);
* the ratio to the NumPy reference and to PyTorch CPU eager (when torch is installed);
* achieved bandwidth: the bytes a fused forward+backward must move (inputs and
  cotangents read once, outputs and gradients written once) over the time, and that as
  a fraction of this machine's copy bandwidth, measured by the same run.

The yardstick is memory traffic: these row-wise ops do a few flops per byte, so the copy
bandwidth bounds them.
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

__all__ = ["BenchCase", "BenchResult", "bench", "bench_case", "bench_ops", "copy_bandwidth", "BENCH_CASES"]


@dataclass
class BenchCase:
    """How to benchmark one op: inputs of a given shape, the bytes it must move, a torch twin."""

    op: str
    make: Callable[[tuple[int, ...], str, np.random.Generator], tuple[tuple, dict, Any]]
    bytes_moved: Callable[[tuple[int, ...], int], int] | None = None  # None: counted from the inputs
    torch: Callable[..., Callable[[], None]] | None = None
    torch_label: str = ""


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


# -- inputs and torch baselines ---------------------------------------------------------
def _layer_norm_inputs(shape, dtype, rng):
    d = shape[-1]
    x = rng.standard_normal(shape).astype(dtype)
    gamma = rng.standard_normal(d).astype(dtype)
    beta = rng.standard_normal(d).astype(dtype)
    g_y = rng.standard_normal(shape).astype(dtype)
    return (x, gamma, beta), {"eps": 1e-5}, g_y


def _layer_norm_torch(torch, x, gamma, beta, eps, g_y):
    x = torch.from_numpy(x).requires_grad_()
    gamma = torch.from_numpy(gamma).requires_grad_()
    beta = torch.from_numpy(beta).requires_grad_()
    g_y = torch.from_numpy(g_y)

    def step():
        y = torch.nn.functional.layer_norm(x, (x.shape[-1],), gamma, beta, eps)
        x.grad = gamma.grad = beta.grad = None
        y.backward(g_y)

    return step


def _cross_entropy_inputs(shape, dtype, rng):
    z = (rng.standard_normal(shape) * 3).astype(dtype)
    y = rng.integers(0, shape[-1], size=shape[0])
    return (z, y), {}, np.array(1.0, dtype=dtype)


def _cross_entropy_torch(torch, z, y, g):
    z = torch.from_numpy(z).requires_grad_()
    y = torch.from_numpy(y)

    def step():
        loss = torch.nn.functional.cross_entropy(z, y)
        z.grad = None
        loss.backward()

    return step


BENCH_CASES: dict[str, BenchCase] = {
    "layer_norm": BenchCase(
        "layer_norm",
        _layer_norm_inputs,
        bytes_moved=lambda shape, item: 4 * int(np.prod(shape)) * item,  # x, g_y in; y, g_x out
        torch=lambda torch, args, kwargs, cot: _layer_norm_torch(torch, *args, kwargs["eps"], cot),
        torch_label="torch.nn.functional.layer_norm",
    ),
    "stablemax_cross_entropy": BenchCase(
        "stablemax_cross_entropy",
        _cross_entropy_inputs,
        bytes_moved=lambda shape, item: 2 * int(np.prod(shape)) * item,  # z in, g_z out
        torch=lambda torch, args, kwargs, cot: _cross_entropy_torch(torch, *args, cot),
        torch_label="torch.nn.functional.cross_entropy (softmax; the fused loss users have)",
    ),
}


def _loss_case_dims(cases, shape) -> dict[str, int] | None:
    """The sampler's dims at the benchmark's size: its first dim (B or N, the rows) gets
    ``shape[0]``, its classes K (else its second dim: items, buckets, features) ``shape[-1]``;
    a dataset size N after the first is ``shape[0]``; any other dim keeps the top of its
    conformance range (the bottom, beside K: extra axes of a per-class loss, e.g. tokens)."""
    names = list(cases.dims)
    if not names or names[0] not in ("B", "N"):
        return None
    if len(names) == 1:  # in-batch scores: a (rows, rows) problem
        return {names[0]: shape[0]}
    columns = "K" if "K" in names[1:] else names[1]  # classes, when the sampler names them
    dims = {names[0]: shape[0], columns: shape[-1]}
    for name in names[1:]:
        if name != columns:
            dims[name] = shape[0] if name == "N" else cases.dims[name][0 if columns == "K" else 1]
    return dims


# derived cases with no softmax over their columns: PyTorch's fused cross-entropy on the same
# array would time different work, so they are compared with the reference only
NO_SOFTMAX_BASELINE = frozenset(
    {
        "cosine_infonce",  # three (N, N, D) matrix products dominate, not the row softmax
        "dcdm_loss",  # products with A and per-row projections
        "vsd_loss",  # elementwise differences of images
        "pinball_loss",  # piecewise-linear per quantile level
        "weighted_interval_score",
        "quantile_aggregation",
        "z_loss",  # row standardization, no exponentials
        "kl_dro_value",  # reweighting rules over a vector of per-sample losses
        "kl_dro_weights",
        "loss_weighted_objective",
    }
)


def _classification_loss_case(op_name: str) -> BenchCase | None:
    """A bench case for a differentiable loss over rows × classes (or items, buckets,
    features), built from its conformance sampler at the benchmark's size (valid inputs by
    construction; every option that has a default left at it, ``reduction`` included). The
    PyTorch baseline is the fused softmax cross-entropy on the same (rows, classes) logits:
    the speed a user has today, not the same loss."""
    from ._cases import all_cases

    cases = all_cases().get(op_name)
    op = refimpl.get(op_name)
    if cases is None or not op.differentiable or op.family not in ("losses", "reweighting"):
        return None
    if _loss_case_dims(cases, (2, 2)) is None:
        return None

    defaults = {
        name for name, p in op.signature.parameters.items() if p.default is not inspect.Parameter.empty
    }

    def make(shape, dtype, rng):
        for _ in range(50):  # a sampler may draw a smaller variant (one row, no batch axis)
            sample = cases.random(rng, **_loss_case_dims(cases, shape))
            first = next(a for a in sample.args if isinstance(a, np.ndarray) and a.dtype.kind == "f")
            if first.size >= shape[0] * shape[-1]:
                break
        args = tuple(
            a.astype(dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in sample.args
        )
        # the op's defaults (the paper's configuration) for every option that has one; the
        # sampler's draw only for the required ones (e.g. comp-sum's τ)
        kwargs = {k: v for k, v in sample.kwargs.items() if k not in defaults}
        outputs = op(*args, **kwargs)
        first = outputs[0] if isinstance(outputs, tuple) else outputs
        cotangent = np.ones_like(np.asarray(first))
        return args, kwargs, cotangent

    def torch_step(torch, args, kwargs, cotangent):
        z = next(a for a in args if isinstance(a, np.ndarray) and a.dtype.kind == "f")
        z = z.reshape(-1, z.shape[-1])
        labels = np.random.default_rng(1).integers(0, z.shape[1], size=z.shape[0])
        return _cross_entropy_torch(torch, np.ascontiguousarray(z), labels, cotangent)

    if op_name in NO_SOFTMAX_BASELINE:
        return BenchCase(op_name, make)
    return BenchCase(
        op_name,
        make,
        torch=torch_step,
        torch_label="torch.nn.functional.cross_entropy (softmax; the fused loss users have)",
    )


def bench_case(op_name: str) -> BenchCase | None:
    """The bench case of ``op_name``: hand-written above, or derived for a (B, K) loss."""
    if op_name in BENCH_CASES:
        return BENCH_CASES[op_name]
    return _classification_loss_case(op_name)


def bench_ops() -> list[str]:
    """Ops with a benchmark: the hand-written cases, then every (B, K) differentiable loss or
    reweighting rule that some non-reference backend implements."""
    names = list(BENCH_CASES)
    fast = set()
    for name in refimpl.backends():
        if name == "numpy":
            continue
        try:
            backend = refimpl.backend(name)
        except ImportError:
            continue
        fast |= {op.name for op in refimpl.ops() if backend.supports(op.name)}
    for op in refimpl.ops():
        if op.name in fast and op.name not in names and op.family in ("losses", "reweighting"):
            if _classification_loss_case(op.name) is not None:
                names.append(op.name)
    return names


# -- timing -----------------------------------------------------------------------------
def _time(step: Callable[[], None], repeat: int, sync: Callable[[], None] = lambda: None):
    sync()
    start = time.perf_counter()
    step()
    sync()
    first = time.perf_counter() - start
    step()  # one more warm-up (allocator, caches)
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def copy_bandwidth(megabytes: int = 256) -> tuple[float, str]:
    """This machine's copy bandwidth in GB/s (read + write bytes over time), best method.

    Measured with NumPy's single-threaded copy and, when Numba is installed, a parallel
    copy over all threads; the larger is the yardstick.
    """
    n = megabytes * 2**20 // 8
    src = np.ones(n)
    dst = np.empty_like(src)
    best = {}
    _, t = _time(lambda: np.copyto(dst, src), 9)
    best["numpy copyto (1 thread)"] = 2 * src.nbytes / t / 1e9
    try:
        from numba import njit, prange

        @njit(parallel=True, cache=False)
        def parallel_copy(a, b):
            for i in prange(a.size):
                b[i] = a[i]

        _, t = _time(lambda: parallel_copy(src, dst), 9)
        best["numba parallel copy"] = 2 * src.nbytes / t / 1e9
    except ImportError:
        pass
    method = max(best, key=best.get)
    return best[method], method


def device_copy_bandwidth(megabytes: int = 1024) -> tuple[float, str]:
    """The GPU's copy bandwidth in GB/s (read + write over time) and the device's name."""
    import cupy

    n = megabytes * 2**20 // 8
    src = cupy.ones(n)
    dst = cupy.empty_like(src)
    _, t = _time(lambda: cupy.copyto(dst, src), 10, lambda: cupy.cuda.Device().synchronize())
    name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"].decode()
    return 2 * src.nbytes / t / 1e9, name


def _backend_step(op, backend, args, kwargs, cotangent):
    device_args = [backend.asarray(a) if isinstance(a, np.ndarray) else a for a in args]
    device_cot = backend.asarray(cotangent)

    def step():
        _, pullback = refimpl.vjp(op, *device_args, backend=backend, **kwargs)
        pullback(device_cot)

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
) -> BenchReport:
    """Time forward+backward of ``ops`` on each backend (the reference always included)."""
    tick = progress or (lambda label: None)
    copy_gbps, method = copy_bandwidth()
    threads = os.cpu_count() or 1
    report = BenchReport(copy_gbps, method, threads)
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
    for op_name in ops or bench_ops():
        case = bench_case(op_name)
        if case is None:
            report.notes.append(f"{op_name}: no benchmark (not a (B, K) differentiable loss)")
            continue
        try:
            args, kwargs, cotangent = case.make(shape, dtype, rng)
        except (ValueError, MemoryError) as error:  # a conformance sampler that does not scale
            report.notes.append(f"{op_name}: no inputs of shape {shape} ({error}); not timed")
            continue
        item = np.dtype(dtype).itemsize
        if case.bytes_moved is not None:
            moved = case.bytes_moved(shape, item)
        else:  # every float input read once, a gradient written for each differentiable one
            bound = refimpl.get(op_name).bind(args, kwargs)
            floats = {
                k: v for k, v in bound.arguments.items() if isinstance(v, np.ndarray) and v.dtype.kind == "f"
            }
            moved = sum(v.nbytes for v in floats.values())
            moved += sum(floats[k].nbytes for k in refimpl.get(op_name).differentiable if k in floats)
        rows: list[BenchResult] = []
        for backend in chosen:
            if not backend.supports(op_name):
                continue
            step = _backend_step(op_name, backend, args, kwargs, cotangent)
            first, median = _time(step, repeat, _sync_for(backend))
            rows.append(BenchResult(op_name, backend.name, shape, dtype, median * 1e3, first * 1e3, moved))
            tick(f"{op_name} {backend.name}")
            if backend.array_library == "numpy":
                step = _preallocated_step(op_name, backend, args, kwargs, cotangent)
                if step is not None:
                    first, median = _time(step, repeat)
                    rows.append(
                        BenchResult(
                            op_name,
                            f"{backend.name} (out=)",
                            shape,
                            dtype,
                            median * 1e3,
                            first * 1e3,
                            moved,
                            note="outputs written into reused buffers",
                        )
                    )
        if torch is not None and case.torch is not None:
            step = case.torch(torch, args, kwargs, cotangent)
            first, median = _time(step, repeat)
            rows.append(
                BenchResult(
                    op_name,
                    "torch-cpu",
                    shape,
                    dtype,
                    median * 1e3,
                    first * 1e3,
                    moved,
                    note=case.torch_label,
                )
            )
            tick(f"{op_name} torch")
        reference = next((r for r in rows if r.backend == "numpy"), None)
        torch_row = next((r for r in rows if r.backend == "torch-cpu"), None)
        on_gpu = {b.name for b in chosen if b.array_library == "cupy"}
        for row in rows:
            row.gbps = row.bytes_moved / (row.median_ms / 1e3) / 1e9
            yardstick = report.device_copy_gbps if row.backend in on_gpu else copy_gbps
            row.fraction_of_copy = row.gbps / yardstick
            if reference is not None:
                row.vs_numpy = reference.median_ms / row.median_ms
            if torch_row is not None:
                row.vs_torch = torch_row.median_ms / row.median_ms
        report.results.extend(rows)
    return report
