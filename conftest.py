"""Suite-wide isolation: whatever the tests write goes under one temporary folder.

The library's cache (converted SmolLM2, teacher targets), matplotlib's font cache and
hypothesis' example database would otherwise land in ``~/.cache`` and the checkout; a second
run of the suite must see the same (empty) state as the first. Set ``SKLEARN_LTS_TEST_CACHE``
to a folder of your own to keep the converted teacher between runs (about 45 s saved per run).
"""

from __future__ import annotations

import os
import shutil
import tempfile

_ROOT: str | None = None


def pytest_configure(config) -> None:
    global _ROOT
    _ROOT = tempfile.mkdtemp(prefix="sklearn-lts-tests-")
    os.environ["SKLEARN_LTS_CACHE"] = (os.environ.get("SKLEARN_LTS_TEST_CACHE")
                                       or os.path.join(_ROOT, "cache"))
    os.environ.setdefault("MPLCONFIGDIR", os.path.join(_ROOT, "matplotlib"))
    try:
        from hypothesis import settings
        from hypothesis.configuration import set_hypothesis_home_dir
    except ImportError:
        return
    # hypothesis >= 6.1xx also caches constants it collects from the source in .hypothesis/
    set_hypothesis_home_dir(os.path.join(_ROOT, "hypothesis"))
    # No .hypothesis/ folder in the checkout; every run draws the same examples.
    settings.register_profile("isolated", database=None, derandomize=True)
    settings.load_profile("isolated")


def pytest_unconfigure(config) -> None:
    if _ROOT is not None:
        shutil.rmtree(_ROOT, ignore_errors=True)
