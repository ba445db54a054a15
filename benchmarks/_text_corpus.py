"""Plain-text files cut into documents for the distillation benchmarks.

The cut is mechanical, so nobody picks passages: lines are packed in file order into documents
of at most ``doc_bytes`` UTF-8 bytes (a longer line is a document of its own), and reading stops
at the first document that brings the total to ``max_bytes`` or more.
"""

from __future__ import annotations

from collections.abc import Iterable


def read_documents(paths: Iterable[str], doc_bytes: int = 1000,
                   max_bytes: int | None = None) -> list[str]:
    """Documents of at most ``doc_bytes`` bytes from ``paths``, in order.

    Parameters
    ----------
    paths : iterable of str
        Text files (UTF-8; a byte-order mark is dropped).
    doc_bytes : int
        Largest document, in bytes, unless one line alone is longer.
    max_bytes : int, optional
        Stop once the documents hold at least this many bytes.

    Returns
    -------
    list of str
    """
    docs: list[str] = []
    total = 0
    for path in paths:
        with open(path, encoding="utf-8-sig") as f:
            lines = f.read().splitlines(keepends=True)
        cur: list[str] = []
        size = 0
        for line in lines:
            n = len(line.encode())
            if cur and size + n > doc_bytes:
                docs.append("".join(cur))
                total += size
                cur, size = [], 0
                if max_bytes is not None and total >= max_bytes:
                    return docs
            cur.append(line)
            size += n
        if cur and "".join(cur).strip():
            docs.append("".join(cur))
            total += size
            if max_bytes is not None and total >= max_bytes:
                return docs
    return docs
