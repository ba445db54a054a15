"""Sphinx extension: one page per ``benchmarks/results/*.md`` file, converted to reST.

The benchmark scripts write Markdown (headings, paragraphs, lists, pipe tables, fenced code).
At ``builder-inited`` every results file becomes ``generated/benchmarks/<name>.rst``, which
``benchmarks.rst`` lists in a toctree. Pages whose Markdown has the same first heading get the
file name in their title, so that no two entries of the table of contents read the same.
"""

from __future__ import annotations

import re
from pathlib import Path

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
    return escape_trailing_underscores(text)


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


# A word ending in "_" is a reST hyperlink reference ("Unknown target name"): escape the ones
# outside backticks (also used by conf.py on the type part of numpydoc parameter lines).
_LITERAL = re.compile(r"(``.*?``|`[^`]*`)")
_TRAILING_UNDERSCORE = re.compile(r"(?<![\w\\])([A-Za-z]\w*?)_(?!\w)")


def escape_trailing_underscores(text: str) -> str:
    r"""Escape ``word_`` outside backticks.

    Examples
    --------
    >>> escape_trailing_underscores("ndarray of shape (n_features_in_,), see ``coef_``")
    'ndarray of shape (n_features_in\\_,), see ``coef_``'
    """
    parts = _LITERAL.split(text)
    for i in range(0, len(parts), 2):  # even items are outside backticks
        parts[i] = _TRAILING_UNDERSCORE.sub(r"\1\\_", parts[i])
    return "".join(parts)


def _title_and_body(md: str) -> tuple[str, str]:
    """The first level-1 heading of ``md`` and the rest of it."""
    lines = md.splitlines()
    for i, line in enumerate(lines):
        m = _MD_HEADING.match(line)
        if m and len(m.group(1)) == 1:
            return m.group(2), "\n".join(lines[:i] + lines[i + 1 :])
    return "", md


def results_pages(results_dir: Path) -> dict[str, str]:
    r"""reST page text for every Markdown file of ``results_dir``, keyed by file stem.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     d = Path(tmp)
    ...     _ = (d / "a.md").write_text("# Speed\n\n| x | y |\n|---|---|\n| 1 | 2 |\n")
    ...     _ = (d / "b.md").write_text("# Speed\n\nagain\n")
    ...     pages = results_pages(d)
    >>> pages["a"].splitlines()[2:4], pages["b"].splitlines()[2:4]
    (['Speed', '====='], ['Speed (b)', '========='])
    >>> "list-table" in pages["a"]
    True
    """
    pages, seen = {}, set()
    for path in sorted(results_dir.glob("*.md")):
        title, body = _title_and_body(path.read_text(encoding="utf-8"))
        title = _md_inline(title) or path.stem
        if title in seen:
            title = f"{title} ({path.stem})"
        seen.add(title)
        source = f"*Source:* ``benchmarks/results/{path.name}``"
        pages[path.stem] = (
            f".. _bench-{path.stem}:\n\n{title}\n{'=' * len(title)}\n\n{source}\n\n"
            f"{md_to_rst(body)}"
        )
    return pages


def write_results_pages(app) -> None:
    """Write the pages into ``<srcdir>/generated/benchmarks`` (only the ones that changed)."""
    root = Path(app.srcdir).parent
    out = Path(app.srcdir) / "generated" / "benchmarks"
    out.mkdir(parents=True, exist_ok=True)
    pages = results_pages(root / "benchmarks" / "results")
    for stale in out.glob("*.rst"):
        if stale.stem not in pages:
            stale.unlink()
    for stem, text in pages.items():
        path = out / f"{stem}.rst"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


def setup(app):
    app.connect("builder-inited", write_results_pages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
