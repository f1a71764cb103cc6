"""Running the suite over backends, ops, dtypes and samples, and summarizing it."""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import refimpl
from refimpl import Backend, install_hint

from ._cases import OpCases, Sample, all_cases
from ._engine import FLOAT_DTYPES, Result, check_errors, check_finite_differences, check_sample
from ._known import check_defaults, check_examples, check_known

HOST_SUFFIX = "[host]"  # "cupy[host]" names the CuPy backend's code run on NumPy inputs

__all__ = ["Plan", "Report", "plan", "run"]

DEFAULT_SEEDS = (0, 1, 2, 3, 4)


@dataclass
class Report:
    """All results of a run, with the notes on backends that could not run here, the code
    only their device runs (``not_run``: backend, code, ops) and the warnings about what
    the run could not cover."""

    results: list[Result] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    not_run: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    recognized: list[str] = field(default_factory=list)  # known deviations the failures reproduce

    @property
    def failures(self) -> list[Result]:
        """Wrong results (a formula, a constant, a sign, a dtype)."""
        return [r for r in self.results if r.status == "fail"]

    @property
    def inaccurate(self) -> list[Result]:
        """Right formulas that lose more digits than a correct implementation would."""
        return [r for r in self.results if r.status == "inaccurate"]

    @property
    def skipped(self) -> list[Result]:
        return [r for r in self.results if r.status == "skip"]

    @property
    def ok(self) -> bool:
        """Something ran, and nothing failed or lost accuracy."""
        return not self.failures and not self.inaccurate and any(r.status == "pass" for r in self.results)

    def summary(self) -> list[dict[str, Any]]:
        """One row per (backend, op): counts, and the worst error relative to the allowed error
        per dtype (≤ 1 passes) next to the worst absolute error."""
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for r in self.results:
            row = rows.setdefault(
                (r.backend, r.op),
                {
                    "backend": r.backend,
                    "op": r.op,
                    "passed": 0,
                    "failed": 0,
                    "inaccurate": 0,
                    "skipped": 0,
                    "worst_ratio_float64": 0.0,
                    "worst_ratio_float32": 0.0,
                    "max_abs_float64": 0.0,
                    "max_abs_float32": 0.0,
                },
            )
            key = {"pass": "passed", "fail": "failed", "skip": "skipped", "inaccurate": "inaccurate"}[
                r.status
            ]
            row[key] += 1
            if r.check in ("forward", "vjp") and r.dtype in FLOAT_DTYPES:
                row[f"max_abs_{r.dtype}"] = max(row[f"max_abs_{r.dtype}"], r.max_abs)
                row[f"worst_ratio_{r.dtype}"] = max(row[f"worst_ratio_{r.dtype}"], r.ratio)
        return list(rows.values())

    def to_json(self) -> str:
        return json.dumps(
            {
                "ok": self.ok,
                "notes": self.notes,
                "not_run": self.not_run,
                "warnings": self.warnings,
                "recognized": self.recognized,
                "summary": self.summary(),
                "results": [r.to_dict() for r in self.results],
            },
            indent=1,
            default=float,
        )


@dataclass
class Plan:
    """The backends to check (a name and a Backend each) and the work items."""

    targets: list[tuple[str, Backend]]
    ops: list[OpCases]
    dtypes: Sequence[str]
    seeds: Sequence[int]
    sample_name: str | None
    notes: list[str]
    self_checks: list[tuple[str, str, Callable[[], None]]]
    edges: bool = True
    dims: dict[str, int] | None = None
    not_run: list[dict[str, Any]] = field(default_factory=list)
    request: dict[str, Any] = field(default_factory=dict)  # plan()'s arguments: a worker replans

    def samples(self, cases: OpCases) -> list[Sample]:
        if self.sample_name is not None:
            return [s for s in cases.edges() if s.name == self.sample_name]
        if not self.edges:
            return [cases.random_sample(seed, self.dims) for seed in self.seeds]
        return cases.samples(self.seeds, self.dims)

    def sample_count(self, cases: OpCases) -> int:
        """``len(self.samples(cases))`` without drawing them: one random sample per seed, then
        the edge cases (a sweep of 10 000 seeds need not draw them all to size its progress bar)."""
        if self.sample_name is not None:
            return len(self.samples(cases))
        return len(self.seeds) + (len(list(cases.edges())) if self.edges else 0)

    def size(self) -> int:
        per_op = sum(self.sample_count(c) for c in self.ops)
        pinned = 0 if self.sample_name is not None else len(self.ops) * (1 + len(self.targets))
        return len(self.targets) * per_op * len(self.dtypes) + len(self.self_checks) + per_op + pinned


def plan(
    backends: Iterable[str] | None = None,
    ops: Iterable[str] | None = None,
    dtypes: Sequence[str] = FLOAT_DTYPES,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    sample_name: str | None = None,
    edges: bool = True,
    dims: dict[str, int] | None = None,
) -> Plan:
    """Decide what to run: every installed backend and every op with cases by default.

    A backend that cannot run here (no GPU) is replaced by its host variant, when it has
    one, and its self-checks are queued; the report's notes say so, and ``not_run`` names
    the code of the chosen ops that only its device runs (``Backend.device_only``).
    """
    catalog = all_cases()
    if ops is not None:
        chosen = []
        for name in ops:
            refimpl.get(name)  # unknown names raise with suggestions
            if name not in catalog:
                raise KeyError(f"{name} has no conformance cases yet")
            chosen.append(catalog[name])
    else:
        chosen = [c for name, c in catalog.items()]
    targets: list[tuple[str, Backend]] = []
    notes: list[str] = []
    self_checks: list[tuple[str, str, Callable[[], None]]] = []
    not_run: list[dict[str, Any]] = []
    for name in backends if backends is not None else refimpl.backends():
        base, on_host = (name[: -len(HOST_SUFFIX)], True) if name.endswith(HOST_SUFFIX) else (name, False)
        try:
            backend = refimpl.backend(base)
        except (ImportError, OSError) as error:
            notes.append(f"{name}: not importable ({error}); {install_hint(base)}")
            continue
        if on_host:  # "cupy[host]": the backend's array logic on NumPy inputs, GPU or not
            if backend.host_variant is None:
                raise KeyError(f"backend {base!r} has no host variant; drop {HOST_SUFFIX!r}")
            host = backend.host_variant()
            targets.append((host.name, host))
            continue
        for label, check in backend.self_checks.items():
            self_checks.append((backend.name, label, check))
        available, why = backend.available()
        if available:
            targets.append((backend.name, backend))
        elif backend.host_variant is not None:
            host = backend.host_variant()
            targets.append((host.name, host))
            notes.append(f"{name}: {why}; checked its array logic on NumPy inputs as '{host.name}'")
        else:
            notes.append(f"{name}: {why}; not checked")
        if not available:
            op_names = {c.op for c in chosen}
            for code, users in backend.device_only.items():
                if op_names.intersection(users):
                    not_run.append(
                        {"backend": backend.name, "code": code, "ops": [u for u in users if u in op_names]}
                    )
    request = {
        "backends": None if backends is None else list(backends),
        "dtypes": list(dtypes),
        "seeds": list(seeds),
        "sample_name": sample_name,
        "edges": edges,
        "dims": dims,
    }
    return Plan(
        targets,
        chosen,
        list(dtypes),
        list(seeds),
        sample_name,
        notes,
        self_checks,
        edges,
        dims,
        not_run,
        request,
    )


def run(
    the_plan: Plan,
    progress: Callable[[str], None] | None = None,
    jobs: int = 1,
    dask: Any = None,
) -> Report:
    """Execute a plan; ``progress(label)`` is called after each unit of work.

    ``jobs > 1`` checks the ops in that many worker processes (one op per task, results in
    the plan's order): on a fresh install most of a check is compiling kernels, and the
    processes compile side by side. Each worker plans again from ``the_plan.request`` in a
    fresh interpreter, so settings changed at run time in this process do not reach it.

    ``dask`` runs the checks on a Dask cluster instead (``jobs`` is then not used): a
    ``distributed.Client``, a scheduler's address, or ``True`` for ``$REFIMPL_DASK_ADDRESS``
    or else a local cluster of one worker per CPU. The ops are cut into tasks of a batch of
    samples each (:mod:`refimpl_conformance._dask`) and the report is the one a local run
    gives. The backends' self-checks run here in either case.
    """
    report = Report(notes=list(the_plan.notes), not_run=list(the_plan.not_run))
    tick = progress or (lambda label: None)
    for backend_name, label, check in the_plan.self_checks:
        try:
            check()
            report.results.append(Result("-", backend_name, "-", label, "self-check", "pass"))
        except Exception as error:
            detail = "".join(traceback.format_exception_only(type(error), error)).strip()
            report.results.append(Result("-", backend_name, "-", label, "self-check", "fail", detail=detail))
        tick(f"{backend_name} {label}")
    if dask is not None and dask is not False:
        from ._dask import run_on_dask, sweep_client

        with sweep_client(dask) as client:
            report.results.extend(run_on_dask(the_plan, client, tick))
        return report
    jobs = max(1, min(jobs, len(the_plan.ops)))
    if jobs == 1:
        for cases in the_plan.ops:
            report.results.extend(_run_op(the_plan, cases, tick))
        return report
    report.results.extend(_run_in_workers(the_plan, jobs, tick))
    return report


def _units(the_plan: Plan, cases: OpCases) -> int:
    """How many progress ticks checking ``cases`` makes (as :meth:`Plan.size` counts them)."""
    samples = the_plan.sample_count(cases)
    pinned = 0 if the_plan.sample_name is not None else 1 + len(the_plan.targets)
    return samples * (1 + len(the_plan.targets) * len(the_plan.dtypes)) + pinned


def _run_op(the_plan: Plan, cases: OpCases, tick: Callable[[str], None]) -> list[Result]:
    """Every check of one op: the reference's own (defaults, finite differences), then each target."""
    results: list[Result] = []
    op = refimpl.get(cases.op)
    samples = the_plan.samples(cases)
    if the_plan.sample_name is None:  # what pins the reference itself: defaults, known values
        results.extend(check_defaults(op))
        tick(f"numpy {op.name} defaults")
    for sample in samples:
        if "float64" in the_plan.dtypes:
            results.extend(check_finite_differences(op, sample))
        tick(f"numpy {op.name} finite differences")
    for name, backend in the_plan.targets:
        if not backend.supports(op):
            continue
        if the_plan.sample_name is None:
            results.extend(check_errors(op, backend, cases.all_errors()))
            results.extend(check_examples(op, backend))
            results.extend(check_known(op, cases, backend))
            tick(f"{name} {op.name} known values")
        for sample in samples:
            for dtype in the_plan.dtypes:
                results.extend(check_sample(op, cases, backend, sample, dtype))
                tick(f"{name} {op.name} {dtype}")
    return results


def _check_in_worker(request: dict[str, Any], op_name: str) -> list[Result]:
    """One op's checks in a worker process (module level: the pool pickles it by name)."""
    the_plan = plan(**request, ops=[op_name])
    return _run_op(the_plan, the_plan.ops[0], lambda label: None)


def _run_in_workers(the_plan: Plan, jobs: int, tick: Callable[[str], None]) -> list[Result]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    done: dict[str, list[Result]] = {}
    # spawn, not fork: a forked child would inherit the parent's Numba and BLAS thread pools.
    # Each worker gets its share of the CPUs for its thread pools (read when they load, from
    # the environment the children inherit): with every worker's BLAS using every CPU, the
    # checks of the matrix routines take 1.5 times as long on 2 cores.
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update(dict.fromkeys(_THREAD_VARIABLES, threads))
    try:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_check_in_worker, the_plan.request, c.op): c for c in the_plan.ops}
            for future in as_completed(futures):
                cases = futures[future]
                try:
                    done[cases.op] = future.result()
                except Exception as error:  # a worker that died (a crash in compiled code) or raised
                    detail = "".join(traceback.format_exception_only(type(error), error)).strip()
                    done[cases.op] = [Result(cases.op, "-", "-", "-", "worker", "fail", detail=detail)]
                for _ in range(_units(the_plan, cases)):
                    tick(f"{cases.op}")
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return [result for cases in the_plan.ops for result in done[cases.op]]


_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
