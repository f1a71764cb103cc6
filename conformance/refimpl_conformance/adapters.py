"""Checking a user's own implementation (NumPy, PyTorch, JAX or CuPy) against the reference.

::

    import refimpl_conformance as rc
    report = rc.check("layer_norm", my_torch_layer_norm, framework="torch")
    rc.assert_conforms("layer_norm", my_torch_layer_norm, framework="torch")

The user's function is wrapped as a backend: the suite's inputs (NumPy, float64 or
float32) are converted to the framework's arrays without changing their dtype, the
function runs, and its VJP is taken with the framework's own autograd (PyTorch, JAX) or
with the ``vjp`` the user passes (NumPy, CuPy, or a hand-written backward). Every sample of
the op's conformance cases is then compared with the reference computed in float64.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

import refimpl
from refimpl import Backend, Impl, Op
from refimpl.authoring import Tensor

from ._cases import Sample, cases_for
from ._engine import FLOAT_DTYPES, Result, check_errors, check_sample
from ._runner import Report

__all__ = [
    "FRAMEWORKS",
    "Binding",
    "ImportSpecError",
    "SignatureError",
    "UserBackend",
    "assert_conforms",
    "check",
    "load_function",
    "wrap",
]

FRAMEWORKS = ("numpy", "torch", "jax", "cupy")


class SignatureError(TypeError):
    """The user's function cannot be called as the op: the message shows both signatures and
    an ``argmap`` that would fit."""


class ImportSpecError(ValueError):
    """``PKG.MOD:FN`` names a module or a function that is not there."""


def load_function(spec: str) -> Callable[..., Any]:
    """``"package.module:function"`` -> the function (for the command line)."""
    module_name, _, attribute = spec.partition(":")
    if not attribute or not module_name:
        raise ImportSpecError(f"expected PACKAGE.MODULE:FUNCTION, got {spec!r}")
    module = import_module(module_name)
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            raise ImportSpecError(
                f"module {module_name!r} has no {attribute!r}" + (f"; it defines {shown}" if names else "")
            )
        target = getattr(target, part)
    return target


def import_module(name: str) -> Any:
    """Import ``name``, with a one-line error naming what is missing."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name and name.startswith(error.name):
            raise ImportSpecError(
                f"cannot import module {name!r} ({error}): run from the folder that holds it, or install it"
            ) from None
        raise


# -- binding the op's arguments to the user's parameters --------------------------------------
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _same(value: Any, default: Any) -> bool:
    if value is None or default is None:
        return value is default
    if isinstance(value, np.ndarray) or isinstance(default, np.ndarray):
        return False
    return (
        type(value) is type(default)
        and value == default
        or (isinstance(value, int | float) and not isinstance(value, bool) and value == default)
    )


class Binding:
    """How the op's arguments reach the user's function.

    Every op argument goes to the user parameter of the same name; an ``argmap`` entry renames
    it (``None``: not passed). The op's arrays and required arguments left over go, in the op's
    order, to the user's positional parameters left over, in theirs — so
    ``kd_loss(student_logits, teacher_logits, T)`` takes ``(z_student, z_teacher, temperature)``
    with no ``argmap``. An option (an argument with a default) the function does not take is
    not passed; a sample that sets it to anything but its default is skipped, with that reason.
    """

    def __init__(self, op: Op, fn: Callable[..., Any], argmap: Mapping[str, str | None] | None) -> None:
        self.op = op
        self.fn_name = getattr(fn, "__name__", type(fn).__name__)
        argmap = dict(argmap or {})
        parameters = op.signature.parameters
        unknown = [key for key in argmap if key not in parameters]
        if unknown:
            raise SignatureError(
                f"argmap names {', '.join(map(repr, unknown))}, which {op.name} does not take: "
                f"its arguments are {', '.join(parameters)} (argmap maps the op's names to yours)"
            )
        try:
            self.user = inspect.signature(fn)
        except (TypeError, ValueError):  # a builtin without a signature: call by the op's names
            self.user = None
        self.targets: dict[str, str | None] = {}
        self.how: dict[str, str] = {}
        if self.user is None:
            for name in parameters:
                self.targets[name] = argmap.get(name, name)
                self.how[name] = "argmap" if name in argmap else "name"
            return
        user = [p for p in self.user.parameters.values()]
        named = {p.name: p for p in user if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        takes_any_keyword = any(p.kind == p.VAR_KEYWORD for p in user)
        claimed: set[str] = set()
        for name, target in argmap.items():
            if target is not None and target not in named and not takes_any_keyword:
                raise SignatureError(
                    f"argmap maps {name!r} to {target!r}, but {self.fn_name}{self.user} has no "
                    f"parameter {target!r}"
                )
            self.targets[name], self.how[name] = target, "argmap"
            if target is not None:
                claimed.add(target)
        for name in parameters:
            if name not in self.targets and name in named and name not in claimed:
                self.targets[name], self.how[name] = name, "name"
                claimed.add(name)
        # the op's arrays and required arguments left over -> the user's positional slots left over
        pending = [
            name
            for name in parameters
            if name not in self.targets
            and (isinstance(op.specs[name], Tensor) or parameters[name].default is inspect.Parameter.empty)
        ]
        free = [p.name for p in user if p.kind in _POSITIONAL and p.name not in claimed]
        while len(pending) > len(free):  # drop optional arrays (say, a bias) before failing
            optional = [n for n in pending if parameters[n].default is not inspect.Parameter.empty]
            if not optional:
                break
            pending.remove(optional[-1])
        for name, target in zip(pending, free, strict=False):
            self.targets[name], self.how[name] = target, "position"
            claimed.add(target)
        unbound = [n for n in pending if n not in self.targets]
        unclaimed = [
            p.name
            for p in user
            if p.kind in (*_POSITIONAL, p.KEYWORD_ONLY)
            and p.name not in claimed
            and p.default is inspect.Parameter.empty
        ]
        if unbound or unclaimed:
            problems = []
            if unbound:
                problems.append(f"the op's {', '.join(map(repr, unbound))} has no parameter to go to")
            if unclaimed:
                problems.append(f"your required {', '.join(map(repr, unclaimed))} gets no op argument")
            raise SignatureError(
                f"cannot call {self.fn_name}{self.user} as {op.name}{op.signature}: "
                + "; ".join(problems)
                + f". Bound so far: {self.describe()}. Say how they correspond with argmap, e.g. "
                f"argmap={self._suggestion(unbound, unclaimed)!r}"
                + (" (None: your function does not take it)" if unbound else "")
            )
        for name in parameters:
            if name not in self.targets:
                self.targets[name], self.how[name] = None, "option not taken"

    def _suggestion(self, unbound: Sequence[str], unclaimed: Sequence[str]) -> dict[str, str | None]:
        suggestion: dict[str, str | None] = {
            name: target for name, target in self.targets.items() if target is not None and target != name
        }
        spare = list(unclaimed)
        for name in unbound:
            suggestion[name] = spare.pop(0) if spare else None
        return suggestion

    def describe(self) -> str:
        """``z_student -> student_logits (position), ...``: how each op argument is passed."""
        parts = []
        for name, target in self.targets.items():
            if target is None:
                continue
            parts.append(name if target == name else f"{name} -> {target} ({self.how[name]})")
        return ", ".join(parts) or "nothing"

    def needs(self, arguments: Mapping[str, Any]) -> str | None:
        """Why a sample cannot run through this function: an option it does not take, set to
        something other than its default (None when the sample can run)."""
        for name, target in self.targets.items():
            if target is not None or name not in arguments:
                continue
            default = self.op.signature.parameters[name].default
            if default is inspect.Parameter.empty or not _same(arguments[name], default):
                value = arguments[name]
                shown = "an array" if isinstance(value, np.ndarray) else repr(value)
                return (
                    f"needs {name}={shown}; {self.fn_name} takes no {name!r} "
                    f"(if it has another name: argmap={{{name!r}: 'yours'}})"
                )
        return None

    def call(self, fn: Callable[..., Any], arguments: Mapping[str, Any]) -> Any:
        """``fn`` applied to the op's ``arguments``, each passed where the binding says."""
        given = {target: arguments[name] for name, target in self.targets.items() if target is not None}
        if self.user is None:
            return fn(**given)
        args = []
        for parameter in self.user.parameters.values():  # positional-only ones must be positional
            if parameter.kind != parameter.POSITIONAL_ONLY:
                break
            args.append(given.pop(parameter.name))
        return fn(*args, **given)

    def renamed(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """The op's ``arguments`` under the user's names (for a hand-written ``vjp``)."""
        return {target: arguments[name] for name, target in self.targets.items() if target is not None}


class _Framework:
    """Conversions and autograd for one framework."""

    name = "numpy"

    def __init__(self, device: str | None = None) -> None:
        self.device = device

    def to(self, array: np.ndarray, requires_grad: bool = False) -> Any:
        return array

    def from_(self, value: Any) -> np.ndarray:
        return np.asarray(value)

    def vjp(self, outputs, inputs, cotangents):  # pragma: no cover - numpy has no autograd
        raise NotImplementedError


class _Torch(_Framework):
    name = "torch"

    def __init__(self, device: str | None = None) -> None:
        import torch

        super().__init__(device or "cpu")
        self.torch = torch

    def to(self, array, requires_grad=False):
        tensor = self.torch.from_numpy(np.require(array, requirements="C")).to(self.device)
        return tensor.requires_grad_(requires_grad)

    def from_(self, value):
        if isinstance(value, self.torch.Tensor):
            return value.detach().cpu().numpy()
        return np.asarray(value)

    def vjp(self, outputs, inputs, cotangents):
        pairs = [
            (o, c) for o, c in zip(outputs, cotangents, strict=True) if c is not None and o.requires_grad
        ]
        if not pairs:
            return [None] * len(inputs)
        grads = self.torch.autograd.grad(
            [o for o, _ in pairs],
            inputs,
            grad_outputs=[self.to(c).to(o.dtype) for o, c in pairs],
            allow_unused=True,
        )
        return list(grads)


class _Cupy(_Framework):
    name = "cupy"

    def __init__(self, device: str | None = None) -> None:
        import cupy

        super().__init__(device)
        self.cupy = cupy

    def to(self, array, requires_grad=False):
        return self.cupy.asarray(array)

    def from_(self, value):
        return self.cupy.asnumpy(value)


def _framework(name: str, device: str | None) -> _Framework:
    if name == "numpy":
        return _Framework(device)
    if name == "torch":
        return _Torch(device)
    if name == "cupy":
        return _Cupy(device)
    if name == "jax":
        return _Jax(device)
    raise ValueError(f"framework must be one of {', '.join(FRAMEWORKS)}, got {name!r}")


class _Jax(_Framework):
    name = "jax"

    def __init__(self, device: str | None = None) -> None:
        import jax

        jax.config.update("jax_enable_x64", True)  # float64 inputs stay float64
        super().__init__(device)
        self.jax = jax

    def to(self, array, requires_grad=False):
        return self.jax.numpy.asarray(array)

    def from_(self, value):
        return np.asarray(value)


class UserBackend(Backend):
    """A user's function wrapped as a :class:`refimpl.Backend` (see :func:`wrap`)."""

    binding: Binding
    no_grad: tuple[str, ...]
    unused: set[str]

    def hint(self, labels: Sequence[str]) -> str:
        """Advice for a failed VJP: inputs the framework's autograd never saw."""
        silent = [n for n in self.unused if f"cotangent of '{n}'" in labels]
        if not silent:
            return ""
        names = ", ".join(map(repr, silent))
        return (
            f" (autograd gave no gradient for {names}: does your function detach it? If it is "
            f"meant as a constant, declare no_grad={sorted(silent)!r})"
        )


def wrap(
    op: str | Op,
    fn: Callable[..., Any],
    *,
    framework: str = "numpy",
    vjp: Callable[..., Any] | None = None,
    argmap: Mapping[str, str | None] | None = None,
    no_grad: Sequence[str] = (),
    device: str | None = None,
    name: str | None = None,
) -> UserBackend:
    """A Backend running ``fn`` (and its VJP) for ``op``, on NumPy inputs from the suite.

    ``fn`` is called with the op's arguments bound to its own parameters (:class:`Binding`:
    by name, then the op's arrays and required arguments by position, renamed through
    ``argmap``) and returns the op's outputs (a tuple when there are several). Its VJP is taken
    with the framework's autograd (torch, jax) unless ``vjp`` is given:
    ``vjp(cotangents, **arguments) -> one cotangent per differentiable input not in no_grad``
    (NumPy or the framework's arrays, under the function's own argument names; the cotangents
    a single array, or a tuple for several outputs). ``no_grad`` names differentiable inputs
    the function treats as constants (a detached teacher): they are not differentiated.
    Raises :class:`SignatureError` when ``fn`` cannot be called as the op.
    """
    op = refimpl.get(op)
    not_differentiable = [n for n in no_grad if n not in op.differentiable]
    if not_differentiable:
        raise SignatureError(
            f"no_grad names {', '.join(map(repr, not_differentiable))}, not among the differentiable "
            f"inputs of {op.name} ({', '.join(op.differentiable) or 'none'})"
        )
    binding = Binding(op, fn, argmap)
    frame = _framework(framework, device)
    differentiated = [n for n in op.differentiable if n not in no_grad]
    single = len(op.outputs) == 1
    unused: set[str] = set()

    def forward(*args: Any, **kwargs: Any):
        bound = op.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        converted = {}
        for key, value in bound.arguments.items():
            if isinstance(value, np.ndarray):
                wants_grad = key in differentiated and vjp is None and frame.name == "torch"
                converted[key] = frame.to(value, requires_grad=wants_grad)
            else:
                converted[key] = value
        if frame.name == "jax" and vjp is None and differentiated:
            outputs, pullback = _jax_vjp(frame, op, fn, converted, binding, differentiated)
        else:
            outputs = binding.call(fn, converted)
            pullback = None
        outs = (outputs,) if single else tuple(outputs)
        numpy_outs = tuple(frame.from_(o) for o in outs)
        residuals = (converted, outs, pullback)
        return (numpy_outs[0] if single else numpy_outs), residuals

    def backward(residuals: Any, cotangents: Any):
        converted, outs, pullback = residuals
        given = (cotangents,) if single else tuple(cotangents)
        if vjp is not None:
            user_cotangents = tuple(frame.to(np.asarray(c)) for c in given)
            grads = vjp(user_cotangents[0] if single else user_cotangents, **binding.renamed(converted))
            grads = list(grads) if isinstance(grads, tuple | list) else [grads]
        elif pullback is not None:  # jax
            grads = list(pullback(tuple(frame.to(np.asarray(c)) for c in given)))
        elif frame.name == "torch":
            inputs = [converted[n] for n in differentiated]
            grads = frame.vjp(outs, inputs, [np.asarray(c) for c in given])
        else:
            raise TypeError(
                f"{op.name} is differentiable: pass vjp=... for a {frame.name} function "
                "(NumPy and CuPy have no autograd)"
            )
        if len(grads) != len(differentiated):
            raise TypeError(
                f"the VJP gave {len(grads)} cotangents; {op.name} needs one per differentiable input "
                f"({', '.join(differentiated)})"
            )
        by_name = dict(zip(differentiated, grads, strict=True))
        result = []
        for input_name in op.differentiable:
            grad = by_name.get(input_name)
            if grad is None:  # not differentiated (no_grad), or the function ignored it: zero
                if input_name in differentiated:
                    unused.add(input_name)
                grad = np.zeros_like(np.asarray(frame.from_(converted[input_name])))
            result.append(frame.from_(grad))
        return tuple(result)

    qualname = getattr(fn, "__qualname__", "")
    importable = qualname and "<" not in qualname  # not a lambda or a local function
    spec = f"{getattr(fn, '__module__', '?')}:{qualname}"
    label = name or (f"impl:{frame.name}:{spec}" if importable else f"{frame.name}:{spec}")
    backend = UserBackend(
        label,
        {op.name: Impl(forward, backward if op.is_differentiable else None)},
        description=f"a user's {frame.name} implementation of {op.name}",
    )
    backend.binding, backend.no_grad, backend.unused = binding, tuple(no_grad), unused
    return backend


def _jax_vjp(frame: _Jax, op: Op, fn, converted, binding: Binding, names: Sequence[str]):
    jax = frame.jax

    def partial(*values):
        arguments = dict(converted)
        arguments.update(zip(names, values, strict=True))
        return binding.call(fn, arguments)

    outputs, pullback = jax.vjp(partial, *[converted[n] for n in names])
    single = len(op.outputs) == 1

    def apply(cotangents):
        return pullback(cotangents[0] if single else tuple(cotangents))

    return outputs, apply


#: Random samples each dtype must run for a check to count as covering the op.
MIN_RANDOM = 5
#: The most seeds drawn looking for them.
MAX_DRAWS = 200


def check(
    op: str | Op,
    fn: Callable[..., Any],
    *,
    framework: str = "numpy",
    vjp: Callable[..., Any] | None = None,
    dtypes: Sequence[str] = FLOAT_DTYPES,
    argmap: Mapping[str, str | None] | None = None,
    no_grad: Sequence[str] = (),
    forward_only: bool = False,
    supports: Callable[[Sample], bool] | None = None,
    seeds: Sequence[int] | None = None,
    device: str | None = None,
    errors: bool = False,
    sample_name: str | None = None,
    dims: Mapping[str, int] | None = None,
    edges: bool = True,
    min_random: int = MIN_RANDOM,
) -> Report:
    """Check ``fn`` against the reference on the samples of ``op``'s conformance cases.

    ``fn`` keeps its own names and order: see :class:`Binding` (``argmap`` renames what
    cannot be matched). ``supports(sample) -> bool`` declares which samples the implementation
    covers (e.g. ``lambda s: s.kwargs.get("reduction", "mean") == "mean"``); those it does not,
    and those that need an option ``fn`` does not take, are reported as skipped with the
    reason, never as passed. ``no_grad`` names inputs ``fn`` treats as constants: their
    cotangents are not compared. ``forward_only=True`` checks the outputs alone (a function
    with no backward, say scikit-learn's): the VJPs are reported as skipped.

    Random samples: with ``seeds=None`` (the default), seeds 0, 1, 2, ... are drawn until
    ``min_random`` supported samples have run in each dtype (at most ``MAX_DRAWS`` draws);
    fewer is reported in ``report.warnings`` (thin coverage), and :func:`assert_conforms`
    fails on it. ``seeds`` gives the seeds instead (``dims`` fixes their dimensions);
    ``edges=False`` leaves out the named edge cases and ``sample_name`` narrows the run to one
    sample (a repro). ``errors=True`` also runs the error cases (only meaningful when ``fn``
    validates its input like refimpl does).
    """
    op = refimpl.get(op)
    report = Report()
    try:
        backend = wrap(op, fn, framework=framework, vjp=vjp, argmap=argmap, no_grad=no_grad, device=device)
    except SignatureError as error:
        name = getattr(fn, "__qualname__", getattr(fn, "__name__", "function"))
        report.results.append(
            Result(op.name, f"{framework}:{name}", "-", "-", "signature", "fail", detail=str(error))
        )
        return report
    cases = cases_for(op.name)

    def skipped(sample: Sample) -> str | None:
        if supports is not None and not supports(sample):
            return "not supported by this implementation (declared with supports=)"
        try:
            arguments = op.signature.bind(*sample.args, **sample.kwargs)
        except TypeError:
            return None
        arguments.apply_defaults()
        return backend.binding.needs(arguments.arguments)

    ran = {dtype: 0 for dtype in dtypes}
    reasons: dict[str, int] = {}
    failing: list[tuple[Sample, str, list[Result]]] = []

    def run_sample(sample: Sample) -> None:
        why = skipped(sample)
        for dtype in dtypes:
            if why is not None:
                report.results.append(
                    Result(op.name, backend.name, dtype, sample.name, "forward", "skip", detail=why)
                )
                continue
            results = check_sample(op, cases, backend, sample, dtype, no_grad=no_grad, vjp=not forward_only)
            report.results.extend(results)
            if any(r.status == "fail" for r in results):
                failing.append((sample, dtype, [r for r in results if r.status == "fail"]))
            if sample.seed is not None and dtype in sample.dtypes:
                ran[dtype] += 1
        if why is not None and sample.seed is not None:
            reasons[why] = reasons.get(why, 0) + 1

    if sample_name is not None:
        for sample in [s for s in cases.samples(seeds or (), dims) if s.name == sample_name]:
            run_sample(sample)
    else:
        drawn = 0
        for seed in seeds if seeds is not None else range(MAX_DRAWS):
            if seeds is None and all(count >= min_random for count in ran.values()):
                break
            run_sample(cases.random_sample(seed, dims))
            drawn += 1
        if edges:
            for sample in cases.edges():
                run_sample(sample)
        thin = {dtype: count for dtype, count in ran.items() if count < min_random}
        if seeds is None and thin:
            why = "; ".join(
                f"{count} x {reason}" for reason, count in sorted(reasons.items(), key=lambda x: -x[1])
            )
            report.warnings.append(
                f"thin coverage of {op.name}: "
                + ", ".join(f"{count} random samples ran in {dtype}" for dtype, count in thin.items())
                + f" ({min_random} needed, {drawn} drawn"
                + (f"; skipped: {why}" if why else "")
                + ")"
            )
    if failing and op.deviations:
        _recognize(op, cases, backend, failing, report, no_grad, not forward_only)
    if errors:
        report.results.extend(check_errors(op, backend, cases.all_errors()))
    return report


def _recognize(op, cases, backend, failing, report: Report, no_grad, vjp: bool) -> None:
    """Say which known deviation of official code the failures reproduce, if one does."""
    from .deviations import recognize

    found = recognize(
        op, cases, backend, [(sample, dtype) for sample, dtype, _ in failing], no_grad=no_grad, vjp=vjp
    )
    for deviation, advice in found:
        report.recognized.append(deviation.name)
        note = (
            f"known deviation: matches {deviation.source} ('{deviation.name}': {deviation.official}); "
            f"{advice}. "
        )
        for _, _, results in failing:
            for result in results:
                result.detail = note + result.detail


def assert_conforms(op: str | Op, fn: Callable[..., Any], **options: Any) -> Report:
    """Like :func:`check`, but raise ``AssertionError`` listing each failure with its numbers:
    a wrong result, an inaccurate one, or thin coverage."""
    report = check(op, fn, **options)
    problems = [*report.failures, *report.inaccurate]
    if problems or report.warnings:
        lines = [
            f"{r.check} [{r.dtype}] sample {r.sample!r}: {r.status}, error {r.ratio:.3g}x the allowed "
            f"(max abs {r.max_abs:.3g}, max rel {r.max_rel:.3g}) — {r.detail}"
            for r in problems
        ]
        lines += [f"warning: {w}" for w in report.warnings]
        lines += [f"known deviation of official code reproduced: {name}" for name in report.recognized]
        raise AssertionError(
            f"{len(problems)} of {len(report.results)} checks of {refimpl.get(op).name} did not pass"
            + (f", {len(report.warnings)} warning(s)" if report.warnings else "")
            + ":\n"
            + "\n".join(lines)
        )
    return report
