"""Teacher byte rows computed inside training, when a batch first needs a text: no cache at all.

``ByteDistiller(targets="on_the_fly")`` hands the trainer one :class:`LazyRows` per text instead
of the rows themselves. Training reads a text's rows only by indexing them (the byte offsets of
the batch, :func:`~sklearn_lts.distill._align.gather_byte_targets`), so the first read of a
text runs the teacher's byte LM on the whole text (the conversion needs its prefix) and keeps
the rows, as float32, in a small least-recently-used store shared by the texts; a text
evicted from it and drawn again is recomputed. The rows are the byte LM's own, not a codec's
stored distribution: with the same teacher a run gives the same student as a run on a cache of
``"f32"`` records.

This suits a teacher on the same GPU as the student (its byte conversion is then cheap next to
a training step, and nothing is written to disk); on a CPU, ``targets="cache"`` computes each
text once and for all.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from sklearn_lts.distill._constants import ROW_WIDTH
from sklearn_lts.distill._teacher import teacher_byte_rows

__all__ = ["LazyRows", "OnTheFlyRows", "byte_targets"]

#: Rows kept by default (float32: 1,028 bytes each, so about 256 MiB)
DEFAULT_MAX_ROWS = 1 << 18


class OnTheFlyRows(Sequence):
    """Teacher byte rows of ``texts``, each computed with ``byte_lm`` when first read.

    Item ``i`` is a :class:`LazyRows` (nothing computed yet); :meth:`rows` computes. Computed
    rows stay in a least-recently-used store of at most ``max_rows`` rows (the last text read
    always stays, however long).

    Examples
    --------
    >>> class Uniform:
    ...     calls = 0
    ...     def next_byte_proba_batch(self, texts):
    ...         Uniform.calls += len(texts)
    ...         return [np.full((len(t.encode()) + 1, 257), 1 / 257) for t in texts]
    >>> rows = OnTheFlyRows(Uniform(), ["ab", "c"])
    >>> rows[0].shape, Uniform.calls
    ((3, 257), 0)
    >>> rows[0][[0, 2]].shape, rows[0][1].dtype, Uniform.calls
    ((2, 257), dtype('float32'), 1)
    """

    def __init__(self, byte_lm: Any, texts: Sequence[str], max_rows: int = DEFAULT_MAX_ROWS):
        self.byte_lm = byte_lm
        self.texts = list(texts)
        self.max_rows = int(max_rows)
        self._store: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i: int) -> LazyRows:
        if not -len(self) <= i < len(self):
            raise IndexError(f"text {i} of {len(self)}")
        i %= len(self)
        return LazyRows(self, i, len(self.texts[i].encode("utf-8")) + 1)

    def rows(self, i: int) -> np.ndarray:
        """The (n_bytes + 1, 257) float32 rows of text ``i``, computed if not in the store."""
        got = self._store.get(i)
        if got is not None:
            self._store.move_to_end(i)
            return got
        (rows,) = self.byte_lm.next_byte_proba_batch([self.texts[i]])
        got = np.asarray(rows, dtype=np.float32)
        got.flags.writeable = False
        self._store[i] = got
        kept = sum(len(r) for r in self._store.values())
        while kept > self.max_rows and len(self._store) > 1:
            kept -= len(self._store.popitem(last=False)[1])
        return got


class LazyRows:
    """One text's rows, computed when first indexed (``rows[positions]``, ``np.asarray``).

    Has the ``shape``, ``dtype`` and indexing of the (n_bytes + 1, 257) float32 array it stands
    for.
    """

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, source: OnTheFlyRows, index: int, n_rows: int):
        self.source, self.index, self.shape = source, index, (n_rows, ROW_WIDTH)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        return self.source.rows(self.index)[key]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        rows = self.source.rows(self.index)
        return np.array(rows, dtype=dtype) if copy else np.asarray(rows, dtype=dtype)


def byte_targets(estimator: Any, texts: list[str]) -> Sequence:
    """Teacher byte rows of ``texts`` for ``ByteDistiller.fit``, as its ``targets`` says.

    ``"cache"``: computed once into ``<cache_dir>/bld_targets`` and read from there;
    ``"on_the_fly"``: an :class:`OnTheFlyRows` (nothing is computed or written here).
    """
    model, tok = estimator._load_teacher()
    byte_lm = estimator._byte_lm(model, tok)
    if estimator.targets == "on_the_fly":
        return OnTheFlyRows(byte_lm, texts)
    folder = os.path.join(estimator._cache_root(), "bld_targets")
    return teacher_byte_rows(byte_lm, texts, folder, bool(estimator.verbose))
