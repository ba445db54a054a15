"""Append-only data files of a cache folder: checked, memory-mapped reads and durable appends.

Data files are never truncated, rewritten or shrunk, so a memory map of one never sees bytes
vanish under it (which would end its process with SIGBUS). Bytes that no valid record names
(an interrupted write, a damaged record) stay where they are as dead space. A writer appends to
the newest data file only if that file still holds every byte any index line gives in it; after
a file was cut or deleted it starts the next one (``rows-00001.f32``, ...), so new rows never
land where an old record says its rows are.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

import numpy as np

from sklearn_lts.distill._targets._codecs import CODECS, RowCodec
from sklearn_lts.distill._targets._records import IndexRecord, payload_digest

__all__ = ["DataFiles", "Fetched"]


class Fetched(NamedTuple):
    """Rows read for one record, or why there are none (``kind``: "missing", "cut",
    "checksum" or "decode"; ``problem``: the details)."""

    rows: np.ndarray | None
    kind: str = ""
    problem: str = ""


class _Map(NamedTuple):
    inode: tuple[int, int]
    array: np.memmap


class DataFiles:
    """The data files of one cache folder.

    Examples
    --------
    >>> import dataclasses, tempfile
    >>> files, codec = DataFiles(tempfile.mkdtemp()), CODECS["f32"]
    >>> blob = codec.encode(np.ones((2, 257)))
    >>> name = files.choose_file({}, codec)
    >>> (offset,) = files.append(name, [blob], codec.align)
    >>> rec = IndexRecord("t", "f32", name, offset, len(blob), 2, payload_digest(blob))
    >>> name, float(files.read(rec).rows.sum())
    ('rows-00000.f32', 514.0)
    >>> files.read(dataclasses.replace(rec, digest="0" * 32)).problem
    'checksum mismatch in rows-00000.f32 at byte 0'
    """

    def __init__(self, folder: str):
        self.folder = folder
        self._maps: dict[str, _Map] = {}

    # ---------------------------------------------------------------------------- reading
    def read(self, rec: IndexRecord) -> Fetched:
        """The rows of ``rec`` (a read-only view of the memory map) once their bytes are checked.

        A record is refused when its data file is missing, ends before the record does, or
        holds bytes whose checksum differs from the record's.
        """
        codec = CODECS[rec.codec]
        path = os.path.join(self.folder, rec.file)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._maps.pop(rec.file, None)
            return Fetched(None, "missing", f"data file {rec.file} is missing")
        if st.st_size < rec.end:
            self._maps.pop(rec.file, None)  # never touch pages past the end of a cut file
            return Fetched(None, "cut", f"{rec.file} ends at byte {st.st_size}, before the "
                                        f"rows' end {rec.end}")
        buf = self._buffer(rec, path, (st.st_dev, st.st_ino))
        if payload_digest(buf) != rec.digest:
            return Fetched(None, "checksum", f"checksum mismatch in {rec.file} at byte "
                                             f"{rec.offset}")
        try:
            return Fetched(codec.decode(buf, rec.n_rows))
        except ValueError as e:
            return Fetched(None, "decode", f"rows do not decode ({e})")

    def _buffer(self, rec: IndexRecord, path: str, inode: tuple[int, int]) -> np.ndarray:
        if rec.nbytes == 0:
            return np.zeros(0, dtype=np.uint8)
        held = self._maps.get(rec.file)
        if held is None or held.inode != inode or held.array.shape[0] < rec.end:
            # a new map of the whole file; views of an older map keep that one alive
            held = _Map(inode, np.memmap(path, dtype=np.uint8, mode="r"))
            self._maps[rec.file] = held
        return held.array[rec.offset : rec.end]

    # ---------------------------------------------------------------------------- writing
    def size(self, name: str) -> int:
        """Size of a data file in bytes (0 when missing)."""
        try:
            return os.path.getsize(os.path.join(self.folder, name))
        except FileNotFoundError:
            return 0

    def choose_file(self, claims: dict[str, int], codec: RowCodec) -> str:
        """The data file to append to: the newest one, unless it lost bytes an index line names.

        ``claims`` maps file names to the largest end offset any index line gives in them.
        """
        pattern = re.compile(rf"rows-(\d{{5,}})\.{re.escape(codec.suffix)}")
        names = set(claims) | set(os.listdir(self.folder))
        numbers = [int(m.group(1)) for m in map(pattern.fullmatch, names) if m is not None]
        if not numbers:
            return f"rows-00000.{codec.suffix}"
        newest = max(numbers)
        name = f"rows-{newest:05d}.{codec.suffix}"
        if self.size(name) >= claims.get(name, 0):
            return name
        return f"rows-{newest + 1:05d}.{codec.suffix}"

    def append(self, name: str, blobs: list[bytes], align: int) -> list[int]:
        """Append ``blobs`` to a data file (each at an ``align``-ed offset), flush them to disk,
        and return their offsets."""
        offsets = []
        with open(os.path.join(self.folder, name), "ab") as f:
            pos = f.tell()
            for blob in blobs:
                pad = -pos % align
                f.write(b"\x00" * pad)
                offsets.append(pos + pad)
                f.write(blob)
                pos += pad + len(blob)
            f.flush()
            os.fsync(f.fileno())  # rows on disk before any index line names them
        return offsets
