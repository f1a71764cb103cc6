"""The documentation site and its plots: the quick build (a handful of pages) and the slices.

The full build (every op) is ``python -m sphinx -b html docs docs/_build/html``; the browser
test (``pytest -m docs``) opens the pages in headless Chromium (tests/test_docs_browser.py).
"""

from __future__ import annotations

import fcntl
import re
from pathlib import Path

import numpy as np
import pytest

import refimpl
from refimpl.cli import main
from refimpl_conformance.plot import plot_op, slice_through

pytest.importorskip("matplotlib")
pytest.importorskip("sphinx")

ROOT = Path(__file__).resolve().parents[1]
QUICK_OPS = ["stablemax_cross_entropy", "poincare_expmap", "facility_location_greedy"]
DIFFERENTIABLE = sorted(op.name for op in refimpl.ops() if op.is_differentiable)


def build_site(out: Path, ops: list[str]) -> tuple[int, str]:
    """Build the site for ``ops`` into ``out``; return Sphinx's status and its warnings."""
    import io

    warnings = io.StringIO()
    # builds write the generated pages into docs/generated: one at a time (pytest-xdist workers)
    lock = ROOT / "docs" / "_build" / ".lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            return _build(out, ops, warnings)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(out: Path, ops: list[str], warnings) -> tuple[int, str]:
    from sphinx.application import Sphinx

    app = Sphinx(
        str(ROOT / "docs"),
        str(ROOT / "docs"),
        str(out),
        str(out / ".doctrees"),
        "html",
        confoverrides={"refimpl_docs_ops": ",".join(ops), "refimpl_docs_jobs": 1},
        status=None,
        warning=warnings,
        freshenv=True,
    )
    app.build()
    return app.statuscode, warnings.getvalue()


def _article(page: str) -> str:
    """The page's content, without the navigation (which lists every page)."""
    return page[page.index("<article") : page.index("</article>")]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    status, warnings = build_site(out, QUICK_OPS)
    return out, status, warnings


def test_quick_build_succeeds_without_warnings(site):
    out, status, warnings = site
    assert status == 0
    assert warnings == "", warnings


def test_every_op_of_the_build_has_its_page_with_math_source_and_conformance(site):
    out, _, _ = site
    for name in QUICK_OPS:
        page = (out / "generated" / "ops" / f"{name}.html").read_text()
        op = refimpl.get(name)
        assert f"{name}" in page
        for label in ("Reference (NumPy)", "Numba", "CuPy", "Conformance cases"):
            assert label in page, (name, label)
        assert "Math and derivation" in page and "Conformance" in page and "Golden vectors" in page
        # the reference source is on the page (its def line), and the paper's arXiv link
        assert re.search(rf'def</span><span class="w"> </span><span class="nf">{name}</span>', page), name
        if op.paper.arxiv:
            assert f"https://arxiv.org/abs/{op.paper.arxiv}" in page
        # the golden vectors are downloadable
        assert re.search(rf'href="[^"]*_downloads/[0-9a-f]+/{name}\.json"', page), name
        has_plot = f"_images/{name}.png" in page
        assert has_plot == op.is_differentiable, name


def test_pages_show_the_docstrings_formulas_as_written(site):
    out, _, _ = site
    page = (out / "generated" / "ops" / "stablemax_cross_entropy.html").read_text()
    # a line of the forward's math, exactly as the docstring writes it
    assert "ℓ_i      = -log p_i,y_i = log Σ_j s(z_ij) - log s(z_i,y_i)" in page


def test_pages_list_the_properties_the_project_tests(site):
    out, _, _ = site
    page = _article((out / "generated" / "ops" / "stablemax_cross_entropy.html").read_text())
    assert "Properties tested" in page
    # a test of tests/test_stablemax.py, by its sentence and its name
    assert "test_one_class_loss_and_gradient_are_zero" in page


def test_every_op_has_tests_of_its_own_and_machinery_tests_are_not_listed():
    import sys

    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    from refimpl_docs import tested_properties

    names = {op.name for op in refimpl.ops()}
    found = tested_properties(ROOT / "tests", names)
    assert set(found) == names, sorted(names - set(found))
    files = {file for entries in found.values() for file, *_ in entries}
    assert "test_cli.py" not in files and "test_layer_norm.py" in files
    # an op imported under another name still gets its tests
    assert any(f == "test_loss_based_reweighting.py" for f, *_ in found["loss_reweighting_temperature"])


def test_family_paper_and_guide_pages(site):
    out, _, _ = site
    family = _article((out / "generated" / "families" / "losses.html").read_text())
    assert "stablemax_cross_entropy" in family and "facility_location_greedy" not in family
    papers = list((out / "generated" / "papers").glob("*.html"))
    assert len(papers) == len({refimpl.get(n).paper.title for n in QUICK_OPS})
    guide = (out / "guide.html").read_text()
    assert "Ported a paper" in guide and "refimpl_conformance" in guide
    assert "to_torch" in (out / "using.html").read_text()  # the training-loop use
    assert "REFIMPL_DASK_ADDRESS" in (out / "scale.html").read_text()  # pointing refimpl at a cluster
    assert (out / "search.html").exists() and (out / "searchindex.js").exists()


def test_plot_slice_agrees_with_central_differences():
    s = slice_through("stablemax_cross_entropy")
    assert s.scalar and not s.custom_vjp
    assert np.all(np.isfinite(s.value)) and np.all(np.isfinite(s.grad))
    np.testing.assert_allclose(s.grad[s.fd_index], s.fd_grad, rtol=1e-6, atol=1e-8)
    assert s.t[0] < s.center < s.t[-1]


def test_plot_of_a_ball_map_draws_the_path_inside_the_disk():
    s = slice_through("poincare_expmap", points=21)
    assert s.curve is not None
    assert np.all(np.linalg.norm(s.curve, axis=1) < s.radius)


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_every_differentiable_op_has_a_slice(name):
    s = slice_through(name, points=9)
    middle = len(s.t) // 2
    assert np.isfinite(s.value[middle]) and np.isfinite(s.grad[middle]), name
    assert s.caption().startswith(("⟨v,", name))


def test_show_plot_writes_the_picture(tmp_path, capsys):
    path = tmp_path / "z.png"
    assert main(["show", "z_loss", "--plot", str(path)]) == 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Plot written to" in capsys.readouterr().out
    assert main(["show", "facility_location_greedy", "--plot", str(tmp_path / "f.png")]) == 2
    assert not (tmp_path / "f.png").exists()


def test_plot_op_returns_the_slice_it_drew(tmp_path):
    s = plot_op("poincare_expmap", tmp_path / "p.svg")
    assert (tmp_path / "p.svg").read_text().lstrip().startswith("<?xml")
    assert "Poincaré disk" in s.caption()
