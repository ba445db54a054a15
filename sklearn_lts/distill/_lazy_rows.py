"""Teacher byte rows fetched when training first reads a text: on the fly, or from the cache.

``ByteDistiller.fit`` hands the trainer one :class:`LazyRows` per text instead of the rows
themselves. Training reads a text's rows only by indexing them (the byte offsets of a batch,
:func:`~sklearn_lts.distill._align.gather_byte_targets`), so the first read of a text fetches
all its rows and keeps them, as float32, in a small least-recently-used store shared by the
texts; a text evicted from it and drawn again is fetched again. Where rows come from:

* ``targets="on_the_fly"``: the teacher's byte LM runs on the whole text (the conversion needs
  its prefix). Nothing is written to disk, and the rows are the byte LM's own, not a codec's
  stored distribution: a run gives the same student as a run on a cache of ``"f32"`` records.
  This suits a teacher on the same GPU as the student (its byte conversion is then cheap next
  to a training step); on a CPU, the cache computes each text once and for all.
* ``targets="cache"``: every text is computed into the cache first (teacher work stays before
  the student is built), then read from it, decoded, when first needed; memory holds the
  compact memory map and the store, never the dense rows of the whole corpus.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from sklearn_lts.distill._constants import ROW_WIDTH
from sklearn_lts.distill._spool import precompute_chunks
from sklearn_lts.distill._targets import ByteTargetCache

__all__ = ["CacheReader", "LazyRows", "RowsOnDemand", "byte_targets"]

logger = logging.getLogger("sklearn_lts")

#: Rows kept by default (float32: 1,028 bytes each, so about 256 MiB)
DEFAULT_MAX_ROWS = 1 << 18


class RowsOnDemand(Sequence):
    """Teacher byte rows of ``texts``, each fetched from ``source`` when first read.

    ``source`` has ``next_byte_proba_batch(texts)`` (a ``ByteLevelLM``, or :class:`CacheReader`).
    Item ``i`` is a :class:`LazyRows` (nothing fetched yet); :meth:`rows` fetches. Fetched rows
    stay in a least-recently-used store of at most ``max_rows`` rows, keyed by text (repeated
    texts are fetched once; the last text read always stays, however long).

    Examples
    --------
    >>> class Uniform:
    ...     calls = 0
    ...     def next_byte_proba_batch(self, texts):
    ...         Uniform.calls += len(texts)
    ...         return [np.full((len(t.encode()) + 1, 257), 1 / 257) for t in texts]
    >>> rows = RowsOnDemand(Uniform(), ["ab", "c"])
    >>> rows[0].shape, Uniform.calls
    ((3, 257), 0)
    >>> rows[0][[0, 2]].shape, rows[0][1].dtype, Uniform.calls
    ((2, 257), dtype('float32'), 1)
    """

    def __init__(self, source: Any, texts: Sequence[str], max_rows: int = DEFAULT_MAX_ROWS):
        self.source = source
        self.texts = texts if isinstance(texts, Sequence) else list(texts)  # a corpus on disk
        self.max_rows = int(max_rows)
        self._store: OrderedDict[str, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> LazyRows:
        if not -len(self) <= i < len(self):
            raise IndexError(f"text {i} of {len(self)}")
        i %= len(self)
        return LazyRows(self, i, len(self.texts[i].encode("utf-8")) + 1)

    def rows(self, i: int) -> np.ndarray:
        """The (n_bytes + 1, 257) float32 rows of text ``i``, fetched if not in the store."""
        text = self.texts[i]
        got = self._store.get(text)
        if got is not None:
            self._store.move_to_end(text)
            return got
        (rows,) = self.source.next_byte_proba_batch([text])
        logger.debug("teacher byte rows of text %d fetched (%d rows)", i, len(rows))
        got = np.asarray(rows, dtype=np.float32)
        got.flags.writeable = False
        self._store[text] = got
        kept = sum(len(r) for r in self._store.values())
        while kept > self.max_rows and len(self._store) > 1:
            kept -= len(self._store.popitem(last=False)[1])
        return got


class LazyRows:
    """One text's rows, fetched when first indexed (``rows[positions]``, ``np.asarray``).

    Has the ``shape``, ``dtype`` and indexing of the (n_bytes + 1, 257) float32 array it stands
    for.
    """

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, source: RowsOnDemand, index: int, n_rows: int):
        self.source, self.index, self.shape = source, index, (n_rows, ROW_WIDTH)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        return self.source.rows(self.index)[key]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        rows = self.source.rows(self.index)
        return np.array(rows, dtype=dtype) if copy else np.asarray(rows, dtype=dtype)


class CacheReader:
    """A :class:`RowsOnDemand` source that reads a :class:`ByteTargetCache` (checked, decoded)."""

    def __init__(self, cache: ByteTargetCache):
        self.cache = cache

    def next_byte_proba_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        return self.cache.get_many(texts)


def byte_targets(estimator: Any, texts: list[str]) -> RowsOnDemand:
    """Teacher byte rows of ``texts`` for ``ByteDistiller.fit``, as its ``targets`` says.

    ``"cache"``: every text not cached yet is computed into ``<cache_dir>/bld_targets`` now,
    and read from there when training first needs it; ``"on_the_fly"``: nothing is computed
    or written here.
    """
    model, tok = estimator._load_teacher()
    byte_lm = estimator._byte_lm(model, tok)
    if estimator.targets == "on_the_fly":
        logger.info("teacher byte targets on the fly: %d texts, no cache", len(texts))
        return RowsOnDemand(byte_lm, texts)
    cache = ByteTargetCache(os.path.join(estimator._cache_root(), "bld_targets"), byte_lm)
    precompute_chunks(cache, texts, progress=bool(estimator.verbose))  # flat memory
    return RowsOnDemand(CacheReader(cache), texts)
