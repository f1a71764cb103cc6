"""Sphinx extension: the site's op, family and paper pages, generated from the registry.

At ``builder-inited`` it writes ``generated/`` under the source directory: one page per op
(signature, paper and official code, backends, the plot, the docstring as written, known
deviations, the reference/Numba/CuPy/cases sources in tabs, conformance tables, the
properties the project's own tests assert, golden vectors), one page per family and per
paper, and the indexes. Adding an op to the registry adds its page; nothing here names an op.

``-D refimpl_docs_ops=z_loss,lion_step`` limits the build to those ops (the quick build the
test run does); by default every op in ``refimpl list`` gets its page. Plots and vectors are
kept between builds and redrawn when a source file of the op is newer.
"""

from __future__ import annotations

import inspect
import os
import re
import textwrap
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

GENERATED = "generated"
FAMILY_TITLES = {
    "losses": "Losses",
    "reweighting": "Sample reweighting",
    "regularizers": "Regularizers",
    "layers": "Layers and reparameterizations",
    "adapters": "Adapters",
    "merging": "Model merging",
    "optim": "Optimizer steps",
    "data_selection": "Data selection",
    "quantization_sparsity": "Quantization and sparsity",
    "solvers": "Solvers",
    "transport": "Optimal transport",
    "structure_learning": "Structure learning",
    "other": "Other routines",
}


# -- helpers ------------------------------------------------------------------------------
def _write(path: Path, text: str) -> None:
    """Write only when the text changed, so Sphinx rebuilds only what changed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _title(text: str, char: str = "=") -> str:
    return f"{text}\n{char * max(len(text), 3)}\n"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:80] or "paper"


def paper_slug(paper: Any) -> str:
    return f"arxiv-{paper.arxiv.replace('/', '-')}" if paper.arxiv else _slug(paper.title)


def _indent(text: str, by: int) -> str:
    return textwrap.indent(text, " " * by, lambda line: True)


def _literal(text: str) -> str:
    """Text for an inline literal (no escapes there: only its ends must not be blank or ``)."""
    return text.strip().replace("``", "`\u200b`") or "—"


def _rst_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("`", "\\`").replace("|", "\\|")


def code_link(code: str) -> str:
    """A link to the official repository (``owner/name`` on GitHub, the rest as a note)."""
    repo, _, note = code.partition(" ")
    url = repo if repo.startswith("http") else f"https://github.com/{repo}"
    return f"`{repo} <{url}>`__" + (f" {_rst_escape(note)}" if note else "")


def _table(header: list[str], rows: list[list[str]], widths: str = "auto") -> str:
    """A list-table (cells are rst inline text)."""
    out = [".. list-table::", "   :header-rows: 1", f"   :widths: {widths}", ""]
    for row in [header, *rows]:
        out.append("   * - " + (row[0] or " "))
        out.extend(f"     - {cell or ' '}" for cell in row[1:])
    return "\n".join(out) + "\n"


def _relpath(target: str | Path, start: Path) -> str:
    return os.path.relpath(Path(target).resolve(), start.resolve()).replace(os.sep, "/")


def _docstring_rst(doc: str, app) -> str:
    """The docstring as written, its Google-style sections turned into reST (napoleon)."""
    from sphinx.ext.napoleon import Config
    from sphinx.ext.napoleon.docstring import GoogleDocstring

    config = Config(napoleon_use_param=False, napoleon_use_rtype=False)
    text = str(GoogleDocstring(inspect.cleandoc(doc), config))
    if _parses_cleanly(text):
        return text
    # not valid reST (a |z| read as a substitution, say): shown verbatim, as `refimpl show` does
    return "::\n\n" + _indent(inspect.cleandoc(doc), 4)


def _parses_cleanly(text: str) -> bool:
    """Whether docutils reads ``text`` without a warning or an error."""
    import io

    from docutils.core import publish_doctree
    from docutils.utils import Reporter

    stream = io.StringIO()
    try:
        tree = publish_doctree(
            text,
            settings_overrides={
                "report_level": Reporter.WARNING_LEVEL,
                "halt_level": 5,
                "warning_stream": stream,
            },
        )
    except Exception:  # noqa: BLE001 - anything docutils cannot read is shown verbatim
        return False
    messages = [m for m in tree.findall() if m.tagname == "system_message" and int(m["level"]) >= 2]
    return not messages and not stream.getvalue()


def _backend_source(backend: Any, name: str) -> str | None:
    if not backend.supports(name):
        return None
    try:
        return inspect.getsourcefile(backend.impl(name).forward)
    except TypeError:
        return None


# -- plots and vectors (built once, redrawn when a source changes) -----------------------
def _stale(target: Path, sources: list[str]) -> bool:
    if not target.exists():
        return True
    built = target.stat().st_mtime
    return any(Path(s).stat().st_mtime > built for s in sources if s and Path(s).exists())


def _draw(job: tuple[str, str]) -> tuple[str, str | None, str]:
    name, path = job
    from refimpl_conformance.plot import plot_op

    try:
        return name, plot_op(name, path).caption(), ""
    except Exception as error:  # noqa: BLE001 - reported on the page and by the build
        return name, None, f"{type(error).__name__}: {error}"


def _captions_file(plots: Path) -> Path:
    return plots / "captions.txt"


def _read_captions(plots: Path) -> dict[str, str]:
    path = _captions_file(plots)
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        name, _, caption = line.partition("\t")
        out[name] = caption
    return out


def _build_plots(
    ops: list[Any], plots: Path, sources: dict[str, list[str]], jobs: int, logger
) -> dict[str, str]:
    plots.mkdir(parents=True, exist_ok=True)
    captions = _read_captions(plots)
    todo = [
        (op.name, str(plots / f"{op.name}.png"))
        for op in ops
        if op.is_differentiable
        and (op.name not in captions or _stale(plots / f"{op.name}.png", sources[op.name]))
    ]
    if todo:
        logger.info(f"refimpl: drawing {len(todo)} plots ({jobs} processes)")
        if jobs > 1 and len(todo) > 4:
            with ProcessPoolExecutor(jobs) as pool:
                results = list(pool.map(_draw, todo, chunksize=4))
        else:
            results = [_draw(job) for job in todo]
        for name, caption, error in results:
            if caption is None:
                logger.warning(f"refimpl: no plot for {name}: {error}")
                captions.pop(name, None)
            else:
                captions[name] = caption
        _captions_file(plots).write_text("".join(f"{k}\t{v}\n" for k, v in sorted(captions.items())))
    return captions


def _build_vectors(ops: list[Any], vectors: Path, sources: dict[str, list[str]], logger) -> dict[str, str]:
    """Write each op's vector files; returns why an op has none (a function argument, which a
    vector file cannot hold)."""
    from refimpl_conformance.vectors import export_vectors

    missing: dict[str, str] = {}
    for op in ops:
        if _stale(vectors / f"{op.name}.json", sources[op.name]):
            export_vectors(vectors, [op.name], seeds=[0, 1], skipped=missing)
    for name, why in missing.items():
        logger.info(f"refimpl: no golden vectors for {name}: {why}")
    return missing


# -- conformance tables ------------------------------------------------------------------
def _measured(op: Any, cases: Any) -> list[list[str]]:
    """The reference evaluated in float32 and float64 on seed 0 against float64: the worst
    error of each output and gradient, and its ratio to the error the conditioning allows."""
    import refimpl
    from refimpl_conformance._engine import check_sample

    sample = cases.random_sample(0)
    rows = []
    for dtype in ("float64", "float32"):
        if dtype not in sample.dtypes:
            continue
        try:
            results = check_sample(op, cases, refimpl.backend("numpy"), sample, dtype)
        except Exception as error:  # noqa: BLE001 - shown on the page
            rows.append([dtype, "—", f"not run: {_rst_escape(str(error))}", "—", "—"])
            continue
        for r in results:
            allowed = r.max_abs / r.ratio if r.ratio > 0 else None
            rows.append(
                [
                    dtype,
                    r.check,
                    f"{r.max_abs:.3g}",
                    "exact" if r.max_abs == 0 else (f"{allowed:.3g}" if allowed else "—"),
                    r.status,
                ]
            )
    return rows


def _conformance_section(op: Any, cases: Any) -> str:
    out = [_title("Conformance", "-")]
    out.append(
        "What ``refimpl check`` verifies for this op on every backend that implements it "
        "(source: the *Conformance cases* tab above).\n"
    )
    dims = ", ".join(f"{k} ∈ [{lo}, {hi}]" for k, (lo, hi) in cases.dims.items())
    out.append(f"**Random samples.** Dimensions drawn from {dims or 'fixed shapes'}.\n")
    edges = list(cases.edges())
    if edges:
        rows = [
            [
                f"``{e.name}``",
                _rst_escape(", ".join(e.flags)) or "—",
                _rst_escape(e.comment) or "—",
                "yes" if e.fd and op.is_differentiable else "no",
                ", ".join(e.dtypes),
            ]
            for e in edges
        ]
        out.append(f"**Edge cases ({len(edges)}).**\n")
        out.append(_table(["sample", "probes", "comment", "finite differences", "dtypes"], rows))
    if cases.notes:
        out.append("**What the samples catch.**\n")
        out.extend(f"* ``{flag}``: {_rst_escape(why)}" for flag, why in cases.notes.items())
        out.append("")
    known = list(cases.known())
    if known:
        rows = []
        for k in known:
            values = "; ".join(f"{name} = {_short(v)}" for name, v in k.values.items())
            rows.append([f"``{k.name}``", _rst_escape(values), _rst_escape(k.source) or "—", f"{k.rtol:g}"])
        out.append(f"**Known values ({len(known)}),** checked on every backend in float64.\n")
        out.append(_table(["name", "values", "source", "rtol"], rows))
    errors = cases.all_errors()
    if errors:
        rows = [
            [f"``{_literal(e.name)}``", f"``{_literal(e.match)}``" if e.match.strip() else "—"]
            for e in errors[:40]
        ]
        more = f" (the first 40 of {len(errors)})" if len(errors) > 40 else ""
        out.append(f"**Bad input ({len(errors)} cases{more}):** each must raise ``InputError``.\n")
        out.append(_table(["case", "message matches"], rows))
    out.append("**Tolerances per dtype.**\n")
    out.append(
        "The allowed error is not a fixed table: it follows the conditioning of the computation "
        "(the rounding spread of the reference's own formula on that sample). Seed 0, the NumPy "
        "reference run in each dtype against itself in float64:\n"
    )
    out.append(_table(["dtype", "check", "worst error", "allowed", "verdict"], _measured(op, cases)))
    overrides = [(dtype, t) for dtype, t in cases.tolerances.items()]
    if overrides:
        out.append("Extra allowances declared for every sample (with their reasons):\n")
        out.extend(
            f"* {dtype}: rtol {t.rtol:g}, atol {t.atol:g} — {_rst_escape(t.reason)}" for dtype, t in overrides
        )
        out.append("")
    return "\n".join(out) + "\n"


# Test modules that exercise the project's machinery (the CLI, the registry, the verifier,
# the backends' builds), where an op appears only as an example: not properties of that op.
MACHINERY_TESTS = frozenset(
    "accuracy adapters adapters_jax adversarial api backends bench cli conformance deviations docs "
    "docs_browser finite gpu_paths meta numba_builds numba_vmath real_world_ports reduction_helpers "
    "registry sample_coverage vectors".split()
)


def tested_properties(tests: Path, names: set[str]) -> dict[str, list[tuple[str, str, int, str]]]:
    """The project's own tests of each op: ``{op: [(file, test, line, docstring), ...]}``.

    A test function belongs to every op it names (a call, an attribute, a string, a name the
    module imports an op as); one that
    names none belongs to the op its file is named after (``test_layer_norm.py``, or the one
    op whose name starts with the file's stem). Read from the source, nothing is imported.
    """
    import ast

    found: dict[str, list[tuple[str, str, int, str]]] = defaultdict(list)
    for path in sorted(tests.glob("test_*.py")):
        stem = path.stem.removeprefix("test_")
        if stem in MACHINERY_TESTS:
            continue
        owner = {stem} & names or {n for n in names if n.startswith(stem)}
        tree = ast.parse(path.read_text(), str(path))
        aliases = {
            alias.asname: alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            for alias in node.names
            if alias.asname and alias.name in names
        }
        for node in ast.walk(tree):
            is_function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            if not is_function or not node.name.startswith("test_"):
                continue
            seen: set[str] = set()
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name):
                    seen.add(sub.id)
                elif isinstance(sub, ast.Attribute):
                    seen.add(sub.attr)
                elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                    seen.add(sub.value)
            doc = (inspect.cleandoc(ast.get_docstring(node) or "").splitlines() or [""])[0]
            seen |= {aliases[n] for n in seen & aliases.keys()}
            for name in (seen & names) or (owner if len(owner) == 1 else set()):
                found[name].append((path.name, node.name, node.lineno, doc))
    return found


def _sentence(test: str, name: str) -> str:
    """``test_layer_norm_is_invariant_to_...`` → "``layer_norm`` is invariant to ..."."""
    text = test.removeprefix("test_")
    parts = text.split(name)
    return f"``{name}``".join(_rst_escape(p.replace("_", " ")) for p in parts).strip()


def _tests_section(name: str, tests: list[tuple[str, str, int, str]]) -> str:
    out = [_title("Properties tested", "-")]
    if not tests:
        return "\n".join([*out, "Only the conformance checks above: no test of its own.\n"]) + "\n"
    out.append(
        "Besides the conformance checks, the project's own tests assert these of the reference "
        "(invariances, identities, closed forms, comparisons with direct solutions and other libraries), "
        f"{len(tests)} in all; ``python -m pytest tests/FILE -k TEST`` runs one.\n"
    )
    by_file: dict[str, list[tuple[str, int, str]]] = defaultdict(list)
    for file, test, line, doc in tests:
        by_file[file].append((test, line, doc))
    for file, entries in by_file.items():
        out.append(f"``tests/{file}``\n")
        for test, line, doc in entries:
            extra = f" — {_rst_escape(doc)}" if doc else ""
            out.append(f"* {_sentence(test, name)}{extra} (``{test}``, line {line})")
        out.append("")
    return "\n".join(out) + "\n"


def _short(value: Any) -> str:
    array = np.asarray(value)
    if array.size <= 6:
        return np.array2string(array, precision=6, separator=", ").replace("\n", " ")
    return f"array of shape {array.shape}"


# -- pages -------------------------------------------------------------------------------
def _op_page(
    op: Any,
    app,
    backends: list[Any],
    captions: dict[str, str],
    here: Path,
    root: Path,
    tests: list[tuple[str, str, int, str]] = (),
) -> str:
    from refimpl_conformance._cases import cases_for

    name = op.name
    out = [f".. _op-{name}:\n", _title(name)]
    first = (inspect.cleandoc(op.__doc__ or "").splitlines() or [""])[0]
    out.append(f"*{_rst_escape(first)}*\n")
    out.append(f".. code-block:: python\n\n   {name}{op.signature}\n")
    paper = op.paper
    link = f"`arXiv:{paper.arxiv} <https://arxiv.org/abs/{paper.arxiv}>`__" if paper.arxiv else "no arXiv id"
    year = paper.year or "—"
    differentiable = ", ".join(f"``{d}``" for d in op.differentiable)
    rows = [
        ["family", f":doc:`{FAMILY_TITLES.get(op.family, op.family)} <../families/{op.family}>`"],
        ["paper", f":doc:`{_rst_escape(paper.title)} <../papers/{paper_slug(paper)}>` ({link}, {year})"],
        ["official code", code_link(paper.code) if paper.code else "none released (or not recorded)"],
        ["differentiable", differentiable or "no (compared on outputs only)"],
        ["outputs", ", ".join(f"``{o}``" for o in op.outputs)],
        ["backends", ", ".join(b.name for b in backends if b.supports(name))],
        ["deviations of official code", str(len(op.deviations)) if op.deviations else "none recorded"],
    ]
    out.append(".. list-table::\n   :widths: 20 80\n")
    for key, value in rows:
        out.append(f"   * - {key}\n     - {value}")
    out.append("")
    if name in captions:
        out.append(_title("Forward and gradient", "-"))
        out.append(f".. figure:: /{GENERATED}/plots/{name}.png\n   :alt: {name}: forward and gradient\n")
        out.append(_indent(_rst_escape(captions[name]), 3) + "\n")
        out.append(f"Draw it yourself: ``refimpl show {name} --plot {name}.png``.\n")
    out.append(_title("Math and derivation", "-"))
    out.append(".. container:: docstring\n")
    out.append(_indent(_docstring_rst(op.__doc__ or "", app), 3) + "\n")
    if op.deviations:
        out.append(_title("Known deviations of official code", "-"))
        for d in op.deviations:
            out.append(f"``{d.name}`` ({d.kind})\n")
            out.append(f"* source: {_rst_escape(d.source)}")
            out.append(f"* official code: {_rst_escape(d.official)}")
            out.append(f"* paper (refimpl's default): {_rst_escape(d.paper)}")
            if d.flag:
                out.append(f"* reproduce it with ``{d.flag_text()}``")
            if d.example is not None:
                out.append(
                    f"* example: official {_rst_escape(str(dict(d.example.official)))}, "
                    f"refimpl {_rst_escape(str(dict(d.example.reference)))}"
                )
            out.append("")
    out.append(_title("Source", "-"))
    cases_file = _cases_source(name)
    tabs = [("Reference (NumPy)", op.source_file)]
    for label, backend in (("Numba", "numba"), ("CuPy", "cupy")):
        found = next((b for b in backends if b.name == backend), None)
        path = _backend_source(found, name) if found is not None else None
        tabs.append((label, path))
    tabs.append(("Conformance cases", cases_file))
    out.append(".. tab-set::\n")
    for label, path in tabs:
        out.append(f"   .. tab-item:: {label}\n")
        if path:
            resolved = Path(path).resolve()
            if root.resolve() in resolved.parents:
                out.append(f"      ``{resolved.relative_to(root.resolve())}``\n")
            out.append(f"      .. literalinclude:: {_relpath(path, here)}\n         :language: python\n")
        else:
            out.append(
                f"      No {label} implementation: the reference is the only one (the docstring says why).\n"
            )
    out.append(_conformance_section(op, cases_for(name)))
    out.append(_tests_section(name, list(tests)))
    out.append(_title("Golden vectors", "-"))
    from refimpl_conformance.vectors import why_no_vectors

    why = why_no_vectors(name)
    if why is not None:
        out.append(
            f"None: {_rst_escape(why)}. Check an implementation of it with "
            f"``refimpl check --op {name} --impl ...``.\n"
        )
        return "\n".join(out) + "\n"
    npz = (here.parent / "vectors" / f"{name}.npz").exists()
    out.append(
        "Inputs, cotangents, outputs and gradients of the reference on the random samples of seeds 0 "
        "and 1 and every edge case, in float64 and float32, with the error cases (schema "
        "``refimpl-vectors/2``): "
        f":download:`{name}.json </{GENERATED}/vectors/{name}.json>`"
        + (f" and :download:`{name}.npz </{GENERATED}/vectors/{name}.npz>`" if npz else "")
        + " (the arrays too large to write inline are in the ``.npz``). "
        f"``refimpl check --vectors {name}.json --impl ...`` checks an implementation against them.\n"
    )
    return "\n".join(out) + "\n"


def _cases_source(name: str) -> str | None:
    from refimpl_conformance._cases import cases_for

    cases = cases_for(name)
    try:
        return inspect.getsourcefile(cases.random)
    except TypeError:
        return None


def _family_page(family: str, ops: list[Any]) -> str:
    out = [f".. _family-{family}:\n", _title(FAMILY_TITLES.get(family, family))]
    out.append(f"{len(ops)} ops.\n")
    rows = []
    for op in sorted(ops, key=lambda o: o.name):
        first = (inspect.cleandoc(op.__doc__ or "").splitlines() or [""])[0]
        rows.append(
            [
                f":doc:`{op.name} <../ops/{op.name}>`",
                _rst_escape(first),
                f":doc:`{_rst_escape(op.paper.title[:60])} <../papers/{paper_slug(op.paper)}>`",
                "yes" if op.is_differentiable else "no",
            ]
        )
    out.append(_table(["op", "what it computes", "paper", "VJP"], rows, "20 45 30 5"))
    return "\n".join(out) + "\n"


def _paper_page(paper: Any, ops: list[Any]) -> str:
    out = [_title(paper.title)]
    if paper.arxiv:
        out.append(f"arXiv: `{paper.arxiv} <https://arxiv.org/abs/{paper.arxiv}>`__ ({paper.year or '—'})\n")
    code = code_link(paper.code) if paper.code else "none recorded"
    out.append(f"Official code: {code}.\n")
    out.append("Routines:\n")
    for op in sorted(ops, key=lambda o: o.name):
        first = (inspect.cleandoc(op.__doc__ or "").splitlines() or [""])[0]
        out.append(f"* :doc:`{op.name} <../ops/{op.name}>` — {_rst_escape(first)}")
    out.append("")
    devs = [d for op in ops for d in op.deviations]
    if devs:
        out.append(f"Known deviations of the official code ({len(devs)}):\n")
        out.extend(
            f"* ``{d.name}`` ({d.kind}, :doc:`{d.op} <../ops/{d.op}>`): {_rst_escape(d.official)}"
            for d in devs
        )
        out.append("")
    return "\n".join(out) + "\n"


# -- the hook ----------------------------------------------------------------------------
def generate(app) -> None:
    from sphinx.util import logging

    import refimpl

    logger = logging.getLogger(__name__)
    src = Path(app.srcdir)
    root = src.parent
    gen = src / GENERATED
    wanted = [n.strip() for n in (app.config.refimpl_docs_ops or "").split(",") if n.strip()]
    ops = [refimpl.get(n) for n in wanted] if wanted else sorted(refimpl.ops(), key=lambda o: o.name)
    backends = []
    for name in ("numba", "cupy"):
        try:
            backends.append(refimpl.backend(name))
        except Exception:  # noqa: BLE001 - a backend that is not installed has no tab
            continue
    sources = {}
    for op in ops:
        files = [op.source_file, _cases_source(op.name)]
        files += [_backend_source(b, op.name) for b in backends]
        sources[op.name] = [f for f in files if f]
    jobs = app.config.refimpl_docs_jobs or min(4, os.cpu_count() or 1)
    captions = _build_plots(ops, gen / "plots", sources, jobs, logger)
    _build_vectors(ops, gen / "vectors", sources, logger)

    numpy_backend = refimpl.backend("numpy")
    all_backends = [numpy_backend, *backends]
    tests = tested_properties(root / "tests", {o.name for o in refimpl.ops()})
    for op in ops:
        page = _op_page(op, app, all_backends, captions, gen / "ops", root, tests.get(op.name, []))
        _write(gen / "ops" / f"{op.name}.rst", page)
    by_family: dict[str, list[Any]] = defaultdict(list)
    by_paper: dict[str, list[Any]] = defaultdict(list)
    papers = {}
    for op in ops:
        by_family[op.family].append(op)
        slug = paper_slug(op.paper)
        by_paper[slug].append(op)
        papers[slug] = op.paper
    for family, members in by_family.items():
        _write(gen / "families" / f"{family}.rst", _family_page(family, members))
    for slug, members in by_paper.items():
        _write(gen / "papers" / f"{slug}.rst", _paper_page(papers[slug], members))
    families = sorted(by_family, key=lambda f: list(FAMILY_TITLES).index(f) if f in FAMILY_TITLES else 99)
    _write(
        gen / "families.rst",
        _title("Families")
        + f"\n{len(ops)} ops in {len(families)} families.\n\n.. toctree::\n   :maxdepth: 1\n\n"
        + "".join(f"   families/{f}\n" for f in families),
    )
    _write(
        gen / "papers.rst",
        _title("Papers")
        + f"\n{len(by_paper)} papers.\n\n.. toctree::\n   :maxdepth: 1\n\n"
        + "".join(f"   papers/{s}\n" for s in sorted(by_paper, key=lambda s: papers[s].title.lower())),
    )
    _write(
        gen / "ops.rst",
        _title("All ops")
        + f"\n{len(ops)} ops, by name.\n\n.. toctree::\n   :maxdepth: 1\n\n"
        + "".join(f"   ops/{op.name}\n" for op in ops),
    )
    # pages of ops no longer built (a quick build after a full one) would be orphans
    keep = {f"{op.name}.rst" for op in ops}
    for page in (gen / "ops").glob("*.rst"):
        if page.name not in keep:
            page.unlink()
    keep_f = {f"{f}.rst" for f in by_family}
    for page in (gen / "families").glob("*.rst"):
        if page.name not in keep_f:
            page.unlink()
    keep_p = {f"{s}.rst" for s in by_paper}
    for page in (gen / "papers").glob("*.rst"):
        if page.name not in keep_p:
            page.unlink()


def setup(app) -> dict[str, Any]:
    app.add_config_value("refimpl_docs_ops", "", "env")
    app.add_config_value("refimpl_docs_jobs", 0, "env")
    app.connect("builder-inited", generate)
    return {"version": "1", "parallel_read_safe": True}
