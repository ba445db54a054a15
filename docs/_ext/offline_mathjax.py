"""Sphinx extension: serve MathJax from the built site instead of a CDN.

The pages must show their formulas without network access, so MathJax 3 is taken from the
``sphinx-mathjax-offline`` package (a pip-installable copy of MathJax; part of the ``docs``
extra) and copied into ``_static/mathjax`` of the HTML output. The package is located, not
imported: its folder name is not a Python identifier.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

from sphinx.errors import ExtensionError

PACKAGE = "sphinx-mathjax-offline"
#: ``mathjax_path`` for conf.py, relative to ``_static``: TeX input, CommonHTML output
MATHJAX_PATH = "mathjax/tex-chtml.js"


def mathjax_source() -> Path:
    """Folder of the MathJax distribution shipped by ``sphinx-mathjax-offline``."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ExtensionError(
            f"{PACKAGE} is not installed; the documentation serves MathJax from it. "
            'Install the documentation tools with: pip install ".[docs]"'
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax"
    if not (folder / "tex-chtml.js").is_file():
        raise ExtensionError(f"{folder} holds no tex-chtml.js")
    return folder


def _copy(app, exc) -> None:
    if exc is not None or app.builder.format != "html":
        return
    # the loader fetches fonts and TeX extensions relative to tex-chtml.js: copy the tree
    shutil.copytree(mathjax_source(), Path(app.outdir) / "_static" / "mathjax",
                    dirs_exist_ok=True)


def setup(app):
    mathjax_source()  # fail early, not after the whole build
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
