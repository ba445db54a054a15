"""Shared helpers for the benchmark scripts: versions, command line, result files."""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from importlib.metadata import PackageNotFoundError, version

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def versions(*packages: str) -> dict[str, str]:
    out = {"python": platform.python_version(), "machine": platform.platform()}
    for p in ("numpy", "scipy", "scikit-learn", "torch", *packages):
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = "not installed"
    out["cpu_count"] = str(os.cpu_count())
    return out


def command_line() -> str:
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def write_results(name: str, markdown: str, payload: dict) -> tuple[str, str]:
    """Write ``results/<name>.md`` and ``results/<name>.json``; return both paths."""
    os.makedirs(RESULTS, exist_ok=True)
    md, js = os.path.join(RESULTS, name + ".md"), os.path.join(RESULTS, name + ".json")
    with open(md, "w") as f:
        f.write(markdown)
    with open(js, "w") as f:
        json.dump(payload, f, indent=2, default=float)
    return md, js
