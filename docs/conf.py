"""Sphinx configuration of refimpl's documentation site.

The op, family and paper pages are generated from the registry by ``_ext/refimpl_docs.py``
at build time (into ``generated/``, not kept in git). Build the whole site with
``python -m sphinx -b html docs docs/_build/html``; ``-D refimpl_docs_ops=z_loss,lion_step``
builds only those ops' pages (the quick build the tests run).
"""

import sys
from pathlib import Path

import refimpl

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "refimpl"
author = "the refimpl authors"
copyright = "refimpl authors"  # noqa: A001 - Sphinx's name
release = refimpl.__version__
version = release

extensions = ["myst_parser", "sphinx_design", "refimpl_docs"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "README.md"]
myst_heading_anchors = 3
suppress_warnings = ["myst.xref_missing", "myst.header"]

html_theme = "furo"
html_title = f"refimpl {release}"
html_static_path = ["_static"]
html_css_files = ["refimpl.css"]
html_show_sourcelink = False
html_copy_source = False
html_favicon = "_static/favicon.svg"
