"""Portable golden test vectors (Wycheproof-style): export them, and check against them.

``refimpl export-vectors DIR`` writes, per op, ``DIR/<op>.json`` (schema
``schema/vectors-2.json``, shipped with the package) and, when some array is large,
``DIR/<op>.npz`` beside it. An implementation in any language can then be checked without
Python: read the inputs, run, compare with the expected outputs and VJPs within the
test's allowed errors; ``"result": "invalid"`` tests must be refused with an error.

Arrays are stored as ``{"dtype", "shape", "data"}`` (row-major, JSON numbers that round-trip
exactly; ``"nan"``, ``"inf"`` and ``"-inf"`` as strings) or, above ``INLINE_LIMIT``
elements, as ``{"dtype", "shape", "npz": KEY}``. Each valid test carries ``allowed``: the
largest error a correct implementation in the test's dtype may make, per element of every
output and cotangent (see :mod:`refimpl_conformance._accuracy`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import refimpl
from refimpl import Backend, InputError

from ._cases import OpCases, Sample, all_cases, cases_for
from ._engine import FLOAT_DTYPES, Result, _run, compare, expected_values
from ._runner import DEFAULT_SEEDS, Report

__all__ = ["SCHEMA", "STANDARD_FLAGS", "check_vectors", "export_vectors", "schema"]

SCHEMA = "refimpl-vectors/2"
INLINE_LIMIT = 256

STANDARD_FLAGS = {
    "RANDOM": "a random sample inside the domain (its seed rebuilds it with refimpl_conformance)",
    "DTYPE_FLOAT32": "float32 inputs: outputs and gradients must stay float32 (no silent promotion)",
    "INVALID_INPUT": "input outside the contract: an implementation must refuse it with an error",
    "OFFICIAL_VARIANT": "an official-code variant refimpl reproduces behind a flag (its known deviation "
    "is named in the comment; `refimpl deviations` lists them)",
}


def schema() -> dict[str, Any]:
    """The JSON Schema the vector files follow."""
    return json.loads((Path(__file__).parent / "schema" / "vectors-2.json").read_text())


# -- encoding -------------------------------------------------------------------------------
def _encode_number(value: float) -> float | str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def _encode(value: Any, key: str, store: dict[str, np.ndarray]) -> Any:
    if isinstance(value, np.ndarray):
        entry = {"dtype": str(value.dtype), "shape": list(value.shape)}
        if value.size > INLINE_LIMIT:
            store[key] = value
            entry["npz"] = key
        elif value.dtype.kind == "f":
            entry["data"] = [_encode_number(float(v)) for v in value.ravel()]
        elif value.dtype.kind == "b":
            entry["data"] = [bool(v) for v in value.ravel()]
        else:
            entry["data"] = [int(v) for v in value.ravel()]
        return entry
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot encode {type(value).__name__} for {key}")


def _decode(entry: Any, arrays: Any) -> Any:
    if not isinstance(entry, dict) or "dtype" not in entry:
        return entry
    if "npz" in entry:
        return np.asarray(arrays[entry["npz"]])
    data = [float(v) if isinstance(v, str) else v for v in entry["data"]]
    return np.asarray(data, dtype=entry["dtype"]).reshape(entry["shape"])


# -- export ---------------------------------------------------------------------------------
def _name(label: str) -> str:
    """``"output 'y'"`` -> ``"y"``."""
    return label.split("'")[1]


def _test_for(op, cases: OpCases, sample, dtype: str, tc_id: int, store) -> dict[str, Any]:
    expected = expected_values(op, cases, sample, dtype)
    bound = op.bind(expected.args, expected.kwargs)
    prefix = f"tc{tc_id}"
    test: dict[str, Any] = {
        "tcId": tc_id,
        "comment": sample.name + (f": {sample.comment}" if sample.comment else ""),
        "flags": sorted(
            set(sample.flags)
            | ({"RANDOM"} if sample.seed is not None else set())
            | ({"DTYPE_FLOAT32"} if dtype == "float32" else set())
        ),
        "result": "valid",
        "inputs": {},
        "params": {},
        "outputs": {},
        "allowed": {"outputs": {}},
    }
    for name, value in bound.arguments.items():
        if isinstance(value, np.ndarray):
            test["inputs"][name] = _encode(value, f"{prefix}/inputs/{name}", store)
        else:
            test["params"][name] = _encode(value, f"{prefix}/params/{name}", store)
    # expected values: the float64 reference on the rounded inputs, stored in the test's dtype,
    # with the allowed error per element (float64); outputs defined only up to sign/rotation
    # are stored as the quantities compared instead
    for label, out in expected.outputs.items():
        name = _name(label)
        stored = out.astype(dtype) if out.dtype.kind == "f" else out
        test["outputs"][name] = _encode(stored, f"{prefix}/outputs/{name}", store)
        if expected.allowed[label] is not None:
            test["allowed"]["outputs"][name] = _encode(
                expected.allowed[label], f"{prefix}/allowed/outputs/{name}", store
            )
    if op.is_differentiable:
        test["cotangents"] = {
            name: _encode(c, f"{prefix}/cotangents/{name}", store)
            for name, c in zip(op.outputs, expected.cotangents, strict=True)
            if c is not None
        }
        test["vjp"] = {}
        test["allowed"]["vjp"] = {}
        for label, grad in expected.grads.items():
            name = _name(label)
            test["vjp"][name] = _encode(grad.astype(dtype), f"{prefix}/vjp/{name}", store)
            test["allowed"]["vjp"][name] = _encode(
                expected.allowed[label], f"{prefix}/allowed/vjp/{name}", store
            )
    if sample.seed is not None:
        test["seed"] = sample.seed
    return test


def _variant_samples(op) -> list[Sample]:
    """The minimal examples of the op's official-code variants (known deviations refimpl
    reproduces behind a flag), with the flag set: the vectors carry the variants too."""
    samples = []
    for deviation in op.deviations:
        if deviation.flag and deviation.example is not None:
            samples.append(
                Sample(
                    f"official variant '{deviation.name}' ({deviation.flag_text()})",
                    tuple(deviation.example.args),
                    {**deviation.example.kwargs, **deviation.flag},
                    flags=("OFFICIAL_VARIANT",),
                    comment=f"{deviation.source}: {deviation.official}",
                )
            )
    return samples


def why_no_vectors(name: str) -> str | None:
    """Why an op cannot have vector files, or None: a function among its arguments (a loss,
    an oracle, a vector field) is code, which a file of numbers cannot hold."""
    op = refimpl.get(name)
    functions = [k for k, spec in op.specs.items() if getattr(spec, "kind", None) == "function"]
    if functions:
        listed = ", ".join(f"'{k}'" for k in functions)
        return f"it takes a function ({listed}), which a vector file cannot hold"
    return None


def export_vectors(
    directory: str | Path,
    ops: Iterable[str] | None = None,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    skipped: dict[str, str] | None = None,
) -> list[Path]:
    """Write the vector files of ``ops`` (default: every op with cases) into ``directory``.

    An op that cannot have vectors (:func:`why_no_vectors`) is left out; ``skipped``, when
    given, receives its name and the reason.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    catalog = all_cases()
    written = []
    for name in ops if ops is not None else list(catalog):
        why = why_no_vectors(name)
        if why is not None:
            if skipped is not None:
                skipped[name] = why
            continue
        op, cases = refimpl.get(name), catalog[name]
        store: dict[str, np.ndarray] = {}
        groups = []
        tc_id = 0
        samples = cases.samples(seeds) + _variant_samples(op)
        for dtype in FLOAT_DTYPES:
            tests = []
            for sample in samples:
                if dtype not in sample.dtypes:
                    continue
                tc_id += 1
                tests.append(_test_for(op, cases, sample, dtype, tc_id, store))
            groups.append({"type": "valid", "dtype": dtype, "tests": tests})
        invalid = []
        for case in cases.all_errors():
            try:
                bound = op.signature.bind(*case.args, **case.kwargs)
            except TypeError:
                continue  # a missing argument: not expressible as named inputs
            tc_id += 1
            entry = {
                "tcId": tc_id,
                "comment": case.name,
                "flags": ["INVALID_INPUT"],
                "result": "invalid",
                "inputs": {},
                "params": {},
                "expectedError": "InputError",
                "match": case.match,
            }
            for key, value in bound.arguments.items():
                target = "inputs" if isinstance(value, np.ndarray) else "params"
                try:
                    entry[target][key] = _encode(value, f"tc{tc_id}/{target}/{key}", store)
                except TypeError:
                    entry[target][key] = repr(value)
            invalid.append(entry)
        groups.append({"type": "invalid", "tests": invalid})
        notes = dict(STANDARD_FLAGS)
        notes.update(cases.notes)
        document = {
            "schema": SCHEMA,
            "algorithm": op.name,
            "family": op.family,
            "paper": {"title": op.paper.title, "arxiv": op.paper.arxiv, "year": op.paper.year},
            "referenceVersion": refimpl.__version__,
            "inputs": list(op.tensor_inputs),
            "params": list(op.scalar_params),
            "outputs": list(op.outputs),
            "differentiable": list(op.differentiable),
            "compareAs": (cases.compare_as.__doc__ or "").strip() if cases.compare_as else None,
            "comparison": "|actual - expected| <= allowed, elementwise, per output and per "
            "cotangent (each test's 'allowed' arrays, float64); expected values are the float64 "
            "reference on the (rounded) inputs, the allowed errors what a correct implementation "
            "in the test's dtype may differ by on that input (its rounding, amplified by the "
            "conditioning of the computation there)",
            "numberOfTests": tc_id,
            "notes": notes,
            "arrays": f"{op.name}.npz" if store else None,
            "testGroups": groups,
        }
        path = directory / f"{op.name}.json"
        path.write_text(json.dumps(document, indent=1))
        if store:
            np.savez_compressed(directory / f"{op.name}.npz", **store)
        written.append(path)
    return written


# -- checking against vectors ------------------------------------------------------------------
def check_vectors(directory: str | Path, backend: Backend, ops: Iterable[str] | None = None) -> Report:
    """Check ``backend`` (or a wrapped user function) against exported vectors, without
    recomputing the reference."""
    directory = Path(directory)
    report = Report()
    files = sorted(directory.glob("*.json"))
    for path in files:
        document = json.loads(path.read_text())
        if document.get("schema") != SCHEMA:
            continue
        name = document["algorithm"]
        if (ops is not None and name not in ops) or not backend.supports(name):
            continue
        op = refimpl.get(name)
        arrays = np.load(directory / document["arrays"]) if document.get("arrays") else {}
        for group in document["testGroups"]:
            for test in group["tests"]:
                report.results.extend(_check_one(op, backend, group, test, arrays))
    if not report.results:
        report.notes.append(f"no vectors in {directory} for backend {backend.name}")
    return report


def _check_one(op, backend: Backend, group, test, arrays) -> list[Result]:
    dtype = group.get("dtype", "-")
    base = dict(
        op=op.name, backend=backend.name, dtype=dtype, sample=f"tcId {test['tcId']}: {test['comment']}"
    )
    inputs = {k: _decode(v, arrays) for k, v in test["inputs"].items()}
    params = {k: _decode(v, arrays) for k, v in test["params"].items()}
    arguments = {**inputs, **params}
    bound = op.signature.bind(**{k: v for k, v in arguments.items() if k in op.signature.parameters})
    if test["result"] == "invalid":
        try:
            backend.get(op)(*bound.args, **bound.kwargs)
        except (InputError, ValueError, TypeError) as error:
            return [Result(**base, check="error", status="pass", detail=str(error))]
        except Exception as error:  # refused, though not with a clear error
            return [Result(**base, check="error", status="pass", detail=f"{type(error).__name__}: {error}")]
        return [Result(**base, check="error", status="fail", detail="accepted input that must be refused")]
    allowed = test["allowed"]
    cotangents = None
    if op.is_differentiable:
        cotangents = [
            _decode(test["cotangents"][n], arrays) if n in test.get("cotangents", {}) else None
            for n in op.outputs
        ]
    try:
        outputs, grads = _run(op, backend, bound.args, bound.kwargs, cotangents)
    except Exception as error:
        return [
            Result(**base, check="forward", status="fail", detail=f"raised {type(error).__name__}: {error}")
        ]
    results = []
    compare_as = cases_for(op.name).compare_as if test["outputs"].keys() != set(op.outputs) else None
    if compare_as is not None:
        typed = dict(zip(op.outputs, outputs, strict=True))
        for name, value in typed.items():
            if np.asarray(value).dtype.kind == "f" and str(np.asarray(value).dtype) != dtype:
                return [
                    Result(
                        **base,
                        check="forward",
                        status="fail",
                        detail=f"{name}: dtype {np.asarray(value).dtype}, expected {dtype}",
                    )
                ]
        quantities = compare_as(tuple(outputs), dict(bound.arguments))
        names_out, outputs = list(quantities), [np.asarray(q).astype(dtype) for q in quantities.values()]
    else:
        names_out = list(op.outputs)
    for check, names, actual_values, expected, limits in (
        ("forward", names_out, outputs, test["outputs"], allowed["outputs"]),
        ("vjp", op.differentiable, grads or (), test.get("vjp", {}), allowed.get("vjp", {})),
    ):
        if check == "vjp" and not op.is_differentiable:
            continue
        ok, worst, ratio, why = True, 0.0, 0.0, []
        for name, actual in zip(names, actual_values, strict=True):
            want = _decode(expected[name], arrays)
            if want.dtype.kind == "f" and np.asarray(actual).dtype != want.dtype:
                ok = False
                why.append(f"{name}: dtype {np.asarray(actual).dtype}, expected {want.dtype}")
                continue
            limit = _decode(limits[name], arrays) if name in limits else np.zeros(want.shape)
            found = compare(actual, want, limit)
            ok &= found.ok
            worst, ratio = max(worst, found.max_abs), max(ratio, found.ratio)
            if not found.ok:
                why.append(f"{name}: {found.why}")
        results.append(
            Result(
                **base,
                check=check,
                status="pass" if ok else "fail",
                max_abs=worst,
                detail="; ".join(why),
                ratio=ratio,
            )
        )
    return results
