"""Checks that pin the reference itself: declared defaults, docstring examples, known values.

The backend comparison cannot see a bug the reference shares with every backend: a default
(backends receive the reference's), a constant that the forward and the backward both use
(finite differences agree with it), a helper the reference and a backend import alike. These
checks compare with numbers written down independently of the code:

* ``defaults``: each op's signature against :data:`refimpl_conformance.defaults.DECLARED_DEFAULTS`;
* ``example``: the op's docstring examples, run with ``refimpl`` resolving every op the backend
  implements to that backend, and compared with the output written in the docstring to the
  digits written there;
* ``known``: the :class:`~refimpl_conformance.Known` values of the op's cases (the catalog's
  published values), on every backend.
"""

from __future__ import annotations

import builtins
import doctest
import importlib
import inspect
import math
import re
import types
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import refimpl
from refimpl import Backend, Op

from ._cases import OpCases
from ._engine import Result
from .defaults import DECLARED_DEFAULTS

__all__ = ["check_defaults", "check_examples", "check_known", "labelled_outputs"]


# -- defaults ----------------------------------------------------------------------------------
def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and float(a) == float(b)
    return type(a) is type(b) and a == b


def declared_defaults(op_name: str) -> tuple[dict[str, Any], str]:
    """The defaults declared for ``op_name`` and where: its cases' ``defaults=``, or the table."""
    from ._cases import all_cases

    cases = all_cases().get(op_name)
    in_cases = None if cases is None else cases.defaults
    if in_cases is not None and op_name in DECLARED_DEFAULTS:
        raise TypeError(f"{op_name}: defaults declared twice (its cases and refimpl_conformance/defaults.py)")
    if in_cases is not None:
        return dict(in_cases), f"the defaults= of its cases ({cases.random.__module__})"
    return DECLARED_DEFAULTS.get(op_name, {}), "the table refimpl_conformance/defaults.py"


def check_defaults(op: Op) -> list[Result]:
    """The op's signature defaults against the declared ones (one result per op)."""
    base = dict(op=op.name, backend="numpy", dtype="-", sample="signature", check="defaults")
    actual = {
        name: p.default
        for name, p in op.signature.parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    declared, where = declared_defaults(op.name)
    problems = [
        f"{name} = {actual[name]!r} in the signature, {declared[name]!r} declared"
        for name in actual
        if name in declared and not _same(actual[name], declared[name])
    ]
    problems += [f"{name} = {actual[name]!r} is not declared" for name in actual if name not in declared]
    problems += [
        f"{name} = {declared[name]!r} is declared but not a default"
        for name in declared
        if name not in actual
    ]
    if problems:
        detail = (
            "; ".join(problems) + f" (declared in {where}: a default changes there and in the "
            "signature together, with the catalog)"
        )
        return [Result(**base, status="fail", detail=detail)]
    return [Result(**base, status="pass", detail=f"{len(actual)} defaults")]


# -- docstring examples on a backend -----------------------------------------------------------
def _to_backend(backend: Backend, value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return backend.asarray(value)
    if isinstance(value, tuple):
        return tuple(_to_backend(backend, v) for v in value)
    return value


def _to_numpy(backend: Backend, value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(_to_numpy(backend, v) for v in value)
    if hasattr(value, "shape") and not isinstance(value, np.ndarray) and hasattr(value, "dtype"):
        return backend.to_numpy(value)
    return value


class _OpOnBackend:
    """An op as a docstring sees it, run on ``backend`` (NumPy arrays in and out)."""

    def __init__(self, op: Op, backend: Backend) -> None:
        self._op, self._backend, self._call = op, backend, backend.get(op)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        b = self._backend
        outputs = self._call(*_to_backend(b, args), **{k: _to_backend(b, v) for k, v in kwargs.items()})
        return _to_numpy(b, outputs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._op, name)


class _Namespace:
    """``refimpl`` (or a subpackage) with every op the backend implements resolved to it."""

    def __init__(self, module: types.ModuleType, backend: Backend) -> None:
        self._module, self._backend = module, backend

    def __getattr__(self, name: str) -> Any:
        if name == "get" and self._module is refimpl:
            return lambda op: self._resolve(refimpl.get(op))
        if name == "vjp" and self._module is refimpl:
            return self._vjp
        value = getattr(self._module, name)
        if isinstance(value, types.ModuleType) and value.__name__.startswith("refimpl"):
            return _Namespace(value, self._backend)
        return self._resolve(value)

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, Op) and self._backend.supports(value):
            return _OpOnBackend(value, self._backend)
        return value

    def _vjp(self, op: Any, *args: Any, **kwargs: Any):
        b = self._backend
        name = op if isinstance(op, str) else op.name
        chosen = b if b.supports(name) else None
        outputs, pullback = refimpl.vjp(
            name, *_to_backend(b, args), backend=chosen, **{k: _to_backend(b, v) for k, v in kwargs.items()}
        )

        def pull(cotangents: Any) -> Any:
            return _to_numpy(b, pullback(_to_backend(b, cotangents)))

        return _to_numpy(b, outputs), pull


def _importer(backend: Backend) -> Callable[..., Any]:
    """``__import__`` for an example: ``import refimpl`` gives the backend's namespace."""

    def import_(name: str, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002
        module = builtins.__import__(name, globals, locals, fromlist, level)
        if level == 0 and (name == "refimpl" or name.startswith("refimpl.")):
            if fromlist:  # from refimpl.layers import x: the subpackage itself
                return _Namespace(importlib.import_module(name), backend)
            return _Namespace(refimpl, backend)
        return module

    return import_


_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def _decimals(token: str) -> int:
    """Digits written after the point, counting the exponent: ``1.25e-07`` has 9."""
    mantissa, _, exponent = token.lower().partition("e")
    written = len(mantissa.partition(".")[2])
    return written - (int(exponent) if exponent else 0)


class _DigitsChecker(doctest.OutputChecker):
    """Exact text, except that numbers are compared to the digits the docstring wrote.

    A number the example rounded (``.round(7)``, NumPy's 8 printed digits) may differ by one
    unit of its last written digit on another backend (a rounding boundary); a number written
    in full (``0.5``) to 1e-9 relative. Spacing is free (NumPy aligns columns by width).
    """

    def check_output(self, want: str, got: str, optionflags: int) -> bool:
        if super().check_output(want, got, optionflags):
            return True
        want_numbers, got_numbers = _NUMBER.findall(want), _NUMBER.findall(got)
        if len(want_numbers) != len(got_numbers):
            return False
        if "".join(_NUMBER.sub("#", want).split()) != "".join(_NUMBER.sub("#", got).split()):
            return False
        for w, g in zip(want_numbers, got_numbers, strict=True):
            expected, actual = float(w), float(g)
            if _decimals(g) <= _decimals(w):  # the example rounded or printed it short
                allowed = 1.0001 * 10.0 ** (-_decimals(w)) if _decimals(w) > 0 else 1e-9 * abs(expected)
            else:
                allowed = 1e-9 * max(abs(expected), 1e-300)
            if not math.isclose(actual, expected, rel_tol=0, abs_tol=allowed) and actual != expected:
                return False
        return True


def check_examples(op: Op, backend: Backend) -> list[Result]:
    """Run the op's docstring examples on ``backend``; one result per op and backend."""
    base = dict(
        op=op.name, backend=backend.name, dtype="float64", sample="docstring examples", check="example"
    )
    tests = doctest.DocTestFinder(recurse=False).find(op.forward, op.name, globs={})
    examples = [t for t in tests if t.examples]
    if not examples:
        return [Result(**base, status="skip", detail="the docstring has no examples")]
    globs = {"__builtins__": {**vars(builtins), "__import__": _importer(backend)}}
    lines: list[str] = []
    runner = doctest.DocTestRunner(checker=_DigitsChecker(), optionflags=doctest.NORMALIZE_WHITESPACE)
    for test in examples:
        test.globs = dict(globs)
        runner.run(test, out=lines.append, clear_globs=True)
    outcome = runner.summarize(verbose=False)
    if outcome.failed:  # doctest's report, without its separators and file locations
        kept = [line for line in "".join(lines).splitlines() if not line.startswith(("File ", "*****"))]
        detail = "\n".join(kept).strip()
        return [Result(**base, status="fail", detail=detail[-3000:])]
    return [Result(**base, status="pass", detail=f"{outcome.attempted} examples")]


# -- known values ------------------------------------------------------------------------------
def check_known(op: Op, cases: OpCases, backend: Backend) -> list[Result]:
    """Each of the cases' known values, computed by ``backend`` in float64."""
    results = []
    for known in cases.known():
        base = dict(op=op.name, backend=backend.name, dtype="float64", sample=known.name, check="known")
        try:
            wants_vjp = any(label.startswith("cotangent of ") for label in known.values)
            got = labelled_outputs(
                op, backend, known.args, known.kwargs, vjp=wants_vjp, cotangent=known.cotangent
            )
        except Exception as error:  # a crash on a documented input is a failure
            results.append(Result(**base, status="fail", detail=f"raised {type(error).__name__}: {error}"))
            continue
        problems = []
        worst = 0.0
        for label, value in known.values.items():
            expected = np.asarray(value, dtype=np.float64)
            actual = np.asarray(got[label], dtype=np.float64)
            allowed = known.atol + known.rtol * np.abs(expected)
            error = np.abs(actual - expected)
            if actual.shape != expected.shape or not np.all(error <= allowed):
                problems.append(
                    f"{label}: got {np.array2string(actual, precision=9)}, {known.source} gives {value}"
                )
            elif np.any(allowed > 0):
                worst = max(worst, float(np.max(error / np.where(allowed > 0, allowed, np.inf))))
        status = "fail" if problems else "pass"
        detail = "; ".join(problems) if problems else f"{len(known.values)} values of {known.source}"
        results.append(Result(**base, status=status, detail=detail, ratio=worst))
    return results


def labelled_outputs(
    op: Op, backend: Backend, args: Sequence[Any], kwargs: dict[str, Any], *, vjp: bool, cotangent: Any = None
) -> dict[str, Any]:
    """``backend``'s outputs by name and, with ``vjp``, its VJP as ``"cotangent of 'x'"`` at
    ``cotangent`` (all ones by default); NumPy arrays in and out, whatever the backend."""
    args = _to_backend(backend, tuple(args))
    kwargs = {k: _to_backend(backend, v) for k, v in kwargs.items()}
    if not vjp:
        outputs = backend.get(op)(*args, **kwargs)
        outputs = (outputs,) if len(op.outputs) == 1 else tuple(outputs)
        return {name: _to_numpy(backend, o) for name, o in zip(op.outputs, outputs, strict=True)}
    outputs, pullback = refimpl.vjp(op, *args, backend=backend, **kwargs)
    outputs = (outputs,) if len(op.outputs) == 1 else tuple(outputs)
    values = {name: _to_numpy(backend, o) for name, o in zip(op.outputs, outputs, strict=True)}
    if cotangent is None:
        ones = tuple(np.ones(np.shape(values[name])) for name in op.outputs)
        cotangent = ones[0] if len(ones) == 1 else ones
    grads = pullback(_to_backend(backend, cotangent))
    for name, g in zip(op.differentiable, grads, strict=True):
        values[f"cotangent of '{name}'"] = _to_numpy(backend, g)
    return values
