"""Row codecs: how one text's (n, 257) rows become bytes in a data file, and back.

Every index record names its codec, so a cache folder can hold several: a compact codec (top-k
bytes as uint8, float16 probabilities, the remaining mass) only has to be added to
:data:`CODECS`; records written with a codec this version does not know are skipped, not
misread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from sklearn_lts.distill._constants import ROW_WIDTH

__all__ = ["CODECS", "DEFAULT_CODEC", "F32Codec", "RowCodec"]


class RowCodec(Protocol):
    """What the cache needs from a codec.

    Attributes
    ----------
    name : str
        Stored in every index record.
    suffix : str
        File-name suffix of the data files written with it (one codec per data file).
    align : int
        Byte alignment of a record's first byte in its data file.
    """

    name: str
    suffix: str
    align: int

    def encode(self, rows: np.ndarray) -> bytes:
        """Bytes of one text's (n, ROW_WIDTH) rows; ``ValueError`` for any other shape."""

    def decode(self, buf: np.ndarray, n_rows: int) -> np.ndarray:
        """(n_rows, ROW_WIDTH) rows from the uint8 buffer ``buf``; ``ValueError`` if it does not
        hold them."""


@dataclass(frozen=True)
class F32Codec:
    """Raw float32 rows, ``ROW_WIDTH`` columns, C order: a record is a memory-mapped view.

    Examples
    --------
    >>> codec = CODECS["f32"]
    >>> rows = np.full((2, ROW_WIDTH), 0.5)
    >>> buf = np.frombuffer(codec.encode(rows), dtype=np.uint8)
    >>> codec.decode(buf, 2).shape, codec.decode(buf, 2).dtype
    ((2, 257), dtype('float32'))
    """

    name: str = "f32"
    suffix: str = "f32"
    align: int = 4

    def encode(self, rows: np.ndarray) -> bytes:
        """Bytes of ``rows``; ``ValueError`` unless it is (n, ROW_WIDTH)."""
        r = np.ascontiguousarray(rows, dtype=np.float32)
        if r.ndim != 2 or r.shape[1] != ROW_WIDTH:
            raise ValueError(f"rows of shape {r.shape}, expected (n, {ROW_WIDTH})")
        return r.tobytes()

    def decode(self, buf: np.ndarray, n_rows: int) -> np.ndarray:
        """Rows from the uint8 buffer ``buf`` (a view of it when possible)."""
        return buf.view(np.float32).reshape(n_rows, ROW_WIDTH)


#: Codecs by the name stored in the index.
CODECS: dict[str, RowCodec] = {"f32": F32Codec()}
#: The codec new records are written with.
DEFAULT_CODEC = "f32"
