"""The checks: reference against finite differences, any backend against the reference.

Every check returns :class:`Result` records (never raises on a failed comparison), each
with the numbers behind the verdict and a command that reproduces it.
"""

from __future__ import annotations

import re
import shlex
import traceback
import zlib
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

import refimpl
from refimpl import Backend, InputError, Op

from . import _accuracy
from ._cases import ErrorCase, OpCases, Sample, Tolerance

__all__ = [
    "Comparison",
    "Expected",
    "Result",
    "check_errors",
    "check_finite_differences",
    "check_sample",
    "compare",
    "expected_values",
    "repro_command",
]

FLOAT_DTYPES = ("float64", "float32")


@dataclass
class Result:
    """The verdict of one check on one (op, backend, dtype, sample).

    ``status`` is ``pass``, ``fail`` (a wrong result: the formula, a constant, a sign),
    ``inaccurate`` (the formula is right — the same code agrees in higher precision — but it
    loses digits on this sample) or ``skip`` (``detail`` says why). ``ratio`` is the worst
    error over the allowed error (pass ≤ 1); ``max_abs`` and ``max_rel`` are the worst errors.
    """

    op: str
    backend: str
    dtype: str
    sample: str
    check: str  # forward | vjp | fd-directional | fd-jacobian | stated-vjp | finite | error
    #            | self-check | signature | defaults | example | known
    status: str  # pass | fail | inaccurate | skip
    max_abs: float = 0.0
    max_rel: float = 0.0
    detail: str = ""
    repro: str = ""
    ratio: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status in ("pass", "skip")

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


def _cast(value: Any, dtype: str) -> Any:
    if _is_float_array(value):
        return value.astype(dtype)
    if isinstance(value, list):  # a list of arrays (FloatArrays): each item
        return [_cast(v, dtype) for v in value]
    return value


def cast_floats(values: Iterable[Any], dtype: str) -> tuple[Any, ...]:
    """Cast the float arrays among ``values`` (and in lists of arrays) to ``dtype``; leave
    everything else alone."""
    return tuple(_cast(v, dtype) for v in values)


def _cast_kwargs(kwargs: dict[str, Any], dtype: str) -> dict[str, Any]:
    return {k: _cast(v, dtype) for k, v in kwargs.items()}


def _as_tuple(op: Op, outputs: Any) -> tuple[Any, ...]:
    return (outputs,) if len(op.outputs) == 1 else tuple(outputs)


def _sample_rng(sample: Sample, salt: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(f"{sample.name}|{salt}".encode()))


@dataclass
class Comparison:
    """One array against its expected value: the verdict and the numbers behind it."""

    ok: bool
    max_abs: float
    max_rel: float
    ratio: float  # worst |error| / allowed (0 when nothing differs, inf where 0 was allowed)
    why: str = ""
    worst: tuple[int, ...] | None = None  # index of the worst element (relative to allowed)
    error: np.ndarray | None = None  # |actual − expected| per element


def allowed_by(tol: Tolerance, expected: np.ndarray) -> np.ndarray:
    """A fixed tolerance's allowed error: ``atol·max(1, max|expected|) + rtol·|expected|``."""
    expected = np.asarray(expected, dtype=np.float64)
    finite = np.where(np.isfinite(expected), np.abs(expected), 0.0)
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    return tol.atol * scale + tol.rtol * finite


def compare(actual: Any, expected: Any, allowed: Tolerance | np.ndarray) -> Comparison:
    """Elementwise ``|actual − expected| <= allowed`` (an array of allowed errors, or a
    :class:`Tolerance`); non-float values must be equal, NaN matches NaN, inf its own sign."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        return Comparison(False, np.inf, np.inf, np.inf, f"shape {actual.shape} != expected {expected.shape}")
    if expected.dtype.kind not in "fc":
        same = bool(np.array_equal(actual, expected))
        why = ""
        if not same:
            differ = np.argwhere(np.asarray(actual != expected).reshape(expected.shape))
            first = tuple(int(i) for i in differ[0]) if len(differ) else ()
            why = f"values differ (compared exactly) at {len(differ)} index(es), first {first}"
            if first or expected.ndim == 0:
                why += f": got {actual[first]!r}, expected {expected[first]!r}"
        return Comparison(same, float(not same), float(not same), 0.0 if same else np.inf, why)
    if actual.size == 0:
        return Comparison(True, 0.0, 0.0, 0.0)
    if isinstance(allowed, Tolerance):
        allowed = allowed_by(allowed, expected)
    actual64 = actual.astype(np.float64)
    expected64 = expected.astype(np.float64)
    both_nan = np.isnan(actual64) & np.isnan(expected64)
    same_inf = np.isinf(expected64) & (actual64 == expected64)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf where both are the same infinity
        diff = np.where(both_nan | same_inf, 0.0, np.abs(actual64 - expected64))
    diff = np.where(np.isnan(diff), np.inf, diff)
    finite_expected = np.where(np.isfinite(expected64), np.abs(expected64), 0.0)
    allowed = np.broadcast_to(np.asarray(allowed, dtype=np.float64), diff.shape)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratios = np.where(diff == 0, 0.0, diff / allowed)
        rel = diff / np.maximum(finite_expected, np.finfo(np.float64).tiny)
    ratios = np.where(np.isnan(ratios), np.inf, ratios)
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(ratios)), diff.shape))
    ratio = float(ratios[worst])
    ok = bool(np.all(diff <= allowed))
    why = ""
    if not ok:
        why = (
            f"worst at index {worst}: got {actual64[worst]!r}, expected {expected64[worst]!r} "
            f"(error {diff[worst]:.3g}, allowed {allowed[worst]:.3g}: {ratio:.3g}x over)"
        )
    return Comparison(ok, float(diff.max()), float(rel.max()), ratio, why, worst, diff)


# -- reference and backend evaluation --------------------------------------------------
def _run(
    op: Op,
    backend: Backend,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    cotangents=None,
    *,
    check_results: bool = False,
):
    """Forward, and the VJP when cotangents are given, through ``backend``; NumPy arrays out.

    The op layer's check of results is off unless asked for: a non-finite output of an
    implementation under test is compared with the reference, not refused."""
    with refimpl.set_check_results(check_results):
        return _run_checked(op, backend, args, kwargs, cotangents)


def _run_checked(op: Op, backend: Backend, args: Sequence[Any], kwargs: dict[str, Any], cotangents):
    def to_device(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return backend.asarray(value)
        return [to_device(v) for v in value] if isinstance(value, list) else value

    device_args = [to_device(a) for a in args]
    device_kwargs = {k: to_device(v) for k, v in kwargs.items()}
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


@dataclass
class Expected:
    """What a correct implementation computes on one sample in one dtype, and how closely.

    ``args``/``kwargs``/``cotangents`` are the inputs in ``dtype`` (what the implementation
    gets); ``outputs`` and ``grads`` the float64 reference on exactly those (rounded) inputs,
    keyed by label (``output 'y'``, ``cotangent of 'x'``), with the allowed error per element
    in ``allowed`` (see :mod:`refimpl_conformance._accuracy`).
    """

    dtype: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    cotangents: list[np.ndarray | None]
    outputs: dict[str, np.ndarray]
    grads: dict[str, np.ndarray]
    allowed: dict[str, np.ndarray]
    float_outputs: tuple[str, ...]  # the op's outputs that are float arrays (their dtype is checked)


def _reference_evaluator(op: Op, cases: OpCases, arguments: dict[str, Any], cotangents):
    """``evaluate(arguments) -> (compared outputs, cotangents)`` through the raw reference."""

    def evaluate(given: dict[str, Any]):
        bound = op.signature.bind(**given)
        outputs, residuals = op.forward(*bound.args, **bound.kwargs)
        outs = _as_tuple(op, outputs)
        if cases.compare_as is not None:
            compared = list(cases.compare_as(tuple(outs), arguments).values())
        else:
            compared = list(outs)
        grads: list[Any] = []
        if op.is_differentiable:
            # the cotangents are inputs like the others (moved by a rounding in perturbed runs)
            given_cotangents = [
                _accuracy.rounded_input(c) if c is not None else np.zeros(np.shape(o))
                for c, o in zip(cotangents, outs, strict=True)
            ]
            grads = list(
                op.backward(residuals, given_cotangents[0] if len(outs) == 1 else tuple(given_cotangents))
            )
        return compared, grads

    return evaluate


def _tolerance_override(cases: OpCases, sample: Sample, dtype: str) -> Tolerance | None:
    return sample.tolerances.get(dtype) or cases.tolerances.get(dtype)


def expected_values(
    op: Op,
    cases: OpCases,
    sample: Sample,
    dtype: str,
    *,
    args: Sequence[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    cotangents: Sequence[np.ndarray | None] | None = None,
    tolerance_dtype: str | None = None,
) -> Expected:
    """The reference's outputs and VJP on ``sample`` in ``dtype``, with the allowed errors.

    The reference runs in float64 on the inputs rounded to ``dtype``, so it sees exactly
    what the implementation sees; the allowed error per element is the rounding spread of
    that computation at ``dtype``'s precision (:func:`._accuracy.rounding_errors`) with its
    margin, widened by an explicit override of the op or the sample where one is declared.
    ``args``/``kwargs``/``cotangents``/``tolerance_dtype`` override what is drawn (used to
    rerun a float32 sample's rounded inputs in float64). Cached across backends.
    """
    tolerance_dtype = tolerance_dtype or dtype
    if args is None:
        args = cast_floats(sample.args, dtype)
        kwargs = _cast_kwargs(sample.kwargs, dtype)
    kwargs = dict(kwargs or {})
    ref_args = cast_floats(args, "float64")
    ref_kwargs = _cast_kwargs(kwargs, "float64")
    # the signature too: an argument the sample leaves out takes the op's current default
    key = _accuracy.CACHE.key(
        op.name, str(op.signature), sample.name, dtype, tolerance_dtype, ref_args, ref_kwargs, cotangents
    )
    cached = _accuracy.CACHE.get(key)
    if cached is not None:
        return cached
    bound = op.bind(ref_args, ref_kwargs)
    arguments = dict(bound.arguments)
    raw_outputs, _ = op.forward(*bound.args, **bound.kwargs)
    raw_outputs = _as_tuple(op, raw_outputs)
    if cotangents is None:
        drawn = _cotangents_like(raw_outputs, _sample_rng(sample, "cotangent"))
        cotangents = [c.astype(dtype) if c is not None else None for c in drawn]
    cotangents = list(cotangents)
    cotangents64 = [c.astype(np.float64) if c is not None else None for c in cotangents]
    evaluate = _reference_evaluator(op, cases, arguments, cotangents64)
    clean_outputs, clean_grads = evaluate(arguments)
    clean_outputs = [np.asarray(o) for o in clean_outputs]
    clean_grads = [np.asarray(g, dtype=np.float64) for g in clean_grads]
    spreads = _accuracy.rounding_errors(
        evaluate,
        arguments,
        (clean_outputs, clean_grads),
        tolerance_dtype,
        moved=op.differentiable,
        seed=zlib.crc32(f"{op.name}|{sample.name}".encode()),
    )
    override = _tolerance_override(cases, sample, tolerance_dtype)
    names = list(cases.compare_as(raw_outputs, arguments)) if cases.compare_as else list(op.outputs)
    outputs = {f"output '{n}'": o for n, o in zip(names, clean_outputs, strict=True)}
    grads = {f"cotangent of '{n}'": g for n, g in zip(op.differentiable, clean_grads, strict=True)}
    allowed = {}
    for (label, value), spread in zip(
        [*outputs.items(), *grads.items()], [*spreads[0], *spreads[1]], strict=True
    ):
        limit = _accuracy.allowed_error(value, spread, tolerance_dtype) if value.dtype.kind == "f" else None
        if limit is not None and override is not None:
            limit = np.maximum(limit, allowed_by(override, value))
        allowed[label] = limit
    float_outputs = tuple(
        f"output '{n}'"
        for n, o in zip(op.outputs, raw_outputs, strict=True)
        if np.asarray(o).dtype.kind == "f"
    )
    expected = Expected(dtype, tuple(args), kwargs, cotangents, outputs, grads, allowed, float_outputs)
    _accuracy.CACHE.put(key, expected)
    return expected


def check_sample(
    op: Op,
    cases: OpCases,
    backend: Backend,
    sample: Sample,
    dtype: str,
    *,
    no_grad: Collection[str] = (),
    vjp: bool = True,
) -> list[Result]:
    """Compare ``backend`` with the reference (computed in float64) on one sample.

    Outputs and VJPs must agree within the allowed error of a correct ``dtype``
    implementation on this sample (:func:`expected_values`). A float32 result that does not,
    while the same implementation run in float64 on the same inputs does, is ``inaccurate``
    rather than wrong; so is a float64 result whose error comes from its own sensitivity to
    last-bit changes of the inputs. ``no_grad`` names differentiable inputs the
    implementation treats as constants: their cotangents are not compared; ``vjp=False``
    checks the forward alone (an implementation without a backward).
    """
    base = dict(op=op.name, backend=backend.name, dtype=dtype, sample=sample.name)
    repro = repro_command(op.name, backend.name, dtype, sample)
    if dtype not in sample.dtypes:
        return [
            Result(
                **base,
                check="forward",
                status="skip",
                detail=f"sample not run in {dtype} ({_why_not(sample)})",
            )
        ]
    expected = expected_values(op, cases, sample, dtype)
    try:
        actual = _evaluate(op, cases, backend, expected, vjp)
    except Exception as error:  # report, don't crash the suite
        detail = "".join(traceback.format_exception_only(type(error), error)).strip()
        return [Result(**base, check="forward", status="fail", detail=f"raised {detail}", repro=repro)]
    results = _verdicts(op, base, repro, expected, actual, no_grad, backend, vjp)
    if any(r.status == "fail" for r in results):
        results = _classify(op, cases, backend, sample, expected, actual, results, no_grad, vjp)
    return results


def _why_not(sample: Sample) -> str:
    return sample.comment or "the sample's inputs do not exist in that dtype"


def _evaluate(op: Op, cases: OpCases, backend: Backend, expected: Expected, vjp: bool = True):
    """The backend's (typed outputs, compared outputs, grads) on ``expected``'s inputs."""
    cotangents = expected.cotangents if vjp else None
    outputs, grads = _run(op, backend, expected.args, expected.kwargs, cotangents)
    if cases.compare_as is not None:  # with every argument bound, defaults filled in
        compared = cases.compare_as(tuple(outputs), dict(op.bind(expected.args, expected.kwargs).arguments))
    else:
        compared = dict(zip(op.outputs, outputs, strict=True))
    typed = {f"output '{n}'": o for n, o in zip(op.outputs, outputs, strict=True)}
    compared = {f"output '{n}'": o for n, o in compared.items()}
    named_grads = {}
    if op.is_differentiable and grads is not None:
        named_grads = {f"cotangent of '{n}'": g for n, g in zip(op.differentiable, grads, strict=True)}
    return typed, compared, named_grads


def _verdicts(op, base, repro, expected: Expected, actual, no_grad, backend, vjp=True) -> list[Result]:
    typed, compared, grads = actual
    results = [
        _verdict(
            base,
            "forward",
            repro,
            expected.dtype,
            [(label, typed[label]) for label in expected.float_outputs],
            [
                (label, compared[label], expected.outputs[label], expected.allowed[label])
                for label in compared
            ],
        )
    ]
    if op.is_differentiable and not vjp:
        results.append(Result(**base, check="vjp", status="skip", detail="forward only (declared)"))
    elif op.is_differentiable:
        skipped = {f"cotangent of '{n}'" for n in no_grad}
        pairs = [
            (label, value, expected.grads[label], expected.allowed[label])
            for label, value in grads.items()
            if label not in skipped
        ]
        typed_grads = [(label, value) for label, value in grads.items() if label not in skipped]
        if pairs:
            result = _verdict(base, "vjp", repro, expected.dtype, typed_grads, pairs)
            hint = getattr(backend, "hint", None)
            if result.status == "fail" and hint is not None:
                result.detail += hint([label for label, *_ in pairs if label in result.detail])
            results.append(result)
        else:
            results.append(
                Result(
                    **base, check="vjp", status="skip", detail="every differentiable input declared no_grad"
                )
            )
    return results


def _verdict(base, check, repro, dtype, typed, pairs) -> Result:
    """One Result for a check: every array in ``typed`` must have ``dtype``, and every
    (label, actual, expected, allowed) in ``pairs`` must agree within the allowed error."""
    ok, worst_abs, worst_rel, worst_ratio, why = True, 0.0, 0.0, 0.0, []
    for label, value in typed:
        if np.asarray(value).dtype != np.dtype(dtype):
            ok = False
            why.append(f"{label} has dtype {np.asarray(value).dtype}, expected {dtype}")
    for label, actual, expected, allowed in pairs:
        found = compare(actual, np.asarray(expected), allowed if allowed is not None else 0.0)
        ok &= found.ok
        worst_abs, worst_rel = max(worst_abs, found.max_abs), max(worst_rel, found.max_rel)
        worst_ratio = max(worst_ratio, found.ratio)
        if not found.ok:
            why.append(f"{label}: {found.why}")
    return Result(
        **base,
        check=check,
        status="pass" if ok else "fail",
        max_abs=worst_abs,
        max_rel=worst_rel,
        detail="; ".join(why),
        repro="" if ok else repro,
        ratio=worst_ratio,
    )


# -- wrong or inaccurate? ----------------------------------------------------------------
#: A failure is rounding, not formula, when the same code in the other precision errs by at
#: least this factor less (float32 against float64: ideally 2²⁹ ≈ 5e8).
PRECISION_RATIO = 1e3


def _classify(op, cases, backend, sample, expected: Expected, actual, results, no_grad, vjp) -> list[Result]:
    """Turn a failure into ``inaccurate`` when its error comes from rounding, not the formula.

    A wrong formula (a sign, a constant, a missing term) errs by the same amount in float32
    and float64; rounding errors, however amplified, shrink with the unit roundoff. So the
    implementation runs again in the other precision: a float32 failure that agrees in
    float64 on the same rounded inputs (or errs at least ``PRECISION_RATIO`` times less),
    or a float64 failure whose error grows that much in float32, is ``inaccurate``. A
    float64-only sample (inputs that do not exist in float32) gets a perturbation test
    instead: an unstable formula's result moves with last-bit changes of its inputs by as
    much as its error, where the reference's barely moves.
    """
    for result in results:
        if result.status != "fail" or "has dtype" in result.detail:
            continue
        prefix = "output '" if result.check == "forward" else "cotangent of '"
        labels = {label for label in expected.allowed if label.startswith(prefix)}
        if any(not np.all(np.isfinite(e)) for e in _errors(expected, actual, labels).values()):
            continue  # a NaN or an overflow where the reference is finite is never just rounding
        try:
            if expected.dtype != "float64":
                verdict = _higher_precision_agrees(
                    op, cases, backend, sample, expected, actual, no_grad, vjp, result.check, labels
                )
            elif "float32" in sample.dtypes:
                verdict = _lower_precision_grows(op, cases, backend, sample, expected, actual, vjp, labels)
            else:
                verdict = _unstable(op, cases, backend, sample, expected, actual, vjp, labels)
        except Exception:  # the implementation cannot run in the other precision: it stays a failure
            continue
        if verdict is not None:
            worst = _worst_excess(expected, _errors(expected, actual, labels))
            where = ""
            if worst is not None:
                label, index, error = worst
                value = abs(float({**expected.outputs, **expected.grads}[label][index]))
                allowed = float(expected.allowed[label][index])
                scale = max(value, 1e-300)
                where = (
                    f": relative error {error / scale:.2g} at {label}{list(index)} "
                    f"(allowed {allowed / scale:.2g})"
                )
            near = f" near {', '.join(sample.flags)}" if sample.flags else ""
            result.status = "inaccurate"
            result.detail = (
                f"loses accuracy in {expected.dtype}{near}{where}; {verdict}. Details: {result.detail}"
            )
    return results


def _errors(expected: Expected, actual, labels: Collection[str]) -> dict[str, np.ndarray]:
    """``|actual − expected|`` per compared float array among ``labels``."""
    _, compared, grads = actual
    found = {}
    for label, value in {**compared, **grads}.items():
        if label not in labels:
            continue
        reference = {**expected.outputs, **expected.grads}[label]
        if np.asarray(reference).dtype.kind != "f" or np.shape(value) != np.shape(reference):
            continue
        with np.errstate(invalid="ignore", over="ignore"):
            error = np.abs(np.asarray(value, dtype=np.float64) - reference)
        found[label] = np.where(np.isnan(error), np.inf, error)
    return found


def _worst_excess(
    expected: Expected, errors: dict[str, np.ndarray]
) -> tuple[str, tuple[int, ...], float] | None:
    """The label, index and error of the element furthest over its allowed error."""
    worst = None
    for label, error in errors.items():
        allowed = expected.allowed.get(label)
        if allowed is None or error.size == 0:
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(error == 0, 0.0, error / allowed)
        index = tuple(int(i) for i in np.unravel_index(int(np.argmax(ratio)), ratio.shape))
        if not np.isfinite(error[index]):
            return None  # a NaN or an overflow where the reference is finite: never just rounding
        if ratio[index] > 1 and (worst is None or ratio[index] > worst[3]):
            worst = (label, index, float(error[index]), float(ratio[index]))
    return None if worst is None else worst[:3]


def _higher_precision_agrees(
    op, cases, backend, sample, expected: Expected, actual, no_grad, vjp, check, labels
) -> str | None:
    args64 = cast_floats(expected.args, "float64")
    kwargs64 = _cast_kwargs(expected.kwargs, "float64")
    cotangents64 = [c.astype(np.float64) if c is not None else None for c in expected.cotangents]
    higher = expected_values(
        op, cases, sample, "float64", args=args64, kwargs=kwargs64, cotangents=cotangents64
    )
    rerun = _evaluate(op, cases, backend, higher, vjp)
    base = dict(op=op.name, backend=backend.name, dtype="float64", sample=sample.name)
    verdicts = _verdicts(op, base, "", higher, rerun, no_grad, backend, vjp)
    if all(r.status != "fail" for r in verdicts if r.check == check):
        return (
            "the same function run in float64 on the same inputs agrees with the reference: the "
            "formula is right, its rounding errors are amplified here"
        )
    worst = _worst_excess(expected, _errors(expected, actual, labels))
    if worst is None:
        return None
    label, index, error = worst
    error64 = _errors(higher, rerun, labels).get(label)
    if error64 is not None and np.isfinite(error64[index]) and error64[index] * PRECISION_RATIO <= error:
        return (
            f"in float64 the same function errs {error / max(error64[index], 1e-300):.2g}x less "
            "there: the error is rounding, not the formula"
        )
    return None


def _lower_precision_grows(op, cases, backend, sample, expected: Expected, actual, vjp, labels) -> str | None:
    worst = _worst_excess(expected, _errors(expected, actual, labels))
    if worst is None:
        return None
    label, index, error = worst
    lower = expected_values(op, cases, sample, "float32")
    error32 = _errors(lower, _evaluate(op, cases, backend, lower, vjp), labels).get(label)
    if error32 is not None and np.isfinite(error32[index]) and error32[index] >= PRECISION_RATIO * error:
        return (
            f"in float32 the same function errs {error32[index] / error:.2g}x more there: the error "
            "is rounding amplified by the formula, not a wrong formula"
        )
    return None


def _unstable(op, cases, backend, sample, expected: Expected, actual, vjp, labels) -> str | None:
    """Does the error jump about when the inputs move by a few ulps (an unstable formula's
    rounding), while the reference barely moves? A wrong formula's error is smooth in x."""
    worst = _worst_excess(expected, _errors(expected, actual, labels))
    if worst is None:
        return None
    label, index, error = worst
    rng = _sample_rng(sample, "instability")
    unit = float(np.finfo(np.float64).eps)
    for ulps in (4, 64, 1024):

        def nudged(values, ulps=ulps):
            return [
                v * (1 + ulps * unit * rng.choice([-1.0, 1.0], v.shape)) if _is_float_array(v) else v
                for v in values
            ]

        args = tuple(nudged(expected.args))
        kwargs = dict(zip(expected.kwargs, nudged(list(expected.kwargs.values())), strict=True))
        moved = expected_values(
            op, cases, sample, "float64", args=args, kwargs=kwargs, cotangents=expected.cotangents
        )
        reference_move = abs(
            {**moved.outputs, **moved.grads}[label][index]
            - {**expected.outputs, **expected.grads}[label][index]
        )
        if reference_move > 0.1 * error:
            return None  # the inputs moved too far to tell
        new_error = _errors(moved, _evaluate(op, cases, backend, moved, vjp), labels)[label][index]
        if abs(new_error - error) >= 0.25 * error:
            return (
                f"moving the inputs by {ulps} ulps changes its error there from {error:.3g} to "
                f"{new_error:.3g} while the reference moves by {reference_move:.2g}: rounding "
                "amplified by an unstable formula, not a wrong one"
            )
    return None


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
    if op.custom_vjp is not None:
        return results + _check_stated_vjp(op, sample, args, kwargs, v, grads, base, repro)
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


def _check_stated_vjp(op: Op, sample: Sample, args, kwargs, v, grads, base, repro) -> list[Result]:
    """A custom VJP (not the forward's derivative) against its stated formula, float64.

    The formula comes from the op's cases (``stated_vjp``), evaluated independently of the
    reference backward; each gradient must agree to ``sample.fd_rtol`` relative to its
    largest entry (the two evaluations differ only in rounding).
    """
    from ._cases import cases_for

    stated = cases_for(op.name).stated_vjp
    if stated is None:
        return [
            Result(
                **base,
                check="stated-vjp",
                status="fail",
                detail=f"{op.name} declares custom_vjp ({op.custom_vjp}) but its cases give no stated_vjp",
            )
        ]
    expected = list(stated(args, kwargs, v))
    worst, ok, detail = 0.0, True, ""
    for name, grad, want in zip(op.differentiable, grads, expected, strict=True):
        grad = np.asarray(grad, dtype=np.float64)
        want = np.asarray(want, dtype=np.float64)
        if grad.shape != want.shape:
            ok, detail = False, f"{name}: backward shape {grad.shape}, stated {want.shape}"
            break
        gap = float(np.max(np.abs(grad - want), initial=0.0))
        allowed = sample.fd_rtol * max(float(np.max(np.abs(want), initial=0.0)), 1e-300)
        worst = max(worst, gap)
        if not gap <= allowed:
            ok, detail = False, f"{name}: backward and stated formula differ by {gap!r} (allowed {allowed!r})"
    return [
        Result(
            **base,
            check="stated-vjp",
            status="pass" if ok else "fail",
            max_abs=worst,
            detail=detail,
            repro="" if ok else repro,
        )
    ]


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
