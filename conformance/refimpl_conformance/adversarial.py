"""The adversarial sweep: every op, on every backend, driven with input a careless or unlucky
caller gives it.

From each op's first random sample, in float64 and float32, it makes:

* **non-finite entries** — a NaN, +inf or −inf in each float input: refused (``InputError``),
  unless the op's spec allows that value;
* **extreme magnitudes** — each float input scaled by 1e30 and by 1e-30: refused, or finite
  outputs and gradients, which in float32 must agree with the float64 reference on the same
  inputs (to 1 % of the largest output: a gross error, not a rounding one);
* **huge integers** — 2³¹ and 2⁶² in each integer argument without an upper bound: refused,
  or an answer computed without a large allocation (an id is not a size);
* **memory layouts** — each array input Fortran-ordered, strided, negatively strided and
  read-only: results identical bit for bit to the contiguous call;

and on every call it checks that no input was modified and that a second call gives the
same bits. Each op runs in a worker process with a memory ceiling and a time limit, so a
call that allocates gigabytes or never returns is reported instead of taking the machine
down.

Findings, by kind: ``crash`` (an exception other than ``InputError``, a dead worker, a
time-out), ``nonfinite`` (finite in-domain input, non-finite output or gradient), ``wrong``
(float32 far from the float64 reference), ``memory`` (a call allocated far more than its
inputs and outputs), ``layout``, ``inplace``, ``nondeterministic``.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import refimpl
from refimpl import Backend, InputError, Op
from refimpl.authoring import Scalar, Tensor

from ._cases import OpCases, all_cases
from ._engine import _run, cast_floats

__all__ = ["KINDS", "Finding", "SweepReport", "sweep", "sweep_op"]

KINDS = ("crash", "nonfinite", "wrong", "memory", "layout", "inplace", "nondeterministic")
SCALES = (1e30, 1e-30)
HUGE_INTEGERS = (2**31, 2**62)
MEMORY_LIMIT = 3 << 30  # bytes a worker may allocate (its address space for data)
OP_TIMEOUT = 240.0  # seconds one op's sweep may take in a worker
EXTRA_MEMORY = 64 << 20  # allowed beyond 16 × (inputs + outputs) for one call


@dataclass
class Finding:
    op: str
    backend: str
    dtype: str
    case: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.op} on {self.backend} ({self.dtype}), {self.case}: {self.detail}"


@dataclass
class SweepReport:
    findings: list[Finding] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)  # "refused", "computed", per case kind
    calls: int = 0
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        found = Counter(f.kind for f in self.findings)
        return {kind: found.get(kind, 0) for kind in KINDS}

    def merge(self, other: SweepReport) -> None:
        self.findings += other.findings
        self.outcomes.update(other.outcomes)
        self.calls += other.calls


# -- the calls ----------------------------------------------------------------------------
def _copy(value: Any) -> Any:
    return value.copy() if isinstance(value, np.ndarray) else value


def _same_bits(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return a.tobytes() == b.tobytes()


def _all_finite(values: Iterable[Any]) -> bool:
    return all(not _is_float(v) or bool(np.all(np.isfinite(v))) for v in values)


def _is_float(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind == "f"


def _cast(kwargs: dict[str, Any], dtype: str) -> dict[str, Any]:
    return {k: (v.astype(dtype) if _is_float(v) else v) for k, v in kwargs.items()}


@dataclass
class _Call:
    """One call's outcome: outputs and gradients (NumPy), or the exception it raised."""

    outputs: tuple[Any, ...] | None = None
    grads: tuple[Any, ...] | None = None
    error: BaseException | None = None
    peak: int = 0

    @property
    def values(self) -> tuple[Any, ...]:
        return (self.outputs or ()) + (self.grads or ())


def _cotangents(op: Op, outputs: Sequence[Any]) -> list[Any] | None:
    if not op.is_differentiable:
        return None
    rng = np.random.default_rng(7)
    return [rng.standard_normal(np.shape(o)).astype(o.dtype) if _is_float(o) else None for o in outputs]


def _call(op: Op, backend: Backend, args, kwargs, *, trace: bool = False) -> _Call:
    if trace:
        tracemalloc.start()
    try:
        with np.errstate(all="ignore"):
            outputs, _ = _run(op, backend, args, kwargs, check_results=True)
            grads = None
            cotangents = _cotangents(op, outputs)
            if cotangents is not None and any(c is not None for c in cotangents):
                outputs, grads = _run(op, backend, args, kwargs, cotangents, check_results=True)
        result = _Call(outputs, grads)
    except InputError as error:
        result = _Call(error=error)
    except Exception as error:  # noqa: BLE001 - any other exception is what the sweep reports
        result = _Call(error=error)
    finally:
        if trace:
            result_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    if trace:
        result.peak = result_peak
    return result


def _describe_error(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text[:200]}"


def _nbytes(values: Iterable[Any]) -> int:
    return sum(v.nbytes for v in values if isinstance(v, np.ndarray))


# -- the cases ----------------------------------------------------------------------------
def _arguments(op: Op, args, kwargs) -> dict[str, Any]:
    bound = op.signature.bind(*args, **kwargs)
    return dict(bound.arguments)


def _split(op: Op, arguments: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    positional = [
        n for n, p in op.signature.parameters.items() if p.kind == p.POSITIONAL_OR_KEYWORD and n in arguments
    ]
    args, kwargs = [], {}
    for name in op.signature.parameters:
        if name not in arguments:
            continue
        if name in positional and len(args) == positional.index(name):
            args.append(arguments[name])
        else:
            kwargs[name] = arguments[name]
    return tuple(args), kwargs


def _layouts(value: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The same values in other memory layouts (views that are not C-contiguous)."""
    variants = []
    if value.ndim >= 2 and value.size > 1:
        variants.append(("Fortran-ordered", np.asfortranarray(value)))
    if value.ndim >= 1 and value.size > 1:
        wide = np.zeros(value.shape[:-1] + (2 * value.shape[-1],), value.dtype)
        wide[..., ::2] = value
        variants.append(("strided", wide[..., ::2]))
        variants.append(("negatively strided", np.flip(np.flip(value).copy())))
    if value.size:
        frozen = value.copy()
        frozen.flags.writeable = False
        variants.append(("read-only", frozen))
    return variants


def _float_inputs(op: Op, arguments: dict[str, Any]) -> list[str]:
    return [
        n
        for n, spec in op.specs.items()
        if isinstance(spec, Tensor)
        and spec.kind == "float"
        and isinstance(arguments.get(n), np.ndarray)
        and arguments[n].size
    ]


def _unbounded_integers(op: Op, arguments: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    for n, spec in op.specs.items():
        value = arguments.get(n)
        if isinstance(spec, Tensor) and spec.kind == "int" and spec.high is None:
            if isinstance(value, np.ndarray) and value.size:
                found.append((n, "array"))
        elif isinstance(spec, Scalar) and spec.kind == "integer" and spec.high is None and value is not None:
            found.append((n, "scalar"))
    return found


class _OpSweep:
    def __init__(self, op: Op, cases: OpCases, backend_name: str, backend: Backend, report: SweepReport):
        self.op, self.cases, self.report = op, cases, report
        self.backend_name, self.backend = backend_name, backend

    def find(self, dtype: str, case: str, kind: str, detail: str) -> None:
        self.report.findings.append(Finding(self.op.name, self.backend_name, dtype, case, kind, detail))

    def finite(self, result: _Call) -> bool:
        """Every output and gradient finite, but for the values an output declares meaningful."""
        for label, value in zip(self.op.outputs, result.outputs or (), strict=True):
            allow = self.op.nonfinite_outputs.get(label, ())
            if _is_float(value) and allow:
                bad = ~np.isfinite(value)
                if "nan" in allow:
                    bad &= ~np.isnan(value)
                if "inf" in allow:
                    bad &= value != np.inf
                if "-inf" in allow:
                    bad &= value != -np.inf
                if bad.any():
                    return False
            elif not _all_finite([value]):
                return False
        return _all_finite(result.grads or ())

    def call(self, dtype: str, case: str, arguments: dict[str, Any], *, trace: bool = False) -> _Call:
        """Call, and check that no input changed and that a second call gives the same bits."""
        args, kwargs = _split(self.op, arguments)
        before = [_copy(a) for a in args], {k: _copy(v) for k, v in kwargs.items()}
        result = _call(self.op, self.backend, args, kwargs, trace=trace)
        self.report.calls += 1
        for i, (now, then) in enumerate(zip(args, before[0], strict=True)):
            if isinstance(now, np.ndarray) and not _same_bits(now, then):
                self.find(dtype, case, "inplace", f"positional argument {i} was modified")
        for name, value in kwargs.items():
            if isinstance(value, np.ndarray) and not _same_bits(value, before[1][name]):
                self.find(dtype, case, "inplace", f"argument {name!r} was modified")
        if result.error is None:
            again = _call(self.op, self.backend, args, kwargs)
            self.report.calls += 1
            if again.error is not None or not all(
                _same_bits(a, b) for a, b in zip(result.values, again.values, strict=True)
            ):
                self.find(dtype, case, "nondeterministic", "a second call gave different bits")
        elif not isinstance(result.error, InputError):
            self.find(dtype, case, "crash", _describe_error(result.error))
        return result

    def run(self, dtype: str, sample) -> None:
        op = self.op
        args = cast_floats(sample.args, dtype)
        kwargs = _cast(sample.kwargs, dtype)
        arguments = _arguments(op, args, kwargs)
        base = self.call(dtype, "the valid sample", arguments)
        if base.error is not None:
            if isinstance(base.error, InputError):
                self.find(dtype, "the valid sample", "crash", f"refused: {_describe_error(base.error)}")
            return
        if not self.finite(base):
            self.find(dtype, "the valid sample", "nonfinite", "a non-finite output or gradient")
        self.report.outcomes["computed: valid sample"] += 1
        self.layouts(dtype, arguments, base)
        self.nonfinite_entries(dtype, arguments)
        self.magnitudes(dtype, arguments, sample)
        self.integers(dtype, arguments, base)

    def layouts(self, dtype: str, arguments: dict[str, Any], base: _Call) -> None:
        for name, value in arguments.items():
            if not isinstance(value, np.ndarray):
                continue
            for layout, variant in _layouts(value):
                case = f"'{name}' {layout}"
                result = self.call(dtype, case, {**arguments, name: variant})
                if result.error is not None:
                    if isinstance(result.error, InputError):
                        self.find(dtype, case, "layout", f"refused: {_describe_error(result.error)}")
                    continue
                if not all(_same_bits(a, b) for a, b in zip(base.values, result.values, strict=True)):
                    self.find(dtype, case, "layout", "results differ from the C-contiguous call")
                self.report.outcomes["computed: layout"] += 1

    def nonfinite_entries(self, dtype: str, arguments: dict[str, Any]) -> None:
        for name in _float_inputs(self.op, arguments):
            spec = self.op.specs[name]
            for text, number in (("nan", math.nan), ("inf", math.inf), ("-inf", -math.inf)):
                value = arguments[name].copy()
                value.flat[-1] = number
                case = f"'{name}' with a {text} entry"
                result = self.call(dtype, case, {**arguments, name: value})
                if result.error is None:
                    if text not in spec.allow:
                        self.find(dtype, case, "nonfinite", "accepted (an InputError was expected)")
                    self.report.outcomes["computed: non-finite entry allowed"] += 1
                elif isinstance(result.error, InputError):
                    self.report.outcomes["refused: non-finite entry"] += 1

    def magnitudes(self, dtype: str, arguments: dict[str, Any], sample) -> None:
        for name in _float_inputs(self.op, arguments):
            for scale in SCALES:
                value = np.asarray(arguments[name].astype(np.float64) * scale).astype(dtype)
                case = f"'{name}' × {scale:g}"
                call = {**arguments, name: value}
                result = self.call(dtype, case, call)
                if result.error is not None:
                    if isinstance(result.error, InputError):
                        self.report.outcomes["refused: extreme magnitude"] += 1
                    continue
                self.report.outcomes["computed: extreme magnitude"] += 1
                if not self.finite(result):
                    self.find(dtype, case, "nonfinite", "finite input, non-finite output or gradient")
                    continue
                self.compare(dtype, case, sample, name, scale)

    def compare(self, dtype: str, case: str, sample, name: str, scale: float) -> None:
        """The suite's own comparison with the reference, on the scaled sample: within the
        allowed error its Monte-Carlo arithmetic derives, or ``wrong``."""
        from ._cases import Sample
        from ._engine import check_sample

        arguments = _arguments(self.op, sample.args, sample.kwargs)
        arguments[name] = np.asarray(np.asarray(arguments[name], dtype=np.float64) * scale)
        args, kwargs = _split(self.op, arguments)
        scaled = Sample(case, args, kwargs, dtypes=(dtype,), fd=False)
        with np.errstate(all="ignore"):
            results = check_sample(self.op, self.cases, self.backend, scaled, dtype)
        for r in results:
            if r.status in ("fail", "inaccurate"):
                self.find(dtype, case, "wrong", f"{r.check} {r.status}: {r.detail}")

    def integers(self, dtype: str, arguments: dict[str, Any], base: _Call) -> None:
        budget = 16 * (_nbytes(arguments.values()) + _nbytes(base.values)) + EXTRA_MEMORY
        for name, kind in _unbounded_integers(self.op, arguments):
            for huge in HUGE_INTEGERS:
                if kind == "array":
                    value = arguments[name].astype(np.int64)
                    value.flat[-1] = huge
                else:
                    value = huge
                case = f"'{name}' with the value 2**{int(math.log2(huge))}"
                result = self.call(dtype, case, {**arguments, name: value}, trace=True)
                if result.error is not None:
                    if isinstance(result.error, InputError):
                        self.report.outcomes["refused: huge integer"] += 1
                    continue
                self.report.outcomes["computed: huge integer"] += 1
                if result.peak > budget:
                    self.find(dtype, case, "memory", f"allocated {result.peak / 2**20:.0f} MiB")
                if not self.finite(result):
                    self.find(dtype, case, "nonfinite", "a non-finite output or gradient")


def sweep_op(op_name: str, backends: Sequence[str] | None = None, seed: int = 0) -> SweepReport:
    """Sweep one op on the given backends (default: every installed one; without a GPU,
    CuPy's code runs on NumPy inputs as ``cupy[host]``), in this process."""
    from ._runner import plan

    report = SweepReport()
    op, cases = refimpl.get(op_name), all_cases()[op_name]
    targets = plan(backends=backends, ops=[op_name]).targets
    sample = cases.random_sample(seed)
    for name, backend in targets:
        if not backend.supports(op):
            continue
        for dtype in sample.dtypes:
            _OpSweep(op, cases, name, backend, report).run(dtype, sample)
    return report


# -- isolation ------------------------------------------------------------------------------
def _init_worker(limit: int) -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    except (ImportError, ValueError, OSError):  # not on this platform: no ceiling
        pass


def _worker(op_name: str, backends: Sequence[str] | None, marks: str, timeout: float) -> SweepReport:
    import faulthandler

    Path(marks, op_name).touch()  # started: a worker that dies leaves this behind
    faulthandler.dump_traceback_later(timeout, exit=True)
    try:
        return sweep_op(op_name, backends)
    finally:
        faulthandler.cancel_dump_traceback_later()
        Path(marks, op_name).unlink(missing_ok=True)


def sweep(
    ops: Iterable[str] | None = None,
    backends: Sequence[str] | None = None,
    *,
    workers: int | None = None,
    timeout: float = OP_TIMEOUT,
    memory_limit: int = MEMORY_LIMIT,
    progress: Callable[[str], None] | None = None,
) -> SweepReport:
    """Sweep ``ops`` (default: every op with cases), each in a worker process with a memory
    ceiling and a time limit; a worker that dies is a ``crash`` finding for its op."""
    names = list(ops) if ops is not None else sorted(all_cases())
    for name in names:
        refimpl.get(name)
    report = SweepReport()
    start = time.perf_counter()
    pending = list(names)
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as marks:
        while pending:
            with ProcessPoolExecutor(
                max_workers=workers or min(2, os.cpu_count() or 1),
                mp_context=context,
                initializer=_init_worker,
                initargs=(memory_limit,),
            ) as pool:
                futures = {name: pool.submit(_worker, name, backends, marks, timeout) for name in pending}
                done: list[str] = []
                broken = False
                for name, future in futures.items():
                    try:
                        report.merge(future.result())
                        done.append(name)
                        if progress:
                            progress(name)
                    except BrokenProcessPool:
                        broken = True
                        break
            pending = [n for n in pending if n not in done]
            if broken:
                dead = [p.name for p in Path(marks).iterdir()]
                for name in dead:
                    why = "the worker died (time-out, memory, signal)"
                    report.findings.append(Finding(name, "-", "-", "its sweep", "crash", why))
                    Path(marks, name).unlink()
                pending = [n for n in pending if n not in dead]
    report.seconds = time.perf_counter() - start
    return report


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m refimpl_conformance.adversarial")
    parser.add_argument("--op", action="append")
    parser.add_argument("--backend", action="append")
    parser.add_argument("--in-process", action="store_true", help="no worker processes")
    args = parser.parse_args(argv)
    if args.in_process:
        report = SweepReport()
        for name in args.op or sorted(all_cases()):
            report.merge(sweep_op(name, args.backend))
    else:
        report = sweep(args.op, args.backend, progress=lambda n: print(".", end="", flush=True))
        print()
    for finding in report.findings:
        print(finding)
    print(f"{report.calls} calls; findings: {report.counts()}; outcomes: {dict(report.outcomes)}")
    return 1 if report.findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
