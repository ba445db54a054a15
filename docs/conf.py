"""Sphinx configuration of the sklearn-lts documentation.

Built offline by ``make docs``: nothing is downloaded (no intersphinx, MathJax served from the
site itself), and the gallery examples run on CPU with models and data that ship in installed
packages. Two local extensions live in ``_ext/``: ``offline_mathjax`` copies MathJax into the
site, ``benchmark_pages`` turns every ``benchmarks/results/*.md`` file into a page.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))

# The examples and autodoc must never reach the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# The example pages show what the examples print, not the download/loading bars of
# huggingface_hub and transformers (transformers reads this switch when it is imported).
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from benchmark_pages import escape_trailing_underscores  # noqa: E402
from offline_mathjax import MATHJAX_PATH  # noqa: E402

import sklearn_lts  # noqa: E402

# -- Project -----------------------------------------------------------------------------------
project = "sklearn-lts"
author = "sklearn-lts developers"
copyright = "sklearn-lts developers, BSD-3-Clause"
release = sklearn_lts.__version__
version = ".".join(release.split(".")[:2])

# -- General -----------------------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "offline_mathjax",
    "benchmark_pages",
]
templates_path = ["_templates"]
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
root_doc = "index"
nitpicky = False
intersphinx_mapping: dict = {}  # offline build: no inventories are fetched
default_role = "literal"
mathjax_path = MATHJAX_PATH  # copied into _static by offline_mathjax

# autodoc / autosummary / numpydoc; the class and function stubs use the templates of
# _templates/autosummary/, which add the gallery examples that use each object
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"  # numpydoc docstrings already give the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True

# -- sphinx-gallery ----------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    # every plot_*.py of examples/ is executed (other files are only shown)
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py",
    # a failing example fails the build
    "abort_on_example_error": True,
    "only_warn_on_example_error": False,
    "backreferences_dir": "gen_modules/backreferences",
    "doc_module": ("sklearn_lts",),
    "reference_url": {"sklearn_lts": None},
    "within_subsection_order": "FileNameSortKey",
    "remove_config_comments": True,
    "min_reported_time": 1,
    "download_all_examples": False,
    # the timing pages load jQuery and DataTables from CDNs: leave them out
    "write_computation_times": False,
}

# -- HTML --------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sklearn-lts {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]  # code and tables fit the content column
html_theme_options = {
    "navigation_with_keys": False,
    "show_prev_next": False,
    "secondary_sidebar_items": ["page-toc"],
}
html_show_sourcelink = False
# no section navigation where it would be empty or repeat the top bar: the code gets the
# width (the examples are written 100 columns wide, the benchmark tables are wide)
html_sidebars = {
    "index": [], "user_guide/*": [], "auto_examples/plot_*": [], "generated/benchmarks/*": [],
}


# In a numpydoc type such as ``ndarray of shape (n_features_in_,)`` a word ending in "_" is a
# reST hyperlink reference; escape it in the type part of ``name : type`` lines only.
_PARAM_LINE = re.compile(r"^(\s*[\w*]+(?:\s*,\s*[\w*]+)*\s+:\s+)(.+)$")


def _process_docstring(app, what, name, obj, options, lines) -> None:
    for i, line in enumerate(lines):
        m = _PARAM_LINE.match(line)
        if m:
            lines[i] = m.group(1) + escape_trailing_underscores(m.group(2))


def _skip_member(app, what, name, obj, skip, options):
    # scikit-learn's generated metadata-routing setters (set_fit_request, ...) are documented
    # by scikit-learn; their docstrings refer to its glossary and user guide.
    if re.fullmatch(r"set_\w+_request", name):
        return True
    return None


def setup(app):
    # before numpydoc turns the docstring into reST (priority 500)
    app.connect("autodoc-process-docstring", _process_docstring, priority=400)
    app.connect("autodoc-skip-member", _skip_member)
