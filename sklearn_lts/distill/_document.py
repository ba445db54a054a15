"""A training text as the student trainer sees it: bytes, student tokens, teacher targets."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sklearn_lts.distill._align import TokenAlignment, align_text

__all__ = ["Document", "make_documents"]


@dataclass
class Document:
    """One training text seen by the student, with its optional teacher targets."""

    data: bytes
    align: TokenAlignment
    teacher_rows: np.ndarray | None = None  # (n_bytes + 1, ROW_WIDTH): BLD targets
    uld_offsets: dict = field(default_factory=dict)  # byte offset -> row of uld_sorted
    uld_sorted: np.ndarray | None = None  # (n_teacher_tokens, k) sorted teacher probs


def make_documents(texts: list[str], tokenizer, teacher_rows=None, uld=None) -> list[Document]:
    """Align every text with the student tokenizer and attach the teacher targets, if any.

    Parameters
    ----------
    texts : list of str
    tokenizer : the student's tokenizer
    teacher_rows : list of ndarray, optional
        Teacher byte rows per text (BLD).
    uld : list of (dict, ndarray), optional
        Per text: ``{byte offset: row}`` and the sorted teacher probabilities (ULD).

    Examples
    --------
    >>> from sklearn_lts.models import gpt2_tokenizer
    >>> [d] = make_documents(["Hi there"], gpt2_tokenizer())
    >>> d.data, d.align.lengths.tolist(), d.teacher_rows is None
    (b'Hi there', [2, 6], True)
    """
    docs = [Document(t.encode("utf-8"), align_text(t, tokenizer)) for t in texts]
    if teacher_rows is not None:
        for d, rows in zip(docs, teacher_rows, strict=True):
            d.teacher_rows = rows
    if uld is not None:
        for d, (offsets, srt) in zip(docs, uld, strict=True):
            d.uld_offsets, d.uld_sorted = offsets, srt
    return docs
