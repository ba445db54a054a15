"""Training corpora: what ``ByteDistiller.fit`` reads texts from, once, in order, by shard.

A corpus is one of

* a list or tuple of str, or any other iterable of str (a generator is read once);
* a path (str or :class:`os.PathLike`) of an existing folder or file, or a list of
  :class:`os.PathLike` paths: a ``.jsonl`` file holds one document per non-blank line (the
  ``text_key`` field of its JSON object); any other file is one document; a folder holds its
  ``.txt`` and ``.jsonl`` files, searched recursively and read in sorted order;
* a Hugging Face ``datasets.Dataset`` or ``IterableDataset`` with a ``text_key`` column
  (``datasets`` is never imported here: such an object comes with it already imported);
* a :class:`TextSource`, which wraps any of these with the options above.

A list of str is always a list of texts; name files with :class:`pathlib.Path` objects.

Sharding (distributed training): rank ``r`` of ``w`` gets documents ``r, r + w, r + 2w, ...``
of the corpus order above. It never opens other ranks' ``.txt`` files nor parses their JSON
lines, and shards a ``Dataset`` by index (``Dataset.shard(contiguous=False)``); a generator,
an ``IterableDataset`` and the lines of a ``.jsonl`` file are still read past (not checked) up
to each of its documents. Items are checked as they are read: an error names the (global)
index of the offending document.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from numbers import Integral
from typing import Any

from sklearn_lts.distill._corpus import refuse_unordered

__all__ = ["TextSource", "iter_texts", "shard_texts"]

_FOLDER_SUFFIXES = (".txt", ".jsonl")


@dataclass(frozen=True)
class TextSource:
    """A training corpus with the options to read it: JSON field and shard.

    ``ByteDistiller.fit`` accepts the corpus itself (a list, a generator, a folder, ...); wrap it
    in a ``TextSource`` to read another JSON field or to take one shard of it.

    Parameters
    ----------
    data : corpus
        Texts, an iterable of texts, a folder or file path, a list of :class:`os.PathLike`
        paths, or a Hugging Face ``Dataset`` / ``IterableDataset`` (see
        :func:`iter_texts`).
    text_key : str, default="text"
        Field of each ``.jsonl`` line and column of a ``Dataset`` that holds the text.
    rank, world_size : int, default=0, 1
        This source is shard ``rank`` of ``world_size``: documents ``rank``,
        ``rank + world_size``, ... of ``data``.

    Examples
    --------
    >>> from sklearn_lts.distill import TextSource
    >>> src = TextSource(["a", "b", "c", "d", "e"])
    >>> list(src), list(src.shard(1, 2))
    (['a', 'b', 'c', 'd', 'e'], ['b', 'd'])
    >>> list(src.shard(1, 2).shard(0, 2))  # a shard of a shard is a shard
    ['b']
    """

    data: Any
    text_key: str = "text"
    rank: int = 0
    world_size: int = 1

    def __post_init__(self):
        if isinstance(self.data, TextSource):
            raise TypeError("data is already a TextSource: use its shard() or replace()")
        check_shard(self.rank, self.world_size)

    def shard(self, rank: int, world_size: int) -> TextSource:
        """Shard ``rank`` of ``world_size`` of this source (documents ``rank::world_size``)."""
        check_shard(rank, world_size)
        # shard r2 of w2 of shard r1 of w1: global documents r1 + w1 * (r2 + w2 * m)
        return replace(self, rank=self.rank + self.world_size * rank,
                       world_size=self.world_size * world_size)

    def __iter__(self) -> Iterator[str]:
        return iter_texts(self)


def shard_texts(X, rank: int, world_size: int) -> TextSource:
    """Shard ``rank`` of ``world_size`` of a corpus or of a :class:`TextSource` (the hook for
    distributed training: each rank fits on ``shard_texts(X, rank, world_size)``).

    Examples
    --------
    >>> list(shard_texts(["a", "b", "c"], 0, 2))
    ['a', 'c']
    >>> list(shard_texts(TextSource(["a", "b", "c"]).shard(0, 1), 1, 2))
    ['b']
    """
    if isinstance(X, TextSource):
        return X.shard(rank, world_size)
    return TextSource(X, rank=rank, world_size=world_size)


def check_shard(rank: int, world_size: int) -> None:
    """``ValueError`` unless ``0 <= rank < world_size``."""
    if not (isinstance(world_size, Integral) and isinstance(rank, Integral)
            and 0 <= rank < world_size):
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank!r}, "
                         f"world_size={world_size!r}")


def iter_texts(X, what: str = "X") -> Iterator[str]:
    """The texts of a corpus (or of a :class:`TextSource` shard of it), read lazily in order.

    The kind of ``X`` is checked at once (a ``TypeError`` or ``FileNotFoundError`` here);
    items are checked as they are read. An empty corpus yields nothing: callers decide.

    Parameters
    ----------
    X : corpus or TextSource
        See the module notes: texts, an iterable of texts, a folder or file path, a list of
        :class:`os.PathLike`, or a Hugging Face ``Dataset`` / ``IterableDataset``.
    what : str, default="X"
        Name of the argument in error messages.

    Yields
    ------
    str

    Examples
    --------
    >>> from sklearn_lts.distill import iter_texts
    >>> list(iter_texts(t.upper() for t in ["a", "b"]))
    ['A', 'B']
    >>> iter_texts("no such text file")
    Traceback (most recent call last):
    ...
    TypeError: X must be a list of texts or a folder/file path, not a single string that \
names no existing file or folder ('no such text file')
    """
    src = X if isinstance(X, TextSource) else TextSource(X)
    data, key, r, w = src.data, src.text_key, src.rank, src.world_size
    if isinstance(data, (str, os.PathLike)):
        return _iter_files(_files_of([data], what), key, r, w)
    if isinstance(data, bytes):
        raise TypeError(f"{what} must be a list of texts or a folder/file path, not bytes")
    refuse_unordered(data, what)
    if _is_hf_dataset(data):
        return _iter_dataset(data, key, r, w, what)
    if isinstance(data, (list, tuple)) and data and all(
        isinstance(p, os.PathLike) for p in data
    ):
        return _iter_files(_files_of(data, what), key, r, w)
    if isinstance(data, (list, tuple)):
        return _checked(enumerate(data[r::w], 0), r, w, what)
    if not isinstance(data, Iterable):
        raise TypeError(f"{what} must be a list of texts or a folder/file path, not a "
                        f"{type(data).__name__}")
    return _checked(((i, t) for i, t in enumerate(data) if i % w == r), 0, 1, what)


def _checked(items: Iterable[tuple[int, Any]], r: int, w: int, what: str) -> Iterator[str]:
    """The texts of ``(local index, item)`` pairs; a non-str names its global index."""
    for j, t in items:
        if not isinstance(t, str):
            raise TypeError(f"{what} must hold strings only, found {type(t).__name__} at "
                            f"index {r + w * j}")
        yield t


def _files_of(paths: Iterable, what: str) -> list[str]:
    """Every file to read, in order: folders expand to their sorted .txt/.jsonl files."""
    out: list[str] = []
    for p in paths:
        path = os.fspath(p)
        if os.path.isdir(path):
            found = sorted(
                os.path.join(root, f) for root, _, files in os.walk(path) for f in files
                if f.endswith(_FOLDER_SUFFIXES)
            )
            if not found:
                raise ValueError(f"{what}: no .txt or .jsonl files in the folder {path!r}")
            out.extend(found)
        elif os.path.isfile(path):
            out.append(path)
        elif isinstance(p, str):
            raise TypeError(f"{what} must be a list of texts or a folder/file path, not a single "
                            f"string that names no existing file or folder ({path[:40]!r})")
        else:
            raise FileNotFoundError(f"{what}: no such file or folder: {path!r}")
    return out


def _iter_files(files: list[str], key: str, r: int, w: int) -> Iterator[str]:
    """Documents of the files in order, only those of shard ``r`` of ``w`` read in full."""
    i = 0  # global document index
    for path in files:
        if not path.endswith(".jsonl"):
            if i % w == r:
                with open(path, encoding="utf-8") as f:
                    yield f.read()
            i += 1
            continue
        with open(path, "rb") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                if i % w == r:
                    yield _json_text(line, key, path, n)
                i += 1


def _json_text(line: bytes, key: str, path: str, n: int) -> str:
    """The ``key`` field of one JSON line, or an error that names the file and line."""
    try:
        obj = json.loads(line)
    except ValueError as e:
        raise ValueError(f"{path}, line {n}: not valid JSON ({e})") from None
    if not isinstance(obj, dict) or key not in obj:
        raise ValueError(f"{path}, line {n}: no {key!r} field (set text_key with TextSource)")
    if not isinstance(obj[key], str):
        raise TypeError(f"{path}, line {n}: the {key!r} field is a "
                        f"{type(obj[key]).__name__}, not a string")
    return obj[key]


def _is_hf_dataset(data) -> bool:
    """Whether ``data`` is a ``datasets`` (Iterable)Dataset, without importing ``datasets``."""
    mod = sys.modules.get("datasets")
    return mod is not None and isinstance(data, (mod.Dataset, mod.IterableDataset))


def _iter_dataset(ds, key: str, r: int, w: int, what: str) -> Iterator[str]:
    """The ``key`` column of a Hugging Face dataset, shard ``r`` of ``w``."""
    columns = ds.column_names
    if columns is not None and key not in columns:
        raise ValueError(f"{what} has no {key!r} column (columns: {columns}); "
                         "set text_key with TextSource")
    if isinstance(ds, sys.modules["datasets"].Dataset):  # map-style: shard by index, batches
        if w > 1:
            ds = ds.shard(num_shards=w, index=r, contiguous=False)
        rows = (t for batch in ds.select_columns([key]).iter(batch_size=1024)
                for t in batch[key])
        return _checked(enumerate(rows), r, w, what)
    rows = (t for i, row in enumerate(ds) if i % w == r for t in [row[key]])
    return _checked(enumerate(rows), r, w, what)
