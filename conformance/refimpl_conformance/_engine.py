"""The checks: reference against finite differences, any backend against the reference.

Every check returns :class:`Result` records (never raises on a failed comparison), each
with the numbers behind the verdict and a command that reproduces it.
"""

from __future__ import annotations

import re
import shlex
import traceback
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

import refimpl
from refimpl import Backend, InputError, Op

from ._cases import ErrorCase, OpCases, Sample, Tolerance

__all__ = [
    "Result",
    "check_errors",
    "check_finite_differences",
    "check_sample",
    "compare",
    "repro_command",
]

FLOAT_DTYPES = ("float64", "float32")


@dataclass
class Result:
    """The verdict of one check on one (op, backend, dtype, sample)."""

    op: str
    backend: str
    dtype: str
    sample: str
    check: str  # forward | vjp | fd-directional | fd-jacobian | finite | error | self-check
    status: str  # pass | fail | skip
    max_abs: float = 0.0
    max_rel: float = 0.0
    detail: str = ""
    repro: str = ""

    @property
    def passed(self) -> bool:
        return self.status != "fail"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def repro_command(op: str, backend: str, dtype: str, sample: Sample | str) -> str:
    """The `refimpl check` command that reruns one sample and prints its arrays."""
    if isinstance(sample, Sample) and sample.seed is not None:
        which = f"--seed {sample.seed}"
        if sample.dims:
            which += " --dims " + ",".join(f"{k}={v}" for k, v in sample.dims.items())
    else:
        name = sample.name if isinstance(sample, Sample) else sample
        which = f"--sample {shlex.quote(name)}"
    if backend.startswith("impl:"):  # a user's function: impl:FRAMEWORK:PKG.MOD:FN
        _, framework, spec = backend.split(":", 2)
        target = f"--impl {shlex.quote(spec)} --framework {framework}"
    else:
        target = f"--backend {shlex.quote(backend)}"
    return f"refimpl check --op {op} {target} --dtype {dtype} {which} --show"


# -- array helpers --------------------------------------------------------------------
def _is_float_array(value: Any) -> bool:
    """A float NumPy array (0-d included). Scalars are hyperparameters and stay as given:
    a sample generator wraps a drawn array input with ``np.asarray``."""
    return isinstance(value, np.ndarray) and value.dtype.kind == "f"


def cast_floats(values: Iterable[Any], dtype: str) -> tuple[Any, ...]:
    """Cast the float arrays among ``values`` to ``dtype``; leave everything else alone."""
    return tuple(v.astype(dtype) if _is_float_array(v) else v for v in values)


def _cast_kwargs(kwargs: dict[str, Any], dtype: str) -> dict[str, Any]:
    return {k: (v.astype(dtype) if _is_float_array(v) else v) for k, v in kwargs.items()}


def _as_tuple(op: Op, outputs: Any) -> tuple[Any, ...]:
    return (outputs,) if len(op.outputs) == 1 else tuple(outputs)


def _sample_rng(sample: Sample, salt: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(f"{sample.name}|{salt}".encode()))


def compare(actual: np.ndarray, expected: np.ndarray, tol: Tolerance) -> tuple[bool, float, float, str]:
    """Elementwise comparison; returns (ok, max_abs, max_rel, why-not)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        return False, np.inf, np.inf, f"shape {actual.shape} != expected {expected.shape}"
    if expected.dtype.kind not in "fc":
        same = np.array_equal(actual, expected)
        return same, float(not same), float(not same), "" if same else "values differ (exact)"
    if actual.size == 0:
        return True, 0.0, 0.0, ""
    actual64 = actual.astype(np.float64)
    expected64 = expected.astype(np.float64)
    both_nan = np.isnan(actual64) & np.isnan(expected64)
    same_inf = np.isinf(expected64) & (actual64 == expected64)
    with np.errstate(invalid="ignore"):  # inf - inf where both are the same infinity
        diff = np.where(both_nan | same_inf, 0.0, np.abs(actual64 - expected64))
    diff = np.where(np.isnan(diff), np.inf, diff)
    finite_expected = np.where(np.isfinite(expected64), np.abs(expected64), 0.0)
    scale = max(1.0, float(finite_expected.max()))
    allowed = tol.atol * scale + tol.rtol * finite_expected
    max_abs = float(diff.max())
    rel = diff / np.maximum(finite_expected, np.finfo(np.float64).tiny)
    max_rel = float(rel.max())
    ok = bool(np.all(diff <= allowed))
    why = ""
    if not ok:
        worst = np.unravel_index(int(np.argmax(diff - allowed)), diff.shape)
        why = (
            f"worst at index {tuple(int(i) for i in worst)}: got {actual64[worst]!r}, "
            f"expected {expected64[worst]!r} (allowed {allowed[worst]:.3g})"
        )
    return ok, max_abs, max_rel, why


# -- reference and backend evaluation --------------------------------------------------
def _run(op: Op, backend: Backend, args: Sequence[Any], kwargs: dict[str, Any], cotangents=None):
    """Forward, and the VJP when cotangents are given, through ``backend``; NumPy arrays out."""
    to_device = backend.asarray
    device_args = [to_device(a) if isinstance(a, np.ndarray) else a for a in args]
    device_kwargs = {k: to_device(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    if cotangents is None or not op.is_differentiable:
        outputs = backend.get(op)(*device_args, **device_kwargs)
        return tuple(backend.to_numpy(o) for o in _as_tuple(op, outputs)), None
    outputs, pullback = refimpl.vjp(op, *device_args, backend=backend, **device_kwargs)
    outs = _as_tuple(op, outputs)
    # a cotangent takes its output's dtype: an output of the wrong dtype is reported by the
    # forward check, and its VJP is still compared
    device_cotangents = tuple(
        to_device(c.astype(o.dtype, copy=False)) if c is not None else None
        for c, o in zip(cotangents, outs, strict=True)
    )
    grads = pullback(device_cotangents[0] if len(outs) == 1 else device_cotangents)
    return tuple(backend.to_numpy(o) for o in outs), tuple(backend.to_numpy(g) for g in grads)


def _cotangents_like(outputs: Sequence[np.ndarray], rng: np.random.Generator) -> list:
    cotangents = []
    for out in outputs:
        out = np.asarray(out)
        if out.dtype.kind == "f":
            cotangents.append(rng.standard_normal(out.shape).astype(np.float64))
        else:
            cotangents.append(None)
    return cotangents


def check_sample(op: Op, cases: OpCases, backend: Backend, sample: Sample, dtype: str) -> list[Result]:
    """Compare ``backend`` with the reference (computed in float64) on one sample."""
    base = dict(op=op.name, backend=backend.name, dtype=dtype, sample=sample.name)
    repro = repro_command(op.name, backend.name, dtype, sample)
    if dtype not in sample.dtypes:
        return [Result(**base, check="forward", status="skip", detail=f"sample not run in {dtype}")]
    tol = sample.tolerances.get(dtype) or cases.tolerance(dtype)
    args = cast_floats(sample.args, dtype)
    kwargs = _cast_kwargs(sample.kwargs, dtype)
    # the reference sees exactly the rounded inputs the backend sees, in float64
    ref_args = cast_floats(args, "float64")
    ref_kwargs = _cast_kwargs(kwargs, "float64")
    reference = refimpl.backend("numpy")
    ref_outputs, _ = _run(op, reference, ref_args, ref_kwargs)
    cotangents64 = _cotangents_like(ref_outputs, _sample_rng(sample, "cotangent"))
    if op.is_differentiable:
        _, ref_grads = _run(op, reference, ref_args, ref_kwargs, cotangents64)
    else:
        ref_grads = None
    cotangents = [c.astype(dtype) if c is not None else None for c in cotangents64]
    try:
        outputs, grads = _run(op, backend, args, kwargs, cotangents)
    except Exception as error:  # report, don't crash the suite
        detail = "".join(traceback.format_exception_only(type(error), error)).strip()
        return [Result(**base, check="forward", status="fail", detail=f"raised {detail}", repro=repro)]

    if cases.compare_as is not None:  # with every argument bound, defaults filled in
        compared = cases.compare_as(tuple(outputs), dict(op.bind(args, kwargs).arguments))
        expected = cases.compare_as(tuple(ref_outputs), dict(op.bind(ref_args, ref_kwargs).arguments))
    else:
        compared = dict(zip(op.outputs, outputs, strict=True))
        expected = dict(zip(op.outputs, ref_outputs, strict=True))
    float_outputs = [
        (f"output '{name}'", out)
        for name, out, ref in zip(op.outputs, outputs, ref_outputs, strict=True)
        if np.asarray(ref).dtype.kind == "f"
    ]
    results = [
        _verdict(
            base,
            "forward",
            repro,
            dtype,
            tol,
            float_outputs,
            [(f"output '{name}'", out, expected[name]) for name, out in compared.items()],
        )
    ]
    if op.is_differentiable:
        named = [(f"cotangent of '{n}'", g) for n, g in zip(op.differentiable, grads, strict=True)]
        pairs = [(label, g, r) for (label, g), r in zip(named, ref_grads, strict=True)]
        results.append(_verdict(base, "vjp", repro, dtype, tol, named, pairs))
    return results


def _verdict(base, check, repro, dtype, tol, typed, pairs) -> Result:
    """One Result for a check: every array in ``typed`` must have ``dtype``, and every
    (label, actual, expected) in ``pairs`` must agree within ``tol``."""
    ok, worst_abs, worst_rel, why = True, 0.0, 0.0, []
    for label, value in typed:
        if np.asarray(value).dtype != np.dtype(dtype):
            ok = False
            why.append(f"{label} has dtype {np.asarray(value).dtype}, expected {dtype}")
    for label, actual, expected in pairs:
        same, max_abs, max_rel, reason = compare(actual, np.asarray(expected), tol)
        ok &= same
        worst_abs, worst_rel = max(worst_abs, max_abs), max(worst_rel, max_rel)
        if not same:
            why.append(f"{label}: {reason}")
    return Result(
        **base,
        check=check,
        status="pass" if ok else "fail",
        max_abs=worst_abs,
        max_rel=worst_rel,
        detail="; ".join(why),
        repro="" if ok else repro,
    )


# -- finite differences -----------------------------------------------------------------
def _forward64(op: Op, bound, name: str | None = None, value: np.ndarray | None = None):
    arguments = dict(bound.arguments)
    if name is not None:
        arguments[name] = value
    rebound = op.signature.bind(**arguments)
    outputs, _ = op.forward(*rebound.args, **rebound.kwargs)
    return [np.asarray(o, dtype=np.float64) for o in _as_tuple(op, outputs)]


def _pullback64(op: Op, bound, cotangents: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    outputs, residuals = op.forward(*bound.args, **bound.kwargs)
    outs = _as_tuple(op, outputs)
    given = [
        c if c is not None else np.zeros_like(np.asarray(o)) for c, o in zip(cotangents, outs, strict=True)
    ]
    return tuple(op.backward(residuals, given[0] if len(outs) == 1 else tuple(given)))


def _steps(sample: Sample, x: np.ndarray) -> np.ndarray:
    """Central-difference step per element: ``fd_step·max(1, |x|)``."""
    return sample.fd_step * np.maximum(1.0, np.abs(x))


def check_finite_differences(
    op: Op,
    sample: Sample,
    *,
    jacobian_limit: int = 64,
) -> list[Result]:
    """The reference backward against central differences of the reference forward, float64.

    Directional (dot-product) test: for random ``u`` (inputs) and ``v`` (outputs),
    ``⟨v, (f(x + hu) - f(x - hu))/2h⟩`` must equal ``⟨u, J^T v⟩``. When the differentiable
    inputs and the outputs have at most ``jacobian_limit`` elements each, the full Jacobian
    is compared entry by entry as well. Tolerance: ``sample.fd_rtol`` (default 1e-6).
    """
    base = dict(op=op.name, backend="numpy", dtype="float64", sample=sample.name)
    repro = repro_command(op.name, "numpy", "float64", sample)
    if not op.is_differentiable or "float64" not in sample.dtypes:
        return []
    args = cast_floats(sample.args, "float64")
    kwargs = _cast_kwargs(sample.kwargs, "float64")
    bound = op.bind(args, kwargs)
    outputs = _forward64(op, bound)
    float_outputs = [i for i, o in enumerate(outputs) if o.dtype.kind == "f"]
    rng = _sample_rng(sample, "fd")
    v = [rng.standard_normal(o.shape) if i in float_outputs else None for i, o in enumerate(outputs)]
    grads = _pullback64(op, bound, v)

    # finite inputs in the domain give finite outputs and gradients (also where fd=False)
    finite = all(np.all(np.isfinite(o)) for o in outputs) and all(
        np.all(np.isfinite(np.asarray(g))) for g in grads
    )
    results = [
        Result(
            **base,
            check="finite",
            status="pass" if finite else "fail",
            detail="" if finite else "non-finite output or gradient",
            repro="" if finite else repro,
        )
    ]
    if not sample.fd:
        return results
    rtol = sample.fd_rtol

    # directional test: perturb along w = h ⊙ u, with a step per element
    directional = 0.0
    analytic = 0.0
    scale = 0.0
    for name, grad in zip(op.differentiable, grads, strict=True):
        x = bound.arguments[name]
        w = _steps(sample, x) * rng.standard_normal(x.shape)
        plus = _forward64(op, bound, name, x + w)
        minus = _forward64(op, bound, name, x - w)
        for i in float_outputs:
            directional += float(np.sum(v[i] * (plus[i] - minus[i]))) / 2
        analytic += float(np.sum(w * grad))
        scale += float(np.sum(np.abs(w * grad)))
    gap = abs(directional - analytic)
    # the differences of f carry rounding ~ eps·|f| (taken as at least eps): the floor
    rounding = 1e-14 * sum(
        float(np.sum(np.abs(v[i]) * np.maximum(1.0, np.abs(outputs[i])))) for i in float_outputs
    )
    allowed = rtol * max(scale, abs(directional)) + rounding
    ok = gap <= allowed and np.isfinite(analytic)
    results.append(
        Result(
            **base,
            check="fd-directional",
            status="pass" if ok else "fail",
            max_abs=gap,
            max_rel=gap / max(scale, 1e-300),
            detail="" if ok else f"⟨v, J·w⟩ by differences = {directional!r}, ⟨w, Jᵀv⟩ = {analytic!r}",
            repro="" if ok else repro,
        )
    )

    # full Jacobian on small inputs
    n_in = sum(np.asarray(bound.arguments[n]).size for n in op.differentiable)
    n_out = sum(outputs[i].size for i in float_outputs)
    if 0 < n_in <= jacobian_limit and 0 < n_out <= jacobian_limit:
        by_differences = np.zeros((n_out, n_in))
        column = 0
        for name in op.differentiable:
            x = bound.arguments[name]
            steps = _steps(sample, x).ravel()
            for k in range(x.size):
                e = np.zeros(x.size)
                e[k] = steps[k]
                plus = _forward64(op, bound, name, x + e.reshape(x.shape))
                minus = _forward64(op, bound, name, x - e.reshape(x.shape))
                by_differences[:, column] = np.concatenate(
                    [((plus[i] - minus[i]) / (2 * steps[k])).ravel() for i in float_outputs]
                )
                column += 1
        by_pullback = np.zeros((n_out, n_in))
        row = 0
        for i in float_outputs:
            for k in range(outputs[i].size):
                basis = [np.zeros(o.shape) if j in float_outputs else None for j, o in enumerate(outputs)]
                basis[i].flat[k] = 1.0
                rows = _pullback64(op, bound, basis)
                by_pullback[row] = np.concatenate([np.asarray(g, dtype=np.float64).ravel() for g in rows])
                row += 1
        diff = np.abs(by_differences - by_pullback)
        allowed = rtol * max(1.0, float(np.abs(by_pullback).max())) + 1e-9
        worst = float(diff.max())
        ok = worst <= allowed
        detail = ""
        if not ok:
            r, c = np.unravel_index(int(np.argmax(diff)), diff.shape)
            detail = (
                f"Jacobian entry (output {r}, input {c}): differences {by_differences[r, c]!r}, "
                f"backward {by_pullback[r, c]!r}"
            )
        results.append(
            Result(
                **base,
                check="fd-jacobian",
                status="pass" if ok else "fail",
                max_abs=worst,
                detail=detail,
                repro="" if ok else repro,
            )
        )

    return results


# -- error cases ----------------------------------------------------------------------
def check_errors(op: Op, backend: Backend, errors: Sequence[ErrorCase]) -> list[Result]:
    """Each error case must raise InputError (with a matching message) through ``backend``."""
    results = []
    call: Callable[..., Any] = backend.get(op)
    for case in errors:
        base = dict(op=op.name, backend=backend.name, dtype="-", sample=case.name, check="error")
        args = [backend.asarray(a) if isinstance(a, np.ndarray) else a for a in case.args]
        kwargs = {k: backend.asarray(v) if isinstance(v, np.ndarray) else v for k, v in case.kwargs.items()}
        try:
            call(*args, **kwargs)
        except InputError as error:
            message = str(error)
            if not message.startswith(f"{op.name}:") or (case.match and not re.search(case.match, message)):
                results.append(
                    Result(
                        **base,
                        status="fail",
                        detail=f"message {message!r} does not match {case.match!r}",
                    )
                )
            else:
                results.append(Result(**base, status="pass", detail=message))
            continue
        except Exception as error:  # a crash is not a clear error
            results.append(
                Result(
                    **base,
                    status="fail",
                    detail=f"raised {type(error).__name__}: {error} instead of InputError",
                )
            )
            continue
        results.append(Result(**base, status="fail", detail="accepted input that must be refused"))
    return results
