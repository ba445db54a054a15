"""A training corpus read once onto disk: append-only files, a compact index in memory.

``fit`` reads its corpus exactly once (a generator cannot be read twice), checking every item,
into a :class:`Spool`: a private temporary folder of append-only files, one per stream
(``texts``: UTF-8 bytes; later student token ids, ...), deleted when the spool is garbage
collected or the interpreter exits. What stays in memory is one int64 offset per document and
stream. Reads go through ``numpy.fromfile`` (no memory map), so what a process has read does
not stay resident: memory stays flat as the corpus grows.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from array import array
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from sklearn_lts.distill._sources import TextSource, iter_texts

__all__ = ["Spool", "SpooledCorpus", "TextsView", "precompute_chunks", "spool_corpus",
           "text_chunks"]

# a chunk of texts read or processed at once: at most this many texts and bytes
_CHUNK_TEXTS, _CHUNK_BYTES = 256, 1 << 20


class Spool:
    """Named append-only streams of one dtype each, in a temporary folder under ``parent``.

    Examples
    --------
    >>> import tempfile
    >>> s = Spool(tempfile.mkdtemp())
    >>> s.append("ids", np.array([3, 4, 5], np.int32))
    >>> s.append("ids", np.array([6], np.int32))
    >>> s.size("ids"), s.read("ids", 2, 4).tolist()
    (4, [5, 6])
    >>> s.cleanup(); os.path.exists(s.folder)
    False
    """

    def __init__(self, parent: str):
        os.makedirs(parent, exist_ok=True)
        self.folder = tempfile.mkdtemp(prefix="spool-", dir=parent)
        self._dtypes: dict[str, np.dtype] = {}
        self._sizes: dict[str, int] = {}
        self._writers: dict = {}
        # the files go with the spool (or at exit), whoever holds the last reference
        self._finalizer = weakref.finalize(self, _remove, self._writers, self.folder)

    def _path(self, name: str) -> str:
        return os.path.join(self.folder, name + ".bin")

    def append(self, name: str, values: np.ndarray) -> None:
        """Append ``values`` to stream ``name`` (its dtype is fixed by the first append)."""
        dtype = self._dtypes.setdefault(name, np.asarray(values).dtype)
        if name not in self._writers:
            self._writers[name] = open(self._path(name), "ab")  # noqa: SIM115 (closed in flush)
        data = np.ascontiguousarray(values, dtype=dtype)
        self._writers[name].write(data.tobytes())
        self._sizes[name] = self._sizes.get(name, 0) + data.size

    def flush(self) -> None:
        """Close the writers: what was appended is on disk for :meth:`read`."""
        for f in self._writers.values():
            f.close()
        self._writers.clear()

    def size(self, name: str) -> int:
        """Number of items in stream ``name`` (0 if never written)."""
        return self._sizes.get(name, 0)

    def read(self, name: str, start: int, stop: int) -> np.ndarray:
        """Items ``[start, stop)`` of stream ``name``, a fresh array (no memory map)."""
        if name in self._writers:
            self._writers[name].flush()
        dtype = self._dtypes[name]
        return np.fromfile(self._path(name), dtype, int(stop - start),
                           offset=int(start) * dtype.itemsize)

    def cleanup(self) -> None:
        """Delete the folder now."""
        self._finalizer()


def _remove(writers: dict, folder: str) -> None:
    for f in writers.values():
        f.close()
    shutil.rmtree(folder, ignore_errors=True)


class SpooledCorpus(Sequence):
    """The texts of a corpus on disk, in order (:func:`spool_corpus` makes one).

    A read-only sequence of str: ``corpus[i]`` reads text ``i`` from disk, ``corpus[a:b:c]`` is
    a :class:`TextsView` (nothing read), iteration reads a chunk of texts at a time.

    Attributes
    ----------
    spool : Spool
        Holds the stream ``texts`` (UTF-8 bytes); documents add their own streams.
    text_offsets : ndarray of int64, shape (n_texts + 1,)
        Text ``i`` is ``texts[text_offsets[i]:text_offsets[i + 1]]``.
    """

    def __init__(self, spool: Spool, text_offsets: np.ndarray):
        self.spool = spool
        self.text_offsets = text_offsets

    def __len__(self) -> int:
        return len(self.text_offsets) - 1

    def __getitem__(self, i):
        if isinstance(i, slice):
            return TextsView(self, range(len(self))[i])
        (data,) = self.raw(*_one(i, len(self)))
        return data.decode("utf-8")

    def __iter__(self) -> Iterator[str]:
        for _, texts in self.chunks(_CHUNK_TEXTS, _CHUNK_BYTES):
            yield from texts

    @property
    def n_bytes(self) -> int:
        """Total UTF-8 bytes of the texts."""
        return int(self.text_offsets[-1])

    def raw(self, start: int, stop: int) -> list[bytes]:
        """UTF-8 bytes of texts ``[start, stop)``, read in one go."""
        off = self.text_offsets[start : stop + 1]
        blob = self.spool.read("texts", off[0], off[-1]).tobytes()
        return [blob[a - off[0] : b - off[0]] for a, b in zip(off[:-1], off[1:], strict=True)]

    def ranges(self, max_texts: int, max_bytes: int) -> Iterator[tuple[int, int]]:
        """Consecutive ``[a, b)`` of at most ``max_texts`` texts and ``max_bytes`` bytes (or
        one text, when a text alone is longer).

        Examples
        --------
        >>> c = SpooledCorpus(None, np.array([0, 5, 10, 30, 31, 32]))
        >>> list(c.ranges(max_texts=3, max_bytes=12))
        [(0, 2), (2, 3), (3, 5)]
        """
        off, a = self.text_offsets, 0
        while a < len(self):
            fit = int(np.searchsorted(off, off[a] + max_bytes, side="right")) - 1
            b = min(max(fit, a + 1), a + max_texts, len(self))
            yield a, b
            a = b

    def chunks(self, max_texts: int, max_bytes: int) -> Iterator[tuple[int, list[str]]]:
        """``(index of the first, texts)`` of the consecutive chunks of :meth:`ranges`."""
        for a, b in self.ranges(max_texts, max_bytes):
            yield a, [t.decode("utf-8") for t in self.raw(a, b)]


class TextsView(Sequence):
    """Texts ``indices`` (a range) of a :class:`SpooledCorpus`, read when indexed.

    Examples
    --------
    >>> import tempfile
    >>> view = spool_corpus(["a", "b", "c", "d"], tempfile.mkdtemp())[1::2]
    >>> len(view), list(view), view[-1], list(view[::-1])
    (2, ['b', 'd'], 'd', ['d', 'b'])
    """

    def __init__(self, corpus: SpooledCorpus, indices: range):
        self.corpus, self.indices = corpus, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return TextsView(self.corpus, self.indices[i])
        return self.corpus[self.indices[i]]


def _one(i, n: int) -> tuple[int, int]:
    """``(i, i + 1)`` for an index of a sequence of ``n`` (negative ones too), or IndexError."""
    if not -n <= i < n:
        raise IndexError(f"text {i} of {n}")
    i = int(i) % n
    return i, i + 1


def text_chunks(texts: Iterable[str], max_texts: int = 256,
                max_chars: int = 1 << 20) -> Iterator[list[str]]:
    """Consecutive lists of at most ``max_texts`` texts and ``max_chars`` characters (or one
    longer text).

    Examples
    --------
    >>> list(text_chunks(["ab", "cd", "efgh", "i"], max_texts=3, max_chars=4))
    [['ab', 'cd'], ['efgh'], ['i']]
    """
    chunk: list[str] = []
    size = 0
    for t in texts:
        if chunk and (len(chunk) == max_texts or size + len(t) > max_chars):
            yield chunk
            chunk, size = [], 0
        chunk.append(t)
        size += len(t)
    if chunk:
        yield chunk


def precompute_chunks(cache, texts: Sequence[str], progress: bool) -> None:
    """``cache.precompute`` a chunk of texts at a time (never the whole corpus in memory)."""
    from tqdm.auto import tqdm

    with tqdm(total=len(texts), desc="teacher byte targets", unit="text",
              disable=not progress) as bar:
        for chunk in text_chunks(texts):
            # the bar moves per stored batch: a chunk of long texts can take many minutes
            done = cache.precompute(chunk, progress=False, on_batch=bar.update)
            bar.update(len(chunk) - done)


def spool_corpus(X, parent: str, what: str = "X") -> SpooledCorpus:
    """Read the corpus ``X`` once (see :func:`~sklearn_lts.distill.iter_texts`) onto disk.

    Every item is checked while it is read, before any model work. ``parent`` is the folder
    that receives the spool's temporary folder.

    Raises
    ------
    TypeError, ValueError, FileNotFoundError
        For what :func:`~sklearn_lts.distill.iter_texts` refuses, and for an empty corpus (or
        an empty shard).
    """
    texts = iter_texts(X, what)
    spool = Spool(parent)
    offsets = array("q", [0])
    for t in texts:
        data = t.encode("utf-8")
        spool.append("texts", np.frombuffer(data, np.uint8))
        offsets.append(offsets[-1] + len(data))
    spool.flush()
    if len(offsets) == 1:
        spool.cleanup()
        raise ValueError(f"{what} is empty: pass at least one text{_empty_hint(X)}")
    return SpooledCorpus(spool, np.frombuffer(offsets, np.int64).copy())


def _empty_hint(X) -> str:
    """Why a corpus may have read as empty: a used-up iterator, or too small for its shards."""
    if isinstance(X, TextSource) and X.world_size > 1:
        return (f" (shard {X.rank} of {X.world_size} got no documents: the corpus has fewer "
                "documents than shards)")
    data = X.data if isinstance(X, TextSource) else X
    if isinstance(data, Iterator):
        return " (a generator or iterator can be read only once: was it read already?)"
    return ""
