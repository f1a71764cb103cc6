"""Known deviations of official code: where the released code differs from the paper.

Checking refimpl against the papers' official code (and the libraries users port from) turns
up places where that code does something else than the paper: an index that is tested for
truth, a tie broken the other way, a formula with a factor inverted, a crash. Each one is
recorded here, next to its op, as a :class:`Deviation`:

* where it is (repository, file, function) and what it does, against what the paper says;
* a minimal input, with what the official code returns there and what refimpl returns
  (:class:`Example`), so anyone can see the difference for themselves;
* whether refimpl reproduces it behind a flag (``flag``: an official-code *variant*) or
  follows the paper and leaves it out (a *bug* of the official code, or a limitation).

``refimpl show OP`` and ``refimpl deviations`` list them; the conformance suite recognizes a
user's implementation that reproduces one and says so instead of reporting a bare failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Deviation", "Example", "deviations", "known_deviation", "matches", "run_example"]

VARIANT = "variant"  # refimpl reproduces it with `flag`
BUG = "bug"  # the official code is wrong there; refimpl follows the paper and does not reproduce it
CONVENTION = "convention"  # a defensible different choice (a default, a limitation); not reproduced
KINDS = (VARIANT, BUG, CONVENTION)


@dataclass(frozen=True)
class Example:
    """A minimal input that shows a deviation, and the outputs on both sides.

    ``args``/``kwargs`` are the op's arguments (NumPy arrays, numbers); ``official`` and
    ``reference`` map an output name (or ``"cotangent of 'z'"`` for a VJP, with the all-ones
    cotangent unless ``cotangent`` says otherwise; or ``"raises"`` for an exception type
    name) to what the official code gives and what refimpl gives, as seen when the record
    was made. Values are compared to ``rtol`` (they are written with a few digits).
    """

    args: tuple[Any, ...]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    official: Mapping[str, Any] = field(default_factory=dict)
    reference: Mapping[str, Any] = field(default_factory=dict)
    cotangent: Any = None
    rtol: float = 1e-3
    note: str = ""


@dataclass(frozen=True)
class Deviation:
    """One known difference between an op's official code and its paper (and refimpl)."""

    op: str
    name: str  # a short id, unique across refimpl: "craig-lazy-greedy-index-0"
    source: str  # repository, file, function (and version where it matters)
    official: str  # what the official code does
    paper: str  # what the paper says, and refimpl does by default
    example: Example | None = None
    flag: Mapping[str, Any] | None = None  # the arguments that make refimpl reproduce it
    convention: bool = False  # a different choice rather than an error (not reproduced)

    @property
    def kind(self) -> str:
        """``"variant"`` (reproduced behind ``flag``), ``"bug"`` or ``"convention"`` (not reproduced)."""
        if self.flag:
            return VARIANT
        return CONVENTION if self.convention else BUG

    def flag_text(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in (self.flag or {}).items())

    def summary(self) -> str:
        """One line: the source, what it does, and how refimpl treats it."""
        how = (
            f"reproduced with {self.flag_text()}"
            if self.flag
            else "not reproduced (refimpl follows the paper)"
        )
        if self.kind == CONVENTION:
            how = "a different convention, not reproduced"
        return f"{self.source}: {self.official} — {how}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "name": self.name,
            "kind": self.kind,
            "source": self.source,
            "official": self.official,
            "paper": self.paper,
            "flag": dict(self.flag) if self.flag else None,
            "example": None if self.example is None else _example_dict(self.example),
        }


def _jsonable(value: Any) -> Any:
    """JSON-ready form of an example's values; a function (an oracle, a loss) is written as
    its name and the first line of its docstring, which say what it computes."""
    if callable(value) and not hasattr(value, "tolist"):
        name = getattr(value, "__qualname__", None) or type(value).__name__
        doc = (getattr(value, "__doc__", None) or "").strip().splitlines()
        return f"<function {name}>" + (f": {doc[0].strip()}" if doc else "")
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def _example_dict(example: Example) -> dict[str, Any]:
    return {
        "args": _jsonable(example.args),
        "kwargs": _jsonable(dict(example.kwargs)),
        "official": _jsonable(dict(example.official)),
        "reference": _jsonable(dict(example.reference)),
        "note": example.note,
    }


def run_example(deviation: Deviation, *, with_flag: bool = False) -> dict[str, Any]:
    """refimpl's outputs on a deviation's example (with its flag when asked), keyed like the
    example: output names, ``"<output>.shape"``, ``"cotangent of '<input>'"``, ``"raises"``."""
    import numpy as np

    from ._op import get, vjp

    op, example = get(deviation.op), deviation.example
    if example is None:
        return {}
    kwargs = dict(example.kwargs)
    if with_flag and deviation.flag:
        kwargs.update(deviation.flag)
    keys = set(example.official) | set(example.reference)
    result: dict[str, Any] = {}
    try:
        if any(key.startswith("cotangent of") for key in keys):
            outputs, pullback = vjp(op, *example.args, **kwargs)
            if example.cotangent is not None:
                cotangent = example.cotangent
            elif len(op.outputs) == 1:
                cotangent = np.ones_like(outputs)
            else:
                cotangent = tuple(np.ones_like(o) for o in outputs)
            for name, grad in zip(op.differentiable, pullback(cotangent), strict=True):
                result[f"cotangent of '{name}'"] = grad
        else:
            outputs = op(*example.args, **kwargs)
        for name, value in zip(op.outputs, (outputs,) if len(op.outputs) == 1 else outputs, strict=True):
            result[name] = value
            result[f"{name}.shape"] = list(np.shape(value))
    except Exception as error:  # an example may record that the call is refused
        result["raises"] = type(error).__name__
    return result


def matches(expected: Mapping[str, Any], got: Mapping[str, Any], rtol: float = 1e-3) -> bool:
    """Whether ``got`` has every entry of ``expected`` (numbers to ``rtol``, NaN equal to NaN)."""
    import numpy as np

    for key, want in expected.items():
        if key not in got:
            return False
        value = got[key]
        if isinstance(want, str) or isinstance(value, str):
            if want != value:
                return False
            continue
        want, value = np.asarray(want, dtype=np.float64), np.asarray(value, dtype=np.float64)
        if want.shape != value.shape or not np.allclose(
            value, want, rtol=rtol, atol=rtol * 1e-3, equal_nan=True
        ):
            return False
    return True


_RECORDS: dict[str, list[Deviation]] = {}
_NAMES: set[str] = set()


def known_deviation(
    op: Any,
    *,
    name: str,
    source: str,
    official: str,
    paper: str,
    example: Example | None = None,
    flag: Mapping[str, Any] | None = None,
    convention: bool = False,
) -> Deviation:
    """Record a deviation of ``op``'s official code (call it in the op's module)."""
    op_name = getattr(op, "name", op)
    if name in _NAMES:
        raise TypeError(f"deviation {name!r} is recorded twice")
    if flag:
        parameters = getattr(op, "signature", None)
        unknown = [k for k in flag if parameters is not None and k not in parameters.parameters]
        if unknown:
            raise TypeError(f"deviation {name!r}: {op_name} has no argument {', '.join(unknown)}")
    record = Deviation(
        op_name, name, source, official, paper, example, dict(flag) if flag else None, convention
    )
    _NAMES.add(name)
    _RECORDS.setdefault(op_name, []).append(record)
    return record


def deviations(op: Any = None) -> list[Deviation]:
    """The recorded deviations of ``op`` (an op or its name), or of every op."""
    if op is None:
        return [record for name in sorted(_RECORDS) for record in _RECORDS[name]]
    return list(_RECORDS.get(getattr(op, "name", op), []))
