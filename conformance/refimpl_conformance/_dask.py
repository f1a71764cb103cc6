"""Conformance sweeps on a Dask cluster: the checks of a plan as many small tasks.

``refimpl check --dask [ADDRESS]`` and ``run(the_plan, dask=...)`` come here. A local run
checks one op after another; here each op is cut into tasks of a fraction of a second, so
that a long seed sweep (``--seeds 0:10000``) spreads over every worker of the cluster:

* ``defaults``: the reference's own defaults check (one task per op);
* ``fd``: the reference's backward against finite differences, for a batch of samples;
* ``known``: per target, the error cases, the docstring examples and the known values;
* ``samples``: per target and dtype, :func:`check_sample` for a batch of samples.

A task carries no arrays and no backend: it carries ``plan()``'s arguments with the seeds
of its batch, and the worker plans again and rebuilds its samples from those seeds (as
``run(jobs=N)`` does in its processes). Results come back as tasks finish and are put
together in exactly the order of a local ``run(jobs=1)``, so the report, its summary and its
JSON are those of a local run.

The report is a local run's when the workers run the same kernels: a Numba kernel has a
one-thread and a threaded build (chosen by input size when there are several threads), whose
sums round differently, so a worker with one thread and a local process with several give the
same verdicts with other last digits on the large samples.

Each worker runs the code installed on it: the same versions of refimpl, its backends and
NumPy as the client, or the comparison is of something else. Settings changed at run time in
the client (a patched backend, a global switch) do not reach the workers.

Workers: a check is small, and the cluster's parallelism is one task per worker thread. A
local cluster started here gives each worker its share of this machine's CPUs for BLAS,
OpenMP and Numba (``distributed.nanny.pre-spawn-environ``) and turns off Dask's profiler
(:func:`sweep_client`). On a cluster of your own, start the workers with ``--nthreads 1``,
``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and ``NUMBA_NUM_THREADS`` set to the CPUs per
worker, and ``DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False``.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import refimpl

from ._cases import OpCases
from ._engine import FLOAT_DTYPES, Result, check_errors, check_finite_differences, check_sample
from ._known import check_defaults, check_examples, check_known
from ._runner import Plan, plan, run

__all__ = ["SAMPLES_PER_TASK", "run_on_dask", "sweep_client", "sweep_scaling"]

#: Samples per ``fd`` or ``samples`` task. A check of one sample takes about 1–15 ms, so a
#: task takes 0.1–1 s: long beside Dask's few milliseconds per task, short enough for the
#: workers to share the end of a sweep (measured: 0.25 s on average for z_loss, layer_norm and
#: stablemax_cross_entropy on numpy). 10 000 seeds make 157 tasks per op, backend and dtype.
SAMPLES_PER_TASK = 64


@dataclass(frozen=True)
class _Task:
    """One unit of work sent to a worker (plain data: it is pickled)."""

    op: str
    kind: str  # defaults | fd | known | samples
    request: dict[str, Any]  # plan()'s arguments for the worker: its backend, its batch's seeds
    start: int  # the slice of the worker plan's samples this task checks
    stop: int
    backend: str = "-"
    dtype: str = "-"
    units: int = 1  # progress ticks of the same work in a local run
    what: str = "-"  # the samples, in words, for a task that fails as a whole


def check_task(task: _Task) -> list[Any]:
    """Run one task on a worker: plan again from ``task.request`` and run its checks.

    Returns a flat list of results, except for ``samples`` tasks: one list per sample, so the
    client can interleave the dtypes of a sample as a local run does.
    """
    try:
        the_plan = plan(**task.request, ops=[task.op])
    except refimpl.UnknownBackendError as error:  # installed by the client, not here
        raise RuntimeError(f"backend {task.backend!r} cannot run on this worker: {error}") from None
    cases = the_plan.ops[0]
    op = refimpl.get(task.op)
    if task.kind == "defaults":
        return check_defaults(op)
    samples = the_plan.samples(cases)[task.start : task.stop]
    if task.kind == "fd":
        return [result for sample in samples for result in check_finite_differences(op, sample)]
    targets = dict(the_plan.targets)
    if task.backend not in targets:
        raise RuntimeError(
            f"backend {task.backend!r} cannot run on this worker (it has {', '.join(targets) or 'none'}; "
            f"notes: {'; '.join(the_plan.notes) or 'none'})"
        )
    backend = targets[task.backend]
    if task.kind == "known":
        return [
            *check_errors(op, backend, cases.all_errors()),
            *check_examples(op, backend),
            *check_known(op, cases, backend),
        ]
    return [check_sample(op, cases, backend, sample, task.dtype) for sample in samples]


def _batches(the_plan: Plan, cases: OpCases, size: int) -> list[tuple[dict[str, Any], int, int, str]]:
    """The op's samples cut into batches, each as (the worker's plan arguments, the slice of
    the samples that plan gives, the samples in words), in the order of ``Plan.samples``:
    the random samples of the seeds, then the edge cases."""
    request = the_plan.request
    if the_plan.sample_name is not None:  # a repro: the named edge cases, few
        count = len(the_plan.samples(cases))
        return [({**request, "seeds": []}, 0, count, f"edge case {the_plan.sample_name!r}")] if count else []
    seeds = list(the_plan.seeds)
    batches = [
        (
            {**request, "seeds": seeds[i : i + size], "edges": False},
            0,
            len(seeds[i : i + size]),
            f"seeds {seeds[i]}..{seeds[min(i + size, len(seeds)) - 1]}",
        )
        for i in range(0, len(seeds), size)
    ]
    if the_plan.edges:
        count = len(list(cases.edges()))
        batches += [
            ({**request, "seeds": [], "edges": True}, i, min(i + size, count), "edge cases")
            for i in range(0, count, size)
        ]
    return batches


def _tasks(the_plan: Plan, size: int) -> tuple[list[list[tuple[str, Any]]], list[_Task], int]:
    """Every task of the plan, and per op the layout that puts their results in order:
    a list of (kind, key) where key is a task index (or, for samples, the tasks of each dtype
    for one batch). Also the progress ticks the client makes itself (work with no task)."""
    if not the_plan.request:
        raise ValueError(
            "run_on_dask: the_plan has no request (plan()'s arguments), which the workers plan "
            "from; build it with refimpl_conformance.plan(...)"
        )
    tasks: list[_Task] = []
    layouts: list[list[tuple[str, Any]]] = []
    local_ticks = 0

    def add(task: _Task) -> int:
        tasks.append(task)
        return len(tasks) - 1

    for cases in the_plan.ops:
        op = refimpl.get(cases.op)
        batches = _batches(the_plan, cases, size)
        layout: list[tuple[str, Any]] = []
        pinned = the_plan.sample_name is None
        if pinned:
            request = {**the_plan.request, "backends": [], "seeds": []}
            layout.append(("flat", add(_Task(cases.op, "defaults", request, 0, 0, what="defaults"))))
        for request, start, stop, what in batches:
            if "float64" in the_plan.dtypes:
                request = {**request, "backends": []}
                fd = _Task(cases.op, "fd", request, start, stop, "numpy", "float64", stop - start, what)
                layout.append(("flat", add(fd)))
            else:
                local_ticks += stop - start  # a local run ticks these samples, checking nothing
        for name, backend in the_plan.targets:
            if not backend.supports(op):
                continue  # as a local run: no results and no ticks
            if pinned:
                request = {**the_plan.request, "backends": [name], "seeds": []}
                pinned_checks = "errors, examples, known values"
                known = _Task(cases.op, "known", request, 0, 0, name, "-", 1, pinned_checks)
                layout.append(("flat", add(known)))
            for request, start, stop, what in batches:
                keys = [
                    add(
                        _Task(
                            cases.op,
                            "samples",
                            {**request, "backends": [name]},
                            start,
                            stop,
                            name,
                            dtype,
                            stop - start,
                            what,
                        )
                    )
                    for dtype in the_plan.dtypes
                ]
                layout.append(("samples", keys))
        layouts.append(layout)
    return layouts, tasks, local_ticks


def run_on_dask(
    the_plan: Plan,
    client: Any,
    tick: Callable[[str], None] | None = None,
    *,
    samples_per_task: int = SAMPLES_PER_TASK,
) -> list[Result]:
    """Check every op of ``the_plan`` on the workers of ``client`` (a ``distributed.Client``).

    Returns the results of the ops' checks (not the plan's self-checks, which ``run`` keeps
    on this machine) in the order a local ``run(jobs=1)`` gives them. ``tick(label)`` is
    called once per unit of work, as a local run calls it, as the tasks finish. A task that
    raises (a worker lost, a backend missing on the worker) becomes one ``worker`` failure in
    place of its results, naming the op, backend, dtype and samples.
    """
    from distributed import as_completed

    tick = tick or (lambda label: None)
    if samples_per_task < 1:
        raise refimpl.InputError(
            f"run_on_dask: samples_per_task: expected an integer >= 1, got {samples_per_task!r}"
        )
    layouts, tasks, local_ticks = _tasks(the_plan, samples_per_task)
    for _ in range(local_ticks):
        tick("float64 not checked: no finite differences")
    futures = client.map(check_task, tasks, pure=False)
    index = {future.key: i for i, future in enumerate(futures)}
    done: list[Any] = [None] * len(tasks)
    try:
        for future in as_completed(futures):
            i = index[future.key]
            task = tasks[i]
            try:
                done[i] = future.result()
            except Exception as error:  # raised on the worker, or the worker was lost
                detail = "".join(traceback.format_exception_only(type(error), error)).strip()
                where = (task.op, task.backend, task.dtype, task.what)
                failure = Result(*where, "worker", "fail", detail=detail)
                if task.kind == "samples":  # in the place of the batch's first sample
                    done[i] = [[failure]] + [[] for _ in range(task.stop - task.start - 1)]
                else:
                    done[i] = [failure]
            future.release()
            for _ in range(task.units):
                tick(f"{task.backend} {task.op} {task.kind if task.dtype == '-' else task.dtype}")
    finally:
        client.cancel([f for f in futures if not f.done()])
    results: list[Result] = []
    for layout in layouts:
        for kind, key in layout:
            if kind == "flat":
                results.extend(done[key])
                continue
            per_dtype = [done[k] for k in key]  # one list per sample in each
            for per_sample in zip(*per_dtype, strict=True):
                for sample_results in per_sample:
                    results.extend(sample_results)
    return results


def sweep_client(address: Any = None, *, n_workers: int | None = None) -> Any:
    """:func:`refimpl.dask.cluster_client` for a sweep: an address, a Client, or None (``True``
    too) for ``$REFIMPL_DASK_ADDRESS`` or a local cluster of ``n_workers`` processes (whose
    workers get their share of the CPUs and no profiler: see ``cluster_client``)."""
    from refimpl.dask import cluster_client

    return cluster_client(None if address is True else address, n_workers=n_workers)


def sweep_scaling(
    ops: Sequence[str],
    seeds: int | Sequence[int],
    workers: Sequence[int] = (1, 2),
    *,
    backends: Sequence[str] = ("numpy",),
    dtypes: Sequence[str] = FLOAT_DTYPES,
) -> list[dict[str, Any]]:
    """Time one conformance sweep on local clusters of each size in ``workers``.

    ``seeds`` is a count (seeds 0..N-1) or the seeds themselves. Per cluster size, one row:
    ``startup_s`` (starting the cluster), ``warmup_s`` (the same sweep with one seed: the
    workers import the catalog and load the kernels), ``sweep_s`` (the sweep itself, the
    number that scales), ``speedup`` (the first row's ``sweep_s`` over this one's), the counts
    of tasks and results, ``ok`` (nothing failed) and ``same_as_first`` (the results equal the
    first row's: a sweep gives the same report on any number of workers).
    """
    if isinstance(seeds, int):
        seeds = range(seeds)
    seeds = [int(s) for s in seeds]
    if not seeds or not workers or any(int(n) < 1 for n in workers):
        raise refimpl.InputError(
            "sweep_scaling: expected at least one seed and worker counts >= 1, "
            f"got seeds={seeds[:3]}{'...' if len(seeds) > 3 else ''} and workers={list(workers)}"
        )
    the_plan = plan(backends=list(backends), ops=list(ops), dtypes=list(dtypes), seeds=seeds)
    warm_plan = plan(backends=list(backends), ops=list(ops), dtypes=list(dtypes), seeds=seeds[:1])
    rows: list[dict[str, Any]] = []
    first: str | None = None  # the first row's results, as JSON (NaN equals NaN there)
    for n in workers:
        started = time.perf_counter()
        with sweep_client(n_workers=int(n)) as client:
            startup = time.perf_counter() - started
            started = time.perf_counter()
            run(warm_plan, dask=client)
            warmup = time.perf_counter() - started
            started = time.perf_counter()
            report = run(the_plan, dask=client)
            sweep = time.perf_counter() - started
        results = json.dumps([r.to_dict() for r in report.results], default=float)
        first = results if first is None else first
        rows.append(
            {
                "workers": int(n),
                "ops": list(ops),
                "seeds": len(seeds),
                "tasks": len(_tasks(the_plan, SAMPLES_PER_TASK)[1]),
                "results": len(report.results),
                "startup_s": startup,
                "warmup_s": warmup,
                "sweep_s": sweep,
                "speedup": rows[0]["sweep_s"] / sweep if rows else 1.0,
                "ok": report.ok,
                "same_as_first": results == first,
            }
        )
    return rows
