"""The package stays readable: small files, small functions, public imports outside it."""

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sklearn_lts"


def _sources():
    return sorted(PACKAGE.rglob("*.py"))


def test_no_file_over_500_lines():
    long = {str(p.relative_to(ROOT)): n for p in _sources()
            if (n := p.read_text(encoding="utf-8").count("\n")) > 500}
    assert not long


def test_no_function_over_60_lines_docstrings_included():
    long = []
    for p in _sources():
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 60:
                    long.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long


_PRIVATE_IMPORT = re.compile(r"(?:from|import)\s+sklearn_lts(?:\.\w+)*\._\w+")


def test_docs_examples_and_benchmarks_use_the_public_api():
    places = [ROOT / "README.md", *(ROOT / "docs").rglob("*.rst"),
              *(ROOT / "examples").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")]
    bad = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in places if p.exists()
           for m in _PRIVATE_IMPORT.finditer(p.read_text(encoding="utf-8"))]
    assert not bad


def test_docstring_examples_use_the_public_api():
    bad = []
    for p in _sources():
        for line in p.read_text(encoding="utf-8").splitlines():
            if line.strip().startswith(">>>") and _PRIVATE_IMPORT.search(line):
                bad.append(f"{p.relative_to(ROOT)}: {line.strip()}")
    assert not bad
