"""Training documents made in one pass over a spooled corpus, read back from disk on demand.

:func:`build_documents` goes once over a :class:`~._spool.SpooledCorpus`, a chunk of texts at a
time: the student tokenizer's ids and token byte lengths go to the spool, and so do the ULD
targets of the chunk when the loss needs them. :class:`Documents` is the sequence the trainer
reads (``len(docs)``, ``docs[d]``): an item is rebuilt from disk (the most recent ones are kept)
and takes its teacher byte rows from the ``rows`` sequence (teacher targets fetched when first
indexed, :mod:`._lazy_rows`) when first asked. In memory: a few int64 offsets per document.
"""

from __future__ import annotations

import logging
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import numpy as np

from sklearn_lts.distill._align import TokenAlignment, align_text
from sklearn_lts.distill._spool import _CHUNK_BYTES, _CHUNK_TEXTS, SpooledCorpus, spool_corpus

__all__ = ["Documents", "StoredDocument", "build_documents", "spool_corpus"]

logger = logging.getLogger("sklearn_lts")


class UldIndex(NamedTuple):
    """Where each document's ULD targets are in the spool."""

    row_offsets: np.ndarray  # (n + 1,) rows of the stream "uld_rows" (top_k floats each)
    key_offsets: np.ndarray  # (n + 1,) items of "uld_keys" / "uld_vals"
    top_k: int


class StoredDocument:
    """A :class:`~sklearn_lts.distill._document.Document` read back from disk.

    ``data`` and ``align`` are read at once; ``teacher_rows`` (the document's item of the
    ``rows`` sequence, e.g. rows fetched from the target cache when indexed) and the ULD
    targets on first use.
    """

    __slots__ = ("data", "align", "_docs", "_index", "_rows", "_uld")

    def __init__(self, data: bytes, align: TokenAlignment, docs: Documents, index: int):
        self.data, self.align = data, align
        self._docs, self._index = docs, index
        self._rows = self._uld = None

    @property
    def teacher_rows(self):
        if self._rows is None and self._docs.rows is not None:
            self._rows = self._docs.rows[self._index]
        return self._rows

    @property
    def uld_offsets(self) -> dict:
        return self._uld_targets()[0]

    @property
    def uld_sorted(self) -> np.ndarray | None:
        return self._uld_targets()[1]

    def _uld_targets(self) -> tuple[dict, np.ndarray | None]:
        if self._uld is None:
            self._uld = self._docs.uld_targets(self._index)
        return self._uld


class Documents(Sequence):
    """The training documents of a spooled corpus, as a read-only sequence.

    Parameters
    ----------
    corpus : SpooledCorpus
        Its spool holds the streams ``ids`` and ``lengths`` (int32, student tokens).
    token_offsets : ndarray of int64, shape (n + 1,)
        Tokens of document ``i``: ``[token_offsets[i], token_offsets[i + 1])``.
    rows : sequence, optional
        Teacher byte rows of each document (arrays, or objects indexed like them).
    uld : UldIndex, optional
    max_cached, max_cached_bytes : int
        The most recent documents kept in memory: at most this many, or this many text bytes.
    """

    def __init__(self, corpus: SpooledCorpus, token_offsets: np.ndarray, rows=None,
                 uld: UldIndex | None = None, max_cached: int = 256,
                 max_cached_bytes: int = 1 << 26):
        self.corpus, self.token_offsets, self.rows, self.uld = corpus, token_offsets, rows, uld
        self.max_cached, self.max_cached_bytes = max_cached, max_cached_bytes
        self._recent: OrderedDict[int, StoredDocument] = OrderedDict()
        self._recent_bytes = 0

    def __len__(self) -> int:
        return len(self.corpus)

    @property
    def n_bytes(self) -> int:
        """Total UTF-8 bytes of the documents."""
        return self.corpus.n_bytes

    @property
    def n_tokens(self) -> np.ndarray:
        """Student tokens of each document."""
        return np.diff(self.token_offsets)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"document {i} of {n}")
        i = int(i) % n
        doc = self._recent.get(i)
        if doc is not None:
            self._recent.move_to_end(i)
            return doc
        (doc,) = self._load(i, i + 1)
        self._recent[i] = doc
        self._recent_bytes += len(doc.data)
        while len(self._recent) > 1 and (len(self._recent) > self.max_cached
                                         or self._recent_bytes > self.max_cached_bytes):
            self._recent_bytes -= len(self._recent.popitem(last=False)[1].data)
        return doc

    def __iter__(self) -> Iterator[StoredDocument]:
        """Every document in order, read a chunk at a time (the recent ones are left alone)."""
        for a, b in self.corpus.ranges(_CHUNK_TEXTS, _CHUNK_BYTES):
            yield from self._load(a, b)

    def _load(self, a: int, b: int) -> list[StoredDocument]:
        """Documents ``[a, b)`` read from the spool in one go per stream."""
        spool, off = self.corpus.spool, self.token_offsets
        ids = spool.read("ids", off[a], off[b]).astype(np.int64)
        lengths = spool.read("lengths", off[a], off[b]).astype(np.int64)
        out = []
        for i, data in enumerate(self.corpus.raw(a, b), a):
            s, e = off[i] - off[a], off[i + 1] - off[a]
            lens = lengths[s:e]
            starts = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64) if e > s else lens
            out.append(StoredDocument(data, TokenAlignment(ids[s:e], starts, lens, len(data)),
                                      self, i))
        return out

    def uld_targets(self, i: int) -> tuple[dict, np.ndarray | None]:
        """``({byte offset: row}, sorted teacher probabilities)`` of document ``i``."""
        if self.uld is None:
            return {}, None
        spool, (rows, keys, k) = self.corpus.spool, self.uld
        srt = spool.read("uld_rows", rows[i] * k, rows[i + 1] * k).reshape(-1, k)
        offsets = dict(zip(spool.read("uld_keys", keys[i], keys[i + 1]).tolist(),
                           spool.read("uld_vals", keys[i], keys[i + 1]).tolist(), strict=True))
        return offsets, srt


def build_documents(corpus: SpooledCorpus, tokenizer, rows=None,
                    uld: Callable[[list[str]], list] | None = None,
                    progress: bool = False) -> Documents:
    """One pass over ``corpus``: student tokens, and the ULD targets if the loss needs them.

    Parameters
    ----------
    corpus : SpooledCorpus
    tokenizer : the student's tokenizer
    rows : sequence, optional
        Teacher byte rows per text (BLD), passed on to the documents as they are.
    uld : callable, optional
        ``uld(texts)`` -> per text ``({byte offset: row}, sorted probabilities)`` (ULD).
    progress : bool
        A tqdm bar over the texts.

    Returns
    -------
    Documents
    """
    import torch
    from tqdm.auto import tqdm

    spool = corpus.spool
    tokens, uld_rows, uld_keys = array("q", [0]), array("q", [0]), array("q", [0])
    top_k = 1
    for name, dtype in [("ids", np.int32), ("lengths", np.int32), ("uld_rows", np.float32),
                        ("uld_keys", np.int64), ("uld_vals", np.int64)]:
        spool.append(name, np.zeros(0, dtype))  # every stream exists, with its dtype
    desc = "student tokens" + (" and ULD targets" if uld is not None else "")
    # the teacher's work may draw from torch's global RNG; the student's stream must not see it
    with torch.random.fork_rng(devices=[]), tqdm(
        total=len(corpus), desc=desc, unit="text", disable=not progress
    ) as bar:
        for _, texts in corpus.chunks(_CHUNK_TEXTS, _CHUNK_BYTES):
            for t in texts:
                a = align_text(t, tokenizer)
                spool.append("ids", a.ids.astype(np.int32))
                spool.append("lengths", a.lengths.astype(np.int32))
                tokens.append(tokens[-1] + len(a.ids))
            for offsets, srt in uld(texts) if uld is not None else ():
                top_k = srt.shape[1]
                spool.append("uld_rows", np.asarray(srt, np.float32).reshape(-1))
                spool.append("uld_keys", np.fromiter(offsets.keys(), np.int64, len(offsets)))
                spool.append("uld_vals", np.fromiter(offsets.values(), np.int64, len(offsets)))
                uld_rows.append(uld_rows[-1] + len(srt))
                uld_keys.append(uld_keys[-1] + len(offsets))
            bar.update(len(texts))
    spool.flush()
    logger.info("training corpus: %d texts, %d bytes, %d student tokens (spooled in %s)",
                len(corpus), corpus.n_bytes, tokens[-1], spool.folder)
    index = None
    if uld is not None:
        index = UldIndex(np.frombuffer(uld_rows, np.int64).copy(),
                         np.frombuffer(uld_keys, np.int64).copy(), top_k)
    return Documents(corpus, np.frombuffer(tokens, np.int64).copy(), rows, index)
