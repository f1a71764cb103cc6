"""Recognizing a known deviation of official code in a user's implementation.

A port that "matches the official repository" may match it where the official code departs
from the paper (:mod:`refimpl._deviations`). When such a port fails, the verifier tries the
op's recorded deviations before calling it a bare failure:

* an official-code *variant* refimpl reproduces behind a flag: the failing samples are
  checked again against the reference with that flag;
* a *bug* (or a convention) refimpl does not reproduce: the port's outputs are compared with
  a NumPy transcription of the official behaviour (registered with :func:`transcribes`
  beside the op's cases), on the deviation's minimal example and on the failing samples.

When one explains the failures, each failing result says so: "matches <source> (known
deviation '<name>': ...)", with the flag to pass where there is one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from refimpl import Backend, Deviation, Op

from ._cases import OpCases, Sample
from ._known import labelled_outputs

__all__ = ["Transcription", "recognize", "transcribes", "transcription"]


@dataclass(frozen=True)
class Transcription:
    """A NumPy transcription of what an official implementation does where it deviates.

    ``fn`` takes the op's arguments (bound, defaults filled, float64 arrays holding the values
    of the sample's dtype) as keywords, plus ``dtype`` (the dtype the implementation ran in),
    and returns a dict of the outputs it reproduces (``outputs``), or raises as the official
    code does.
    """

    deviation: str
    fn: Callable[..., dict[str, Any]]
    outputs: tuple[str, ...]


_TRANSCRIPTIONS: dict[str, Transcription] = {}


def transcribes(
    deviation: str, *, outputs: Sequence[str]
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: ``fn`` reproduces the official behaviour of the recorded ``deviation``."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if deviation in _TRANSCRIPTIONS:
            raise TypeError(f"deviation {deviation!r} is transcribed twice")
        _TRANSCRIPTIONS[deviation] = Transcription(deviation, fn, tuple(outputs))
        return fn

    return register


def transcription(deviation: str) -> Transcription | None:
    from ._cases import _load_all

    _load_all()  # the transcriptions live beside the cases
    return _TRANSCRIPTIONS.get(deviation)


def run_transcription(op: Op, found: Transcription, args: Sequence[Any], kwargs: dict[str, Any], dtype: str):
    """The transcription's outputs on a call of ``op`` (``{"raises": name}`` if it raises)."""
    bound = op.signature.bind(*args, **kwargs)
    bound.apply_defaults()
    try:
        return found.fn(**bound.arguments, dtype=dtype)
    except Exception as error:  # the official code crashes there: that is what it does
        return {"raises": type(error).__name__}


# -- recognition ----------------------------------------------------------------------------------
def _example_matches(op: Op, backend: Backend, deviation: Deviation) -> bool | None:
    """Does the implementation give the official output on the deviation's example?
    (None: the example cannot tell — none, or the implementation's output is the reference's.)"""
    from refimpl._deviations import matches

    example = deviation.example
    if example is None:
        return None
    kwargs = dict(example.kwargs)  # the default call: no flag
    got: dict[str, Any] = {}
    try:
        wants_vjp = any(key.startswith("cotangent of") for key in example.official) and op.is_differentiable
        got = labelled_outputs(op, backend, example.args, kwargs, vjp=wants_vjp)
        got.update({f"{name}.shape": list(np.shape(got[name])) for name in op.outputs})
    except Exception as error:
        got["raises"] = type(error).__name__
    if not matches(example.official, got, example.rtol):
        return False
    return True


def recognize(
    op: Op,
    cases: OpCases,
    backend: Backend,
    failing: Sequence[tuple[Sample, str]],
    *,
    no_grad: Sequence[str] = (),
    vjp: bool = True,
) -> list[tuple[Deviation, str]]:
    """The recorded deviations that explain the failing ``(sample, dtype)`` pairs.

    A variant explains them when every failing pair passes against the reference with its
    flag; a bug or a convention with a transcription, when the implementation reproduces the
    official output on the deviation's example and the transcription's outputs on every
    failing pair it can run; without a transcription, the example alone decides.
    """
    from ._engine import _evaluate, _verdicts, expected_values

    found = []
    for deviation in op.deviations:
        if deviation.flag:
            explained = True
            for sample, dtype in failing:
                flagged = replace(
                    sample,
                    name=f"{sample.name} [{deviation.flag_text()}]",
                    kwargs={**sample.kwargs, **deviation.flag},
                )
                try:
                    expected = expected_values(op, cases, flagged, dtype)
                    actual = _evaluate(op, cases, backend, expected, vjp)
                except Exception:
                    explained = False
                    break
                base = dict(op=op.name, backend=backend.name, dtype=dtype, sample=flagged.name)
                if any(
                    r.status == "fail"
                    for r in _verdicts(op, base, "", expected, actual, no_grad, backend, vjp)
                ):
                    explained = False
                    break
            if explained and failing:
                found.append((deviation, f"pass {deviation.flag_text()} to check against it"))
            continue
        if not _example_matches(op, backend, deviation):
            continue
        copied = transcription(deviation.name)
        if copied is not None and not _consistent(op, cases, backend, copied, failing):
            continue
        found.append((deviation, "refimpl follows the paper and does not reproduce it"))
    return found


def _consistent(op: Op, cases: OpCases, backend: Backend, copied: Transcription, failing) -> bool:
    """The implementation's outputs agree with the transcription on every failing pair."""
    from ._engine import cast_floats

    for sample, dtype in failing:
        args = cast_floats(cast_floats(sample.args, dtype), "float64")
        kwargs = {
            k: (
                v.astype(dtype).astype(np.float64) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v
            )
            for k, v in sample.kwargs.items()
        }
        official = run_transcription(op, copied, args, kwargs, dtype)
        device = [
            backend.asarray(np.asarray(a).astype(dtype))
            if isinstance(a, np.ndarray) and a.dtype.kind == "f"
            else (backend.asarray(a) if isinstance(a, np.ndarray) else a)
            for a in args
        ]
        try:
            outputs = backend.get(op)(*device, **sample.kwargs)
        except Exception as error:
            if official.get("raises") != type(error).__name__:
                return False
            continue
        if "raises" in official:
            return False
        outs = dict(zip(op.outputs, (outputs,) if len(op.outputs) == 1 else tuple(outputs), strict=True))
        for name in copied.outputs:
            if name not in outs or name not in official:
                continue
            mine, theirs = np.asarray(backend.to_numpy(outs[name])), np.asarray(official[name])
            if mine.shape != theirs.shape:
                return False
            if theirs.dtype.kind in "iub":
                if not np.array_equal(mine, theirs):
                    return False
            elif not np.allclose(
                mine, theirs, rtol=1e-4 if dtype == "float32" else 1e-9, atol=1e-6, equal_nan=True
            ):
                return False
    return True
