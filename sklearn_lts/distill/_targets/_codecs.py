"""Row codecs: how one text's (n, 257) rows become bytes in a data file, and back.

Every index record names its codec, so a cache folder can hold several (``f32`` records of an
older version are read beside ``top19`` ones); records written with a codec this version does
not know are skipped, not misread.

* ``f32``: the dense rows, 257 float32 per row (1,028 bytes per text byte);
* ``top19`` (the default): per row the 19 most probable *bytes* as uint8 indices, their
  probabilities as float16, the end-of-text probability as float16 and the mass of the 237
  bytes not stored as float16: 61 bytes per text byte. End-of-text has its own field because
  its column (256) does not fit a uint8 index, and because it is the symbol whose probability
  matters most at the last row of every text (a uint16 index would cost 19 bytes more).

The *stored distribution* of a compact row gives each stored byte its stored probability,
end-of-text its stored probability, and spreads the remaining mass uniformly over the bytes not
stored; it is renormalised to sum to 1 (the float16 values do not sum to 1 exactly). That is
what :meth:`TopKCodec.decode` returns, so a training loss computed on decoded rows is exactly
the loss against the stored distribution.

Its cost, measured on SmolLM2-135M rows of 3 KB of Hamlet (``benchmarks/_scale_compact.py``):
mean ``KL(dense || stored)`` 0.049 bits per byte with ``k=19`` (0.072 with 16, 0.043 with 20);
one row in six, those whose tail holds real mass, carries 90% of it. A mean of 1e-3 would
take about 30 stored bytes per row on average, chosen row by row (about 95 bytes per row).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np

from sklearn_lts.distill._constants import EOT, N_BYTES, ROW_WIDTH

__all__ = ["CODECS", "DEFAULT_CODEC", "F32Codec", "RowCodec", "StoredRows", "TopKCodec",
           "stored_distribution", "top_k_rows"]


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


def _checked(rows: np.ndarray, dtype: type) -> np.ndarray:
    """``rows`` as a C-ordered array of ``dtype``; ``ValueError`` unless it is (n, ROW_WIDTH)."""
    r = np.ascontiguousarray(rows, dtype=dtype)
    if r.ndim != 2 or r.shape[1] != ROW_WIDTH:
        raise ValueError(f"rows of shape {r.shape}, expected (n, {ROW_WIDTH})")
    return r


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
        return _checked(rows, np.float32).tobytes()

    def decode(self, buf: np.ndarray, n_rows: int) -> np.ndarray:
        """Rows from the uint8 buffer ``buf`` (a view of it when possible)."""
        return buf.view(np.float32).reshape(n_rows, ROW_WIDTH)


class StoredRows(NamedTuple):
    """What the compact codec stores of ``n`` rows.

    Attributes
    ----------
    index : ndarray of uint8, shape (n, k)
        The ``k`` most probable bytes of each row, most probable first (ties: lower byte first).
    proba : ndarray of float16, shape (n, k)
        Their probabilities (of the row normalised to sum 1; a positive probability below the
        smallest float16 is stored as that, ``2 ** -24``, never as 0).
    eot : ndarray of float16, shape (n,)
        The end-of-text probability.
    rest : ndarray of float16, shape (n,)
        The mass of the ``256 - k`` bytes not stored.
    """

    index: np.ndarray
    proba: np.ndarray
    eot: np.ndarray
    rest: np.ndarray


def top_k_rows(rows: np.ndarray, k: int) -> StoredRows:
    """The fields the compact codec stores of dense rows (normalised to sum 1 first).

    ``ValueError`` for rows that are not (n, 257), or hold negative or non-finite values.

    Examples
    --------
    >>> row = np.zeros((1, ROW_WIDTH)); row[0, [97, 98, 99, EOT]] = [0.5, 0.25, 0.125, 0.125]
    >>> s = top_k_rows(row, 2)
    >>> s.index.tolist(), s.proba.tolist(), float(s.eot[0]), float(s.rest[0])
    ([[97, 98]], [[0.5, 0.25]], 0.125, 0.125)
    """
    p = _checked(rows, np.float64)
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("rows must be finite and non-negative")
    total = p.sum(1, keepdims=True)
    b = p[:, :N_BYTES]
    index = np.argsort(-b, axis=1, kind="stable")[:, :k]
    rest = b.copy()
    np.put_along_axis(rest, index, 0.0, axis=1)  # sum the rest: 1 - stored would cancel

    def normalised(x: np.ndarray) -> np.ndarray:
        return _half(np.divide(x, total, out=np.zeros_like(x), where=total > 0), x > 0)

    return StoredRows(index.astype(np.uint8), normalised(np.take_along_axis(b, index, 1)),
                      normalised(p[:, EOT:]).reshape(-1),
                      normalised(rest.sum(1, keepdims=True)).reshape(-1))


def _half(x: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """``x`` as float16, where a ``positive`` entry never becomes 0 (it becomes ``2 ** -24``, the
    smallest float16): a symbol with mass is never stored as impossible, which would make the
    KL from the dense row infinite."""
    h = x.astype(np.float16)
    h[(h == 0) & positive] = np.float16(2.0**-24)
    return h


def stored_distribution(stored: StoredRows) -> np.ndarray:
    """Dense float32 rows of the stored distribution (rows of zeros stay zeros).

    Stored bytes and end-of-text get their stored probabilities, the remaining mass is spread
    uniformly over the bytes not stored, and the row is renormalised to sum 1.

    Examples
    --------
    >>> row = np.zeros((1, ROW_WIDTH)); row[0, [97, 98, 99, EOT]] = [0.5, 0.25, 0.125, 0.125]
    >>> q = stored_distribution(top_k_rows(row, 2))
    >>> float(q[0, 97]), float(q[0, EOT]), float(q[0, 99] * 254), float(q.sum())
    (0.5, 0.125, 0.125, 1.0)
    """
    n, k = stored.index.shape
    out = np.empty((n, ROW_WIDTH), dtype=np.float64)
    out[:, :N_BYTES] = stored.rest.astype(np.float64)[:, None] / (N_BYTES - k)
    np.put_along_axis(out, stored.index.astype(np.intp), stored.proba.astype(np.float64), 1)
    out[:, EOT] = stored.eot
    total = out.sum(1, keepdims=True)
    return np.divide(out, total, out=out, where=total > 0).astype(np.float32)


@dataclass(frozen=True)
class TopKCodec:
    """The ``k`` most probable bytes of each row, end-of-text and the rest: ``3k + 4`` bytes.

    A row is one packed record: ``k`` uint8 byte indices, ``k`` float16 probabilities, the
    float16 end-of-text probability and the float16 mass of the other bytes (little-endian).
    Records are packed (``align=1``; numpy reads float16 fields at any offset). Decoding gives
    the stored distribution (module docstring): float32 rows that sum to 1. ``k=19`` is the
    default: 61 bytes per row keeps a cache, index included, under 64 bytes per text byte.

    Examples
    --------
    >>> codec = CODECS["top19"]
    >>> rows = np.random.default_rng(0).dirichlet(np.ones(ROW_WIDTH), size=3)
    >>> blob = codec.encode(rows)
    >>> len(blob), codec.decode(np.frombuffer(blob, dtype=np.uint8), 3).shape
    (183, (3, 257))
    """

    k: int = 19
    align: int = 1

    @property
    def name(self) -> str:
        """``"top<k>"``, stored in the index."""
        return f"top{self.k}"

    @property
    def suffix(self) -> str:
        """Same as :attr:`name`."""
        return self.name

    @property
    def dtype(self) -> np.dtype:
        """The packed record of one row."""
        return np.dtype([("index", "u1", (self.k,)), ("proba", "<f2", (self.k,)),
                         ("eot", "<f2"), ("rest", "<f2")])

    def encode(self, rows: np.ndarray) -> bytes:
        """Bytes of ``rows``; ``ValueError`` unless (n, ROW_WIDTH), finite and non-negative."""
        stored = top_k_rows(rows, self.k)
        rec = np.empty(len(stored.index), dtype=self.dtype)
        for name, values in stored._asdict().items():
            rec[name] = values
        return rec.tobytes()

    def stored(self, buf: np.ndarray, n_rows: int) -> StoredRows:
        """The stored fields of a uint8 buffer (views of it)."""
        if buf.size != n_rows * self.dtype.itemsize:
            raise ValueError(f"{buf.size} bytes do not hold {n_rows} rows of {self.name}")
        rec = buf.view(self.dtype)
        return StoredRows(*(rec[name] for name in StoredRows._fields))

    def decode(self, buf: np.ndarray, n_rows: int) -> np.ndarray:
        """Rows of the stored distribution, float32, read-only."""
        out = stored_distribution(self.stored(buf, n_rows))
        out.flags.writeable = False
        return out


#: Codecs by the name stored in the index.
CODECS: dict[str, RowCodec] = {c.name: c for c in (F32Codec(), TopKCodec(19))}
#: The codec new records are written with.
DEFAULT_CODEC = "top19"
