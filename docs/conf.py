"""Sphinx configuration of the sklearn-lts documentation.

Built offline by ``make docs``: nothing is downloaded (no intersphinx), the gallery examples
run on CPU with models and data that ship in installed packages.

Two parts of the site are assembled at build time, from the ``source-read`` event, so that
they follow the code and the benchmark results without anyone editing the pages:

* ``api.rst``: the distillation entries (``ByteDistiller``, ``ByteLevelLM``) are listed
  under their public name when the package exports them, under their module path while it
  does not yet, and left out (with a note on the page) when they do not import at all.
* ``benchmarks.rst``: every ``benchmarks/results/*.md`` file is converted to reST and
  appended to the page.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import warnings
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

# The examples and autodoc must never reach the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

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
]
templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
root_doc = "index"
nitpicky = False
intersphinx_mapping: dict = {}  # offline build: no inventories are fetched
default_role = "literal"

# autodoc / autosummary / numpydoc
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
}

# -- HTML --------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"sklearn-lts {release}"
html_static_path: list[str] = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_prev_next": False,
    "secondary_sidebar_items": ["page-toc"],
}
html_show_sourcelink = False

# -- Build-time assembly -----------------------------------------------------------------------
#: Distillation entries: (public name, fallback module path), in the order of the page.
DISTILL_API = [
    ("sklearn_lts.ByteDistiller", "sklearn_lts.distill._distiller.ByteDistiller"),
    ("sklearn_lts.distill.ByteLevelLM", "sklearn_lts.distill._byte_lm.ByteLevelLM"),
]
DISTILL_MARKER = ".. distill-api::"
BENCHMARK_MARKER = ".. benchmark-results::"


def _importable(dotted: str) -> bool:
    module, _, name = dotted.rpartition(".")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return hasattr(importlib.import_module(module), name)
    except Exception:  # noqa: BLE001 - anything that stops the import leaves the entry out
        return False


def _resolve_distill_api() -> tuple[list[str], list[str]]:
    """Names to document, and the public names that could not be documented at all."""
    found, missing = [], []
    for public, fallback in DISTILL_API:
        if _importable(public):
            found.append(public)
        elif _importable(fallback):
            found.append(fallback)
        else:
            missing.append(public)
    return found, missing


DISTILL_FOUND, DISTILL_MISSING = _resolve_distill_api()

_STUB = """{title}
{underline}

.. currentmodule:: {module}

.. autoclass:: {name}
   :members:

.. minigallery:: {full}
   :add-heading: Examples using ``{name}``
"""


def _distill_rst() -> str:
    lines = []
    if DISTILL_FOUND:
        lines += [
            ".. currentmodule:: sklearn_lts",
            "",
            ".. autosummary::",
            "   :toctree: generated/",
            "   :template: class.rst",
            "   :nosignatures:",
            "",
        ]
        # relative to the current module, as autosummary wants (stubs keep the full name)
        lines += [f"   {name.removeprefix('sklearn_lts.')}" for name in DISTILL_FOUND]
        lines.append("")
    if DISTILL_MISSING:
        names = ", ".join(f"``{n}``" for n in DISTILL_MISSING)
        lines += [
            ".. note::",
            "",
            f"   Not importable when these pages were built, hence not documented: {names}.",
            "",
        ]
    return "\n".join(lines)


def _write_distill_stubs(app) -> None:
    """Stub pages of the distillation entries (autosummary only scans the files on disk)."""
    out = DOCS / "generated"
    out.mkdir(exist_ok=True)
    # a stub left by an earlier build under the other name would be an orphan page
    for pair in DISTILL_API:
        for stale in pair:
            if stale not in DISTILL_FOUND and (out / f"{stale}.rst").exists():
                (out / f"{stale}.rst").unlink()
    for full in DISTILL_FOUND:
        module, _, name = full.rpartition(".")
        text = _STUB.format(
            title=full, underline="=" * len(full), module=module, name=name, full=full
        )
        path = out / f"{full}.rst"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


# Markdown (the subset the benchmark scripts write) to reST.
_MD_HEADING = re.compile(r"^(#{1,4})\s+(.*?)\s*#*\s*$")
_MD_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_MD_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_MD_CODE = re.compile(r"(?<!`)`([^`]+)`(?!`)")
_MD_LIST = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_RST_UNDERLINES = "-~^\""


def _md_inline(text: str) -> str:
    text = _MD_CODE.sub(lambda m: f"``{m.group(1)}``", text)
    text = _MD_LINK.sub(lambda m: f"`{m.group(1)} <{m.group(2)}>`__", text)
    return _escape_type(text)  # a bare word_ is a reST reference


def _md_cells(row: str) -> list[str]:
    row = row.strip()
    if row.startswith("|"):
        row = row[1:]
    if row.endswith("|"):
        row = row[:-1]
    return [_md_inline(c.strip().replace("\\|", "|")) for c in re.split(r"(?<!\\)\|", row)]


def _md_table(rows: list[str]) -> list[str]:
    header, body = _md_cells(rows[0]), [_md_cells(r) for r in rows[2:]]
    width = len(header)
    out = [".. list-table::", "   :header-rows: 1", ""]
    for cells in [header, *body]:
        cells = (cells + [""] * width)[:width]
        out.append(f"   * - {cells[0] or ' '}")
        out += [f"     - {c or ' '}" for c in cells[1:]]
    return [*out, ""]


def md_to_rst(md: str) -> str:
    """Convert headings, paragraphs, lists, pipe tables and fenced code to reST."""
    lines = md.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip().startswith("```"):
            out += ["", ".. code-block:: text", ""]
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                out.append(f"   {lines[i]}")
                i += 1
            out.append("")
            i += 1
            continue
        m = _MD_HEADING.match(line)
        if m:
            level = min(len(m.group(1)), len(_RST_UNDERLINES)) - 1
            title = _md_inline(m.group(2))
            out += ["", title, _RST_UNDERLINES[level] * max(len(title), 4), ""]
            i += 1
            continue
        if line.lstrip().startswith("|") and i + 1 < len(lines) and _MD_TABLE_RULE.match(
            lines[i + 1]
        ):
            j = i + 2
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                j += 1
            out += ["", *_md_table(lines[i:j])]
            i = j
            continue
        if _MD_LIST.match(line) and out and out[-1].strip() and not _MD_LIST.match(out[-1]):
            out.append("")  # reST needs a blank line before a list
        out.append(_md_inline(line))
        i += 1
    return "\n".join(out) + "\n"


def _benchmarks_rst(env) -> str:
    results = sorted((ROOT / "benchmarks" / "results").glob("*.md"))
    if not results:
        return "No result files in ``benchmarks/results/`` yet.\n"
    parts = []
    for path in results:
        env.note_dependency(str(path))
        try:
            body = md_to_rst(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            body = f"``{path.name}`` could not be read: {exc}\n"
        source = f"*Source:* ``benchmarks/results/{path.name}``"
        parts.append(f".. _bench-{path.stem}:\n\n{body}\n{source}\n")
    return "\n".join(parts)


# In a numpydoc type such as ``ndarray of shape (n_features_in_,)`` a word ending in "_" is a
# reST hyperlink reference ("Unknown target name"). scikit-learn writes these in backticks;
# escape the ones that are not, in the type part of ``name : type`` lines only.
_PARAM_LINE = re.compile(r"^(\s*[\w*]+(?:\s*,\s*[\w*]+)*\s+:\s+)(.+)$")
_LITERAL = re.compile(r"(``.*?``|`[^`]*`)")
_TRAILING_UNDERSCORE = re.compile(r"(?<![\w\\])([A-Za-z]\w*?)_(?!\w)")


def _escape_type(text: str) -> str:
    parts = _LITERAL.split(text)
    for i in range(0, len(parts), 2):  # even items are outside backticks
        parts[i] = _TRAILING_UNDERSCORE.sub(r"\1\\_", parts[i])
    return "".join(parts)


def _process_docstring(app, what, name, obj, options, lines) -> None:
    for i, line in enumerate(lines):
        m = _PARAM_LINE.match(line)
        if m:
            lines[i] = m.group(1) + _escape_type(m.group(2))


def _skip_member(app, what, name, obj, skip, options):
    # scikit-learn's generated metadata-routing setters (set_fit_request, ...) are documented
    # by scikit-learn; their docstrings refer to its glossary and user guide.
    if re.fullmatch(r"set_\w+_request", name):
        return True
    return None


def _source_read(app, docname, source) -> None:
    if docname == "api":
        # re-read the page when the package's exports change
        for init in ("sklearn_lts/__init__.py", "sklearn_lts/distill/__init__.py"):
            if (ROOT / init).exists():
                app.env.note_dependency(str(ROOT / init))
        source[0] = source[0].replace(DISTILL_MARKER, _distill_rst())
    elif docname == "benchmarks":
        source[0] = source[0].replace(BENCHMARK_MARKER, _benchmarks_rst(app.env))


def setup(app):
    # before autosummary's own stub generation (priority 500)
    app.connect("builder-inited", _write_distill_stubs, priority=400)
    app.connect("source-read", _source_read)
    # before numpydoc turns the docstring into reST (priority 500)
    app.connect("autodoc-process-docstring", _process_docstring, priority=400)
    app.connect("autodoc-skip-member", _skip_member)
