"""The `refimpl` command: list, show, check, bench.

``refimpl check`` is the main job: the conformance of the reference (against finite
differences) and of every installed backend (against the reference). The conformance
suite and the benchmarks are imported lazily, so the reference itself never depends on
them.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import refimpl

try:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text
except ImportError:  # pragma: no cover - rich is in the cli/test extras
    Console = Table = Text = None


# -- output helpers ---------------------------------------------------------------------
class _Out:
    """Tables and text through rich when installed, plain text otherwise."""

    def __init__(self) -> None:
        width = None if sys.stdout.isatty() else 160
        self.console = Console(highlight=False, soft_wrap=True, width=width) if Console else None

    def print(self, text: str = "", style: str | None = None) -> None:
        if self.console:
            self.console.print(text, style=style, markup=False)
        else:
            print(text)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if self.console:
            table = Table(title=title, title_justify="left")
            for column in columns:
                table.add_column(Text(column), no_wrap=column == "op", overflow="fold")
            for row in rows:
                table.add_row(*(Text(str(c)) for c in row))
            self.console.print(table)
            return
        widths = [max(len(str(c)) for c in [col, *(r[i] for r in rows)]) for i, col in enumerate(columns)]
        print(title)
        print("  ".join(str(c).ljust(w) for c, w in zip(columns, widths, strict=True)))
        for row in rows:
            print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


def _cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _installed_backends(out: _Out) -> list[refimpl.Backend]:
    loaded = []
    for name in refimpl.backends():
        try:
            loaded.append(refimpl.backend(name))
        except ImportError as error:
            out.print(f"note: backend {name} is not importable ({error})")
    return loaded


# -- list / show --------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace, out: _Out) -> int:
    backends = _installed_backends(out)
    rows = []
    for op in refimpl.ops(args.family):
        marks = ["yes" if b.supports(op) else "-" for b in backends]
        diff = ", ".join(op.differentiable) if op.differentiable else "no"
        rows.append([op.name, op.family, op.paper.title, diff, *marks])
    out.table(
        f"{len(rows)} ops; backends: {', '.join(b.name for b in backends)}",
        ["op", "family", "paper", "differentiable", *(b.name for b in backends)],
        rows,
    )
    for backend in backends:
        available, why = backend.available()
        if not available:
            out.print(f"note: {backend.name} is installed but cannot run here: {why}")
    return 0


def _relative_source(op: refimpl.Op) -> str:
    path = Path(op.source_file)
    parts = path.parts
    return str(Path(*parts[parts.index("refimpl") :])) if "refimpl" in parts else str(path)


def cmd_show(args: argparse.Namespace, out: _Out) -> int:
    op = refimpl.get(args.op)
    backends = _installed_backends(out)
    out.print(f"{op.name}{op.signature}", style="bold")
    out.print(f"family:         {op.family}")
    out.print(f"paper:          {op.paper}")
    if op.paper.code:
        out.print(f"official code:  {op.paper.code}")
    out.print(f"differentiable: {', '.join(op.differentiable) or 'no (compared on outputs only)'}")
    out.print(f"outputs:        {', '.join(op.outputs)}")
    out.print(f"source:         {_relative_source(op)}")
    out.print(f"backends:       {', '.join(b.name for b in backends if b.supports(op))}")
    out.print("")
    out.print(inspect.cleandoc(op.__doc__ or ""))
    if op.deviations:
        out.print("")
        out.print(f"Known deviations of official code ({len(op.deviations)}):", style="bold")
        for deviation in op.deviations:
            out.print(f"* {deviation.name} [{deviation.kind}] — {deviation.source}")
            out.print(f"    official: {deviation.official}")
            out.print(f"    paper:    {deviation.paper}")
            if deviation.flag:
                out.print(f"    refimpl reproduces it with {deviation.flag_text()}")
            if deviation.example is not None:
                example = deviation.example
                out.print(
                    f"    example:  official {dict(example.official)}, refimpl {dict(example.reference)}"
                )
    if args.plot:
        return _plot(args, out, op)
    return 0


def _plot(args: argparse.Namespace, out: _Out, op: refimpl.Op) -> int:
    if not op.is_differentiable:
        out.print(f"\n{op.name} is not differentiable: there is no gradient to plot", style="red")
        return 2
    try:
        from refimpl_conformance.plot import plot_op
    except ImportError as error:  # pragma: no cover - the conformance package ships with refimpl
        out.print(f"\n--plot needs refimpl_conformance: {error}", style="red")
        return 2
    try:
        drawn = plot_op(op.name, args.plot)
    except ImportError:
        out.print('\n--plot needs matplotlib: pip install "refimpl[docs]"', style="red")
        return 2
    out.print("")
    out.print(f"Plot written to {args.plot}: {drawn.caption()}")
    return 0


def cmd_deviations(args: argparse.Namespace, out: _Out) -> int:
    records = [d for name in (args.op or [None]) for d in refimpl.deviations(name)]
    if args.json:
        Path(args.json).write_text(json.dumps([d.to_dict() for d in records], indent=1))
        out.print(f"{len(records)} deviations written to {args.json}")
    rows = [[d.op, d.name, d.kind, d.flag_text() or "-", d.source, d.official] for d in records]
    out.table(
        f"{len(records)} known deviations of official code (`refimpl show OP`: the paper's side, an example)",
        ["op", "deviation", "kind", "flag", "source", "official code"],
        rows,
    )
    return 0


# -- check ------------------------------------------------------------------------------
def _show_sample(args: argparse.Namespace, out: _Out) -> None:
    """Print the sample a repro command names: its inputs, the cotangents the VJP is checked
    with, and the reference's outputs and VJP with the allowed error of each."""
    precision = 17 if args.dtype == ["float64"] else 9
    with np.printoptions(precision=precision, threshold=200):
        for op_name in args.op or []:
            _show_one_sample(args, out, op_name)


def _show_one_sample(args: argparse.Namespace, out: _Out, op_name: str) -> None:
    from refimpl_conformance import cases_for
    from refimpl_conformance._engine import expected_values

    op, cases = refimpl.get(op_name), cases_for(op_name)
    if args.seed is not None:
        sample = cases.random_sample(args.seed, args.dims)
    else:
        sample = next(s for s in cases.edges() if s.name == args.sample)
    out.print(f"# {op_name} sample {sample.name!r} {sample.comment}")
    for dtype in args.dtype:
        if dtype not in sample.dtypes:
            out.print(f"(not run in {dtype})")
            continue
        expected = expected_values(op, cases, sample, dtype)
        bound = op.signature.bind(*expected.args, **expected.kwargs)
        for name, value in bound.arguments.items():
            if isinstance(value, np.ndarray):
                out.print(f"{name} ({dtype}) = {value!r}")
        params = {k: v for k, v in bound.arguments.items() if not isinstance(v, np.ndarray)}
        out.print(f"params = {params!r}")
        for name, cotangent in zip(op.outputs, expected.cotangents, strict=True):
            if cotangent is not None and op.is_differentiable:
                out.print(f"cotangent of output {name!r} ({dtype}) = {cotangent!r}")
        for label, value in {**expected.outputs, **expected.grads}.items():
            allowed = expected.allowed.get(label)
            worst = None if allowed is None else np.max(allowed, initial=0)
            bound_text = "" if worst is None else f"  (allowed error up to {worst:.3g})"
            out.print(f"reference {label} = {np.asarray(value)!r}{bound_text}")


def _parse_dims(text: str) -> dict[str, int]:
    """``B=4,n=1`` -> {"B": 4, "n": 1} (the dimensions a repro line names)."""
    try:
        return {key.strip(): int(value) for key, value in (part.split("=") for part in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=INT[,NAME=INT...], got {text!r}") from None


def _parse_seeds(text: str) -> int | range:
    """``--seeds``: ``N`` -> N (seeds 0..N-1; with --impl, how many supported samples to run),
    ``A:B`` -> range(A, B) (seeds A..B-1, a sweep's slice)."""
    start, colon, stop = text.partition(":")
    try:
        if not colon:
            count = int(text)
            if count < 0:
                raise ValueError
            return count
        first, end = int(start), int(stop)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected N (seeds 0..N-1, N >= 0) or A:B (seeds A..B-1, 0 <= A < B), got {text!r}"
        ) from None
    if first < 0 or end <= first:
        raise argparse.ArgumentTypeError(
            f"expected A:B with 0 <= A < B (seeds A..B-1), got {text!r}: "
            + ("a seed is never negative" if first < 0 else "it names no seed")
        )
    return range(first, end)


def _parse_argmap(text: str) -> dict[str, str | None]:
    """``z_student=student_logits,scale=`` -> {"z_student": "student_logits", "scale": None}."""
    mapping: dict[str, str | None] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"expected OP_ARG=YOUR_ARG[,...], got {part!r}")
        mapping[key.strip()] = value.strip() or None
    return mapping


def _check_impl(args: argparse.Namespace, out: _Out):
    """``--impl``: check a user's function (PKG.MOD:FN, with one --op) or a module whose
    functions are named after ops (or that maps op names to functions in ``REFIMPL``)."""
    from refimpl_conformance import Report
    from refimpl_conformance.adapters import MIN_RANDOM, check, import_module, load_function

    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, "")  # like `python -m`: the current folder's modules are importable
    if ":" in args.impl:
        if not args.op or len(args.op) != 1:
            raise KeyError("--impl PKG.MOD:FN checks one op: give exactly one --op")
        targets = {args.op[0]: load_function(args.impl)}
    else:
        module = import_module(args.impl)
        mapping = getattr(module, "REFIMPL", None)
        if mapping is None:
            mapping = {op.name: getattr(module, op.name) for op in refimpl.ops() if hasattr(module, op.name)}
        targets = {name: fn for name, fn in mapping.items() if not args.op or name in args.op}
        if not targets:
            raise KeyError(f"module {args.impl} defines no function named after an op (or a REFIMPL dict)")
    vjp = load_function(args.vjp) if args.vjp else None
    report = Report()
    for op_name, fn in targets.items():
        refimpl.get(op_name)
        part = check(
            op_name,
            fn,
            framework=args.framework,
            vjp=vjp,
            dtypes=args.dtype,
            argmap=args.argmap,
            no_grad=args.no_grad or (),
            forward_only=args.forward_only,
            seeds=[args.seed] if args.seed is not None else _seed_range(args),
            min_random=args.seeds if isinstance(args.seeds, int) else MIN_RANDOM,
            sample_name=args.sample,
            dims=args.dims,
            edges=args.seed is None,  # a repro by seed: that random sample only
        )
        report.results.extend(part.results)
        report.warnings.extend(part.warnings)
        report.recognized.extend(part.recognized)
    return report


def _check_vectors(args: argparse.Namespace) -> Any:
    """``--vectors DIR``: check an implementation against exported vectors (no reference run)."""
    from refimpl_conformance import Report
    from refimpl_conformance.adapters import load_function, wrap
    from refimpl_conformance.vectors import check_vectors

    report = Report()
    if args.impl:
        if ":" not in args.impl or not args.op or len(args.op) != 1:
            raise KeyError("--vectors with --impl takes PKG.MOD:FN and exactly one --op")
        vjp = load_function(args.vjp) if args.vjp else None
        backend = wrap(args.op[0], load_function(args.impl), framework=args.framework, vjp=vjp)
        return check_vectors(args.vectors, backend, ops=args.op)
    for name in args.backend or ["numpy"]:
        part = check_vectors(args.vectors, refimpl.backend(name), ops=args.op)
        report.results.extend(part.results)
        report.notes.extend(part.notes)
    return report


def cmd_check(args: argparse.Namespace, out: _Out) -> int:
    if args.dask is not None and (args.impl or args.vectors):
        out.print("refimpl: --dask checks the backends, not --impl or --vectors", style="red")
        return 2
    if args.dask_workers is not None and args.dask is None:
        out.print("refimpl: --dask-workers sizes the local cluster of --dask; give --dask too", style="red")
        return 2
    if args.vectors:
        return _print_report(args, out, _check_vectors(args))
    if args.impl:
        report = _check_impl(args, out)
        if args.show:
            _show_sample(args, out)
        return _print_report(args, out, report)
    from refimpl_conformance import plan

    if args.dask_workers is not None and args.dask_workers < 1:
        out.print(f"refimpl: --dask-workers: expected an integer >= 1, got {args.dask_workers}", style="red")
        return 2
    if args.dask is not None:
        try:
            import distributed  # noqa: F401
        except ImportError:
            out.print(
                "refimpl: --dask needs Dask's distributed scheduler: pip install 'refimpl[dask]'",
                style="red",
            )
            return 2
    if args.seed is not None:
        seeds = [args.seed]
    else:
        seeds = list(_seed_range(args) or range(args.seeds))
    the_plan = plan(
        backends=args.backend,
        ops=args.op,
        dtypes=args.dtype,
        seeds=seeds,
        sample_name=args.sample,
        edges=args.seed is None,  # a repro by seed: that random sample only
        dims=args.dims,
    )
    if args.show:
        _show_sample(args, out)
    if args.dask is None:
        return _print_report(args, out, _run_check(args, out, the_plan, None))
    from refimpl_conformance._dask import sweep_client

    with sweep_client(args.dask, n_workers=args.dask_workers) as client:
        workers = client.nthreads()
        threads = sorted(set(workers.values()))
        out.print(
            f"dask: scheduler {client.scheduler.address}, {len(workers)} worker(s), "
            f"{'/'.join(map(str, threads)) or 0} thread(s) each"
        )
        report = _run_check(args, out, the_plan, client)
    return _print_report(args, out, report)


def _seed_range(args: argparse.Namespace) -> list[int] | None:
    """The seeds of ``--seeds A:B``; None for ``--seeds N``."""
    return list(args.seeds) if isinstance(args.seeds, range) else None


def _run_check(args: argparse.Namespace, out: _Out, the_plan: Any, client: Any) -> Any:
    """Run the plan here (``-j``) or on the Dask ``client``, with a progress bar unless quiet."""
    from refimpl_conformance import run

    total = the_plan.size()
    if out.console is not None and not args.quiet:
        from rich.progress import Progress

        with Progress(console=out.console, transient=True) as progress:
            task = progress.add_task("conformance", total=total)
            return run(
                the_plan,
                progress=lambda label: progress.update(task, advance=1, description=label),
                jobs=args.jobs,
                dask=client,
            )
    return run(the_plan, jobs=args.jobs, dask=client)


def _print_report(args: argparse.Namespace, out: _Out, report) -> int:
    rows = []
    for row in report.summary():
        rows.append(
            [
                row["backend"],
                row["op"],
                row["passed"],
                row["failed"],
                row["inaccurate"],
                row["skipped"],
                f"{row['worst_ratio_float64']:.2g}",
                f"{row['worst_ratio_float32']:.2g}",
            ]
        )
    out.table(
        "refimpl conformance (worst error / allowed error: 1 is the limit)",
        ["backend", "op", "passed", "failed", "inaccurate", "skipped", "err/allowed f64", "err/allowed f32"],
        rows,
    )
    for note in report.notes:
        out.print(f"note: {note}")
    skips: dict[str, list[str]] = {}
    for result in report.skipped:  # grouped by reason; the JSON report has each one in full
        why = (result.detail or "no reason given").split(" (")[0]
        skips.setdefault(why, []).append(result.op)
    for why, ops in sorted(skips.items(), key=lambda item: -len(item[1])):
        names = sorted(set(ops))
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        out.print(f"skipped {len(ops)}: {why} ({shown})")
    for warning in report.warnings:
        out.print(f"WARNING {warning}", style="yellow")
    for name in report.recognized:
        out.print(
            f"KNOWN DEVIATION reproduced: {name} (`refimpl deviations` and `refimpl show OP` describe it)"
        )
    for failure in [*report.failures, *report.inaccurate]:
        word = "FAIL" if failure.status == "fail" else "INACCURATE"
        out.print(
            f"{word} {failure.check} {failure.backend} {failure.op} {failure.dtype} [{failure.sample}]: "
            f"{failure.detail}",
            style="red" if failure.status == "fail" else "yellow",
        )
        if failure.repro:
            out.print(f"     repro: {failure.repro}")
    if args.json:
        Path(args.json).write_text(report.to_json())
        out.print(f"report written to {args.json}")
    failed, inaccurate, skipped = len(report.failures), len(report.inaccurate), len(report.skipped)
    passed = len(report.results) - failed - inaccurate - skipped
    if passed + failed + inaccurate == 0:
        out.print("nothing was checked", style="red")
        _print_not_run(args, out, report)
        return 1
    summary = f"{passed} passed, {failed} failed"
    summary += f", {inaccurate} inaccurate" if inaccurate else ""
    summary += f", {skipped} skipped" if skipped else ""
    summary += f", {len(report.warnings)} warning(s)" if report.warnings else ""
    bad = failed or inaccurate or report.warnings
    out.print(summary, style="red" if bad else "green")
    _print_not_run(args, out, report)
    return 1 if bad else 0


GPU_SCRIPT = "benchmarks/gpu.sh"  # in refimpl's repository: runs what a check without a GPU cannot


def _print_not_run(args: argparse.Namespace, out: _Out, report) -> None:
    """The code of the chosen ops that only a device runs, which this machine could not (a
    GPU backend without a GPU): a passing check here says nothing about it. ``--quiet``
    counts it in one line."""
    if not report.not_run:
        return
    backends = list(dict.fromkeys(entry["backend"] for entry in report.not_run))
    if args.quiet:
        ops = {op for entry in report.not_run for op in entry["ops"]}
        out.print(
            f"not run here (needs a CUDA device): {len(report.not_run)} kernel(s) of {', '.join(backends)} "
            f"used by {len(ops)} op(s), listed without --quiet; {GPU_SCRIPT} runs them on a GPU",
            style="yellow",
        )
        return
    out.print("not run here (needs a CUDA device):", style="yellow")
    for entry in report.not_run:
        out.print(f"  {', '.join(entry['ops'])} — {entry['code']} [{entry['backend']}]")
    for backend in backends:
        checks = [r for r in report.results if r.check == "self-check" and r.backend == backend]
        if checks:
            passed = sum(r.status == "pass" for r in checks)
            out.print(
                f"  ran here instead: {backend}'s self-checks {', '.join(r.sample for r in checks)} "
                f"({passed} of {len(checks)} passed)"
            )
    out.print(f"  {GPU_SCRIPT} runs them on a machine with a GPU")


# -- export-vectors -----------------------------------------------------------------------
def cmd_export(args: argparse.Namespace, out: _Out) -> int:
    from refimpl_conformance.vectors import export_vectors

    for name in args.op or []:
        refimpl.get(name)
    from refimpl_conformance import all_cases

    skipped: dict[str, str] = {}
    paths = export_vectors(args.directory, args.op or sorted(all_cases()), list(range(args.seeds)), skipped)
    for name, why in skipped.items():
        out.print(f"{name}: no vectors ({why})")
    for path in paths:
        tests = json.loads(path.read_text())["numberOfTests"]
        out.print(f"{path.name}: {tests} tests")
    out.print(f"{len(paths)} ops written to {args.directory} (schema refimpl-vectors/2)")
    return 0


# -- bench ------------------------------------------------------------------------------
def cmd_bench(args: argparse.Namespace, out: _Out) -> int:
    if args.dask:
        return _bench_dask(args, out)
    if args.frameworks:
        return _bench_frameworks(args, out)
    from refimpl_conformance.bench import bench, bench_case, bench_ops

    ops = args.op or bench_ops()
    unknown = [name for name in ops if bench_case(name) is None]
    if unknown:
        out.print(f"no benchmark for {', '.join(unknown)}; benchmarks exist for {', '.join(bench_ops())}")
        return 2
    shape = tuple(int(n) for n in args.shape.lower().split("x"))
    report = bench(
        ops,
        args.backend,
        shape,
        args.dtype,
        args.repeat,
        torch_baseline=not args.no_torch,
        min_time=args.min_time,
    )
    header = _bench_header(report)
    for line in header:
        out.print(line)
    columns = [
        "op",
        "backend",
        "ms",
        "±",
        "first call ms",
        "vs numpy",
        "vs torch",
        "GB/s",
        "of copy bw",
        "roofline ms",
        "of roofline",
    ]
    rows = [_bench_row(r) for r in report.results]
    title = (
        f"forward+backward, {args.shape} {args.dtype}: median of ≥ {args.repeat} runs "
        f"and ≥ {args.min_time} s; "
        "± is half the interquartile range; ratios are speed-ups (higher is faster)"
    )
    out.table(title, columns, rows)
    for note in report.notes:
        out.print(f"note: {note}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "copy_gbps": report.copy_gbps,
                    "copy_method": report.copy_method,
                    "threads": report.threads,
                    "exp_ns": report.exp_ns,
                    "dtype": report.dtype,
                    "repeat": report.repeat,
                    "min_time": report.min_time,
                    "device": report.device,
                    "device_copy_gbps": report.device_copy_gbps,
                    "results": [r.to_dict() for r in report.results],
                    "notes": report.notes,
                },
                indent=1,
            )
        )
    if args.markdown:
        Path(args.markdown).write_text(bench_markdown(report))
    return 0


DASK_SWEEP_OPS = ("z_loss", "layer_norm", "stablemax_cross_entropy")


def _bench_dask(args: argparse.Namespace, out: _Out) -> int:
    """Scaling from 1 to N local workers: a conformance sweep and a dataset-scale score; and
    the peak memory of a merge of file-backed models."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        out.print("refimpl bench --dask needs Dask: pip install 'refimpl[dask]'", style="red")
        return 2
    from refimpl.dask._bench import score_scaling
    from refimpl.dask.merging import merge_memory
    from refimpl_conformance._dask import sweep_scaling

    workers = [int(n) for n in args.dask_workers.split(",")]
    ops = args.op or list(DASK_SWEEP_OPS)
    sweep = sweep_scaling(ops, args.sweep_seeds, workers)
    out.table(
        f"conformance sweep: {', '.join(ops)} on numpy, seeds 0:{args.sweep_seeds}, float64 and float32",
        ["workers", "tasks", "results", "cluster start s", "warm-up s", "sweep s", "speed-up", "same report"],
        [
            [r["workers"], r["tasks"], r["results"], f"{r['startup_s']:.1f}", f"{r['warmup_s']:.1f}",
             f"{r['sweep_s']:.2f}", f"{r['speedup']:.2f}×", "yes" if r["same_as_first"] else "NO"]
            for r in sweep
        ],
    )  # fmt: skip
    score = score_scaling(examples=args.score_examples, workers=workers)
    out.table(
        f"el2n_score over {args.score_examples:,} examples × {score[0]['classes']} classes (float32, "
        f"{score[0]['bytes'] / 2**20:.0f} MiB in the workers' memory), chunks of {score[0]['chunk']:,}",
        ["workers", "cluster start s", "load s", "score s", "GB/s", "speed-up"],
        [
            [r["workers"], f"{r['cluster_start_s']:.1f}", f"{r['load_s']:.1f}", f"{r['seconds']:.2f}",
             f"{r['gb_per_s']:.2f}", f"{r['speedup']:.2f}×"]
            for r in score
        ],
    )  # fmt: skip
    model, chunk = args.merge_model_mib * 2**20, args.merge_chunk_mib * 2**20
    memory = merge_memory(model, chunk, models=3, threads=2, limit_bytes=args.merge_limit_mib * 2**20)
    out.table(
        "uniform soup of 3 file-backed float32 models (refimpl.dask.merge), 2 threads",
        ["model MiB", "chunk MiB", "address-space limit MiB", "peak MiB", "bound MiB", "s", "checked"],
        [
            [args.merge_model_mib, args.merge_chunk_mib, args.merge_limit_mib,
             f"{memory['peak_bytes'] / 2**20:.0f}", f"{memory['bound_bytes'] / 2**20:.0f}",
             f"{memory['seconds']:.1f}", "yes" if memory["checked"] else "NO"]
        ],
    )  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"sweep": sweep, "score": score, "merge": memory}, indent=1))
    return 0


def _bench_frameworks(args: argparse.Namespace, out: _Out) -> int:
    """Per-call cost of refimpl.to_torch / refimpl.to_jax over the same work on NumPy arrays."""
    from refimpl_conformance.frameworks import wrapper_overhead

    shape = tuple(int(n) for n in args.shape.lower().split("x"))
    rows = []
    for name in args.op or ["layer_norm"]:
        rows += wrapper_overhead(name, sizes=((8, 16), shape), repeat=args.repeat, dtype=args.dtype)
    out.table(
        f"forward+backward per call, {args.dtype}: the wrapped op against refimpl.vjp + pullback "
        "on NumPy arrays",
        ["op", "framework", "shape", "NumPy ms", "wrapped ms", "overhead ms", "ratio"],
        [
            [r["op"], r["framework"], r["shape"], f"{r['numpy_s'] * 1e3:.3g}",
             f"{r['median_s'] * 1e3:.3g}", f"{r['overhead_s'] * 1e3:+.3g}", f"{r['ratio']:.2f}×"]
            for r in rows
        ],
    )  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


def _ms(value: float) -> str:
    return f"{value:.3g}" if value < 10 else f"{value:.0f}" if value >= 1000 else f"{value:.1f}"


def bench_markdown(report) -> str:
    """One Markdown row per op: the reference, the fastest other backend (its spread, its
    time with ``out=`` buffers where it takes them), PyTorch, the ratios, and the fastest
    backend's bandwidth and share of the roofline."""
    by_op: dict[str, dict[str, Any]] = {}
    for r in report.results:
        by_op.setdefault(r.op, {})[r.backend] = r
    lines = [
        "| op | NumPy ms | fast ms | ± | with out= | PyTorch ms | vs NumPy | vs PyTorch | GB/s | of copy bw "
        "| roofline ms | of roofline |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for op, rows in by_op.items():
        numpy_row, torch_row = rows.get("numpy"), rows.get("torch-cpu")
        fast = [r for name, r in rows.items() if name not in ("numpy", "torch-cpu") and "(out=)" not in name]
        if not fast:  # a routine only a GPU backend implements fast: the reference alone here
            cells = [f"`{op}`", _ms(numpy_row.median_ms), "— (GPU only)", "", "—"]
            cells += [_ms(torch_row.median_ms) if torch_row else "—", "—", "—", "—", "—"]
            cells += [_ms(numpy_row.roofline_ms), f"{100 * numpy_row.of_roofline:.0f}% (NumPy)"]
            lines.append("| " + " | ".join(cells) + " |")
            continue
        best = min(fast, key=lambda r: r.median_ms)
        out_row = rows.get(f"{best.backend} (out=)")
        cells = [
            f"`{op}`",
            _ms(numpy_row.median_ms) if numpy_row else "—",
            f"{_ms(best.median_ms)} ({best.backend})",
            f"{100 * best.spread:.0f}%",
            _ms(out_row.median_ms) if out_row else "—",
            _ms(torch_row.median_ms) if torch_row else "—",
            f"{best.vs_numpy:.2f}×" if best.vs_numpy else "—",
            f"{best.vs_torch:.2f}×" if best.vs_torch else "—",
            f"{best.gbps:.1f}",
            f"{100 * best.fraction_of_copy:.0f}%"
            + (f" ({100 * out_row.fraction_of_copy:.0f}%)" if out_row else ""),
            _ms(best.roofline_ms),
            f"{100 * best.of_roofline:.0f}%",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join([*(f"{line}  " for line in _bench_header(report)), "", *lines]) + "\n"


def _bench_header(report) -> list[str]:
    lines = [
        f"copy bandwidth {report.copy_gbps:.1f} GB/s ({report.copy_method}); {report.threads} threads; "
        f"NumPy {report.dtype} exp {report.exp_ns:.2f} ns/element on one thread"
    ]
    if report.device_copy_gbps:
        lines.append(
            f"GPU: {report.device}, copy bandwidth {report.device_copy_gbps:.0f} GB/s (GPU rows use it)"
        )
    return lines


def _bench_row(r) -> list[str]:
    return [
        r.op,
        r.backend,
        f"{r.median_ms:.2f}",
        f"{100 * r.spread:.0f}%",
        f"{r.first_call_ms:.1f}",
        f"{r.vs_numpy:.2f}x" if r.vs_numpy else "-",
        f"{r.vs_torch:.2f}x" if r.vs_torch else "-",
        f"{r.gbps:.1f}",
        f"{100 * r.fraction_of_copy:.0f}%",
        f"{r.roofline_ms:.2f}",
        f"{100 * r.of_roofline:.0f}%",
    ]


# -- entry point --------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="refimpl",
        description="Reference implementations of deep-learning routines, and their conformance.",
    )
    parser.add_argument("--version", action="version", version=f"refimpl {refimpl.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    listing = sub.add_parser("list", help="the catalog's ops and which backends implement them")
    listing.add_argument("--family", help="only this family (losses, layers, ...)")
    listing.set_defaults(run=cmd_list)

    show = sub.add_parser("show", help="an op's paper, math, derivation, signature and source")
    show.add_argument("op")
    show.add_argument(
        "--plot",
        metavar="FILE",
        help="also draw the forward and its gradient along one input into FILE (PNG or SVG, with matplotlib)",
    )
    show.set_defaults(run=cmd_show)

    deviations = sub.add_parser("deviations", help="known deviations of the papers' official code")
    deviations.add_argument("--op", action="append", help="only this op's (repeatable)")
    deviations.add_argument("--json", help="also write them, with their examples, to this JSON file")
    deviations.set_defaults(run=cmd_deviations)

    check = sub.add_parser("check", help="conformance of the reference and the installed backends")
    check.add_argument("--backend", action="append", help="backend(s) to check (default: all installed)")
    check.add_argument("--op", action="append", help="op(s) to check (default: all with cases)")
    check.add_argument("--dtype", action="append", choices=["float64", "float32"], help="default: both")
    check.add_argument(
        "--seeds",
        type=_parse_seeds,
        default=5,
        metavar="N|A:B",
        help="random samples per op: N for seeds 0..N-1 (default 5; with --impl, the supported ones "
        "to run per dtype), A:B for seeds A..B-1 (a sweep: --seeds 0:10000 --dask)",
    )
    check.add_argument("--seed", type=int, help="only the random sample of this seed (a repro)")
    check.add_argument(
        "--dims",
        type=_parse_dims,
        help="with --seed: these dimensions instead of those the seed draws, e.g. B=4,n=1",
    )
    check.add_argument("--sample", help="only the edge case of this name (a repro)")
    check.add_argument(
        "--show",
        action="store_true",
        help="print the sample's arrays, its cotangents, and the reference's outputs and VJP",
    )
    check.add_argument("--json", help="write the full report to this JSON file")
    check.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=_cpu_count(),
        help="check the ops in this many processes, which compile kernels side by side "
        "(default: this machine's CPUs, %(default)s)",
    )
    check.add_argument(
        "--dask",
        nargs="?",
        const=True,
        metavar="ADDRESS",
        help="run the checks on a Dask cluster: the scheduler at ADDRESS (tcp://HOST:8786), or with no "
        "ADDRESS $REFIMPL_DASK_ADDRESS, else a local cluster; the report is a local run's "
        "(pip install 'refimpl[dask]')",
    )
    check.add_argument(
        "--dask-workers",
        type=int,
        metavar="N",
        help="with --dask and no cluster to connect to: the local cluster's worker processes "
        "(default: one per CPU)",
    )
    check.add_argument(
        "--quiet", action="store_true", help="no progress bar; the code not run here counted in one line"
    )
    check.add_argument(
        "--impl",
        help="check your own implementation instead of the backends: PKG.MOD:FN (with one --op), "
        "or PKG.MOD whose functions are named after ops (or a REFIMPL dict op -> function)",
    )
    check.add_argument(
        "--vectors", help="check against vectors exported by `refimpl export-vectors` in this folder"
    )
    check.add_argument(
        "--framework",
        default="numpy",
        choices=["numpy", "torch", "jax", "cupy"],
        help="the framework of --impl (its autograd gives the VJP; default numpy)",
    )
    check.add_argument(
        "--vjp", help="PKG.MOD:FN: the VJP of a NumPy/CuPy --impl, vjp(cotangents, **arguments)"
    )
    check.add_argument(
        "--argmap",
        type=_parse_argmap,
        help="with --impl: the op's argument names to yours where they differ and cannot be matched "
        "by position, e.g. z_student=student_logits,T=temperature (NAME= : your function does not take it)",
    )
    check.add_argument(
        "--forward-only",
        action="store_true",
        help="with --impl: your function has no backward; check its outputs only",
    )
    check.add_argument(
        "--no-grad",
        action="append",
        metavar="ARG",
        help="with --impl: your function treats this differentiable input as a constant "
        "(a detached teacher); its cotangent is not compared (repeatable)",
    )
    check.set_defaults(run=cmd_check)

    export = sub.add_parser("export-vectors", help="write portable golden test vectors (JSON + .npz) per op")
    export.add_argument("directory")
    export.add_argument("--op", action="append", help="op(s) to export (default: all with cases)")
    export.add_argument("--seeds", type=int, default=5, help="random samples per op (default 5)")
    export.set_defaults(run=cmd_export)

    bench = sub.add_parser(
        "bench",
        help="forward+backward timings against the reference, PyTorch and this machine's limits",
    )
    bench.add_argument("--backend", action="append", help="backend(s) to time (default: all installed)")
    bench.add_argument("--op", action="append", help="op(s) to time (default: all with benchmarks)")
    bench.add_argument("--shape", default="8192x1024", help="input shape ROWSxCOLS (default: %(default)s)")
    bench.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "float64"],
        help="float dtype (default: %(default)s)",
    )
    bench.add_argument(
        "--repeat", type=int, default=10, help="timed runs at least, after warm-up (default: %(default)s)"
    )
    bench.add_argument(
        "--min-time", type=float, default=0.5, help="seconds of timed runs at least (default: %(default)s)"
    )
    bench.add_argument("--no-torch", action="store_true", help="skip the PyTorch baseline (default: run it)")
    bench.add_argument("--json", help="write the results to this JSON file")
    bench.add_argument("--markdown", help="write the table to this Markdown file")
    bench.add_argument(
        "--dask",
        action="store_true",
        help="instead: scaling over local Dask workers (a conformance sweep, a dataset-scale score) and "
        "the peak memory of a file-backed merge (needs the dask extra)",
    )
    bench.add_argument(
        "--dask-workers", default="1,2", help="with --dask: the worker counts (default: %(default)s)"
    )
    bench.add_argument(
        "--sweep-seeds", type=int, default=400, help="with --dask: seeds of the sweep (default: %(default)s)"
    )
    bench.add_argument(
        "--score-examples",
        type=int,
        default=2_000_000,
        help="with --dask: examples of the score (default: %(default)s)",
    )
    bench.add_argument(
        "--merge-model-mib", type=int, default=1024, help="with --dask: MiB per model (default: %(default)s)"
    )
    bench.add_argument(
        "--merge-chunk-mib", type=int, default=32, help="with --dask: chunk MiB (default: %(default)s)"
    )
    bench.add_argument(
        "--merge-limit-mib",
        type=int,
        default=512,
        help="with --dask: the merge's address-space allowance above its imports (default: %(default)s)",
    )
    bench.add_argument(
        "--frameworks",
        action="store_true",
        help="instead: the per-call cost of refimpl.to_torch and refimpl.to_jax (--op, default layer_norm; "
        "sizes 8x16 and --shape)",
    )
    bench.set_defaults(run=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "dtype", None) is None and args.command == "check":
        args.dtype = ["float64", "float32"]
    out = _Out()
    try:
        return args.run(args, out)
    except (refimpl.UnknownOpError, refimpl.UnknownBackendError, KeyError) as error:
        out.print(f"refimpl: {error}", style="red")
        return 2
    except ValueError as error:  # --impl naming a module or function that is not there
        from refimpl_conformance.adapters import ImportSpecError

        if not isinstance(error, ImportSpecError):
            raise
        out.print(f"refimpl: {error}", style="red")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
