"""The variable-length row codec: per row, as few stored bytes as a KL budget allows.

A row keeps its most probable bytes, most probable first, until ``KL(dense || stored)`` of that
row, quantisation included, is at most ``budget_bits``; each stored byte costs two bytes (its
uint8 index and a uint8 *log code*), a row three more (its count, the end-of-text code and the
code of the remaining mass). A text's record is those five fields, field after field, and
compressed with LZMA (the codes of a row grow slowly, most probable first: stored as
differences, they compress well).

A log code ``c`` in 0..254 stands for the weight ``2 ** (-c / step)``; 255 stands for 0. The
decoder renormalises, so only the ratios of the weights matter: the encoder tries a few shifts of
the whole row's codes (fractions of a step, never stored) and, for the fewest bytes that meet
the budget, keeps the shift with the smallest KL. A positive probability below the smallest
weight (``2 ** (-254 / 12)``, about 4e-7, for ``step=12``) is stored as that weight, never as 0.
The *stored distribution* gives each stored byte and end-of-text their weights, spreads the
weight of the rest uniformly over the bytes not stored, and renormalises to sum 1.
"""

from __future__ import annotations

import lzma
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from sklearn_lts.distill._constants import EOT, N_BYTES, ROW_WIDTH

__all__ = ["QuantisedCodec", "VarRows", "checked_rows", "code_weight", "encode_rows",
           "kl_by_count", "log_codes", "var_distribution"]

#: The code of a zero weight.
ZERO = 255
#: The most bytes a row stores (its count is a uint8).
MAX_COUNT = 255
_LN2 = float(np.log(2.0))
# a 1 MiB window: a text's record rarely needs more, and preset 9's 64 MiB costs ~70 ms a call
_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": 1 << 20}]


def checked_rows(rows: np.ndarray, dtype: type) -> np.ndarray:
    """``rows`` as a C-ordered array of ``dtype``; ``ValueError`` unless it is (n, ROW_WIDTH)."""
    r = np.ascontiguousarray(rows, dtype=dtype)
    if r.ndim != 2 or r.shape[1] != ROW_WIDTH:
        raise ValueError(f"rows of shape {r.shape}, expected (n, {ROW_WIDTH})")
    return r


def log_codes(p: np.ndarray, step: int, shift: float = 0.0) -> np.ndarray:
    """uint8 codes of probabilities: ``round(-step * log2 p + shift)`` in 0..254, 255 for 0.

    Examples
    --------
    >>> log_codes(np.array([1.0, 0.5, 1e-30, 0.0]), 12).tolist()
    [0, 12, 254, 255]
    """
    with np.errstate(divide="ignore"):
        c = np.clip(np.round(-step * np.log2(p) + shift), 0, ZERO - 1)
    return np.where(p > 0, c, ZERO).astype(np.uint8)


def code_weight(codes: np.ndarray, step: int) -> np.ndarray:
    """The weights of codes, float64: ``2 ** (-c / step)``, 0 for code 255.

    Examples
    --------
    >>> code_weight(np.array([0, 16, 255], dtype=np.uint8), 16).tolist()
    [1.0, 0.5, 0.0]
    """
    w = np.exp2(-codes.astype(np.float64) / step)
    return np.where(codes == ZERO, 0.0, w)


def _plogp_over(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``p * ln(p / q)`` elementwise, 0 where ``p == 0``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)


def _cum(x: np.ndarray, reverse: bool = False) -> np.ndarray:
    """Sums of the first (or, ``reverse``, the last) ``k`` columns, ``k = 0 .. width``."""
    c = np.cumsum(x[:, ::-1] if reverse else x, axis=1)
    c = np.concatenate([np.zeros((len(x), 1)), c], axis=1)
    return c[:, ::-1] if reverse else c


def kl_by_count(p: np.ndarray, step: int, shift: float = 0.0) -> np.ndarray:
    """``KL(p || stored)`` in bits of each row of ``p`` storing ``k = 0 .. 256`` bytes.

    ``p``: (n, ROW_WIDTH) rows summing to 1 whose 256 byte columns are sorted in decreasing
    order. Prefix sums make every ``k`` cost O(1): with weights ``w`` of the stored bytes,
    ``e`` of end-of-text and ``r`` of the rest (its ``m = 256 - k`` bytes get ``r / m`` each),
    ``KL = sum_stored p ln(p / w) + p_eot ln(p_eot / e) + sum_rest p ln(p m / r) + ln Z``.

    Examples
    --------
    >>> p = np.zeros((1, ROW_WIDTH)); p[0, :3] = [0.5, 0.25, 0.25]
    >>> kl_by_count(p, 16)[0, :4].round(6).tolist()
    [6.5, 3.497177, 1.997171, 0.0]
    """
    n, b, eot = len(p), p[:, :N_BYTES], p[:, EOT]
    w = code_weight(log_codes(b, step, shift), step)
    e = code_weight(log_codes(eot, step, shift), step)
    mass = _cum(b, reverse=True)  # the rest's mass for each k
    r = code_weight(log_codes(mass, step, shift), step)
    m = np.maximum(N_BYTES - np.arange(N_BYTES + 1), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(b > 0, b * np.log(b), 0.0)
        rest = np.where(mass > 0, _cum(plogp, reverse=True) - mass * np.log(r / m), 0.0)
        z = np.log(_cum(w) + e[:, None] + r)
    kl = _cum(_plogp_over(b, w)) + _plogp_over(eot, e)[:, None] + rest + z
    return np.maximum(kl, 0.0).reshape(n, N_BYTES + 1) / _LN2


class VarRows(NamedTuple):
    """What the variable-length codec stores of ``n`` rows (all uint8).

    Attributes
    ----------
    count : ndarray, shape (n,)
        Bytes stored per row.
    eot, rest : ndarray, shape (n,)
        Codes of the end-of-text weight and of the weight of the bytes not stored.
    index : ndarray, shape (count.sum(),)
        The stored bytes, row after row, most probable first (ties: lower byte first).
    code : ndarray, shape (count.sum(),)
        Their codes.
    """

    count: np.ndarray
    eot: np.ndarray
    rest: np.ndarray
    index: np.ndarray
    code: np.ndarray


class Encoded(NamedTuple):
    """Rows as stored, and the KL (bits) of each stored row from its dense row."""

    stored: VarRows
    kl_bits: np.ndarray


def _best_count(kl: np.ndarray, budget_bits: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row of an (n, shifts, counts) KL table: the fewest bytes that meet the budget (the
    shift with the smallest KL among those), else the smallest KL; ``(count, shift)``."""
    n, n_shift, width = kl.shape
    ok = (kl <= budget_bits).any(1)  # (n, counts)
    met = ok.any(1)
    best = kl.reshape(n, n_shift * width).argmin(1)
    count = np.where(met, ok.argmax(1), best % width)
    shift = np.where(met, kl[np.arange(n), :, count].argmin(1), best // width)
    return count, shift


def encode_rows(rows: np.ndarray, step: int, budget_bits: float, n_shifts: int = 4) -> Encoded:
    """Choose, per row, the bytes and codes to store (rows are normalised to sum 1 first).

    ``ValueError`` for rows that are not (n, 257), or hold negative or non-finite values.

    Examples
    --------
    >>> row = np.zeros((1, ROW_WIDTH)); row[0, [97, 98, EOT]] = [0.5, 0.25, 0.25]
    >>> enc = encode_rows(row, 16, 1e-4)
    >>> enc.stored.count.tolist(), enc.stored.index.tolist(), float(enc.kl_bits[0])
    ([2], [97, 98], 0.0)
    """
    p = checked_rows(rows, np.float64)
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("rows must be finite and non-negative")
    total = p.sum(1, keepdims=True)
    q = np.divide(p, total, out=np.zeros_like(p), where=total > 0)
    # a mass that underflows to 0 once normalised still has mass: never stored as impossible
    p = np.where((q == 0) & (p > 0), np.finfo(np.float64).smallest_subnormal, q)
    order = np.argsort(-p[:, :N_BYTES], axis=1, kind="stable")
    ps = np.concatenate([np.take_along_axis(p, order, 1), p[:, EOT:]], axis=1)
    shifts = np.arange(n_shifts) / n_shifts
    kl = np.stack([kl_by_count(ps, step, s) for s in shifts], axis=1)[:, :, : MAX_COUNT + 1]
    count, pick = _best_count(kl, budget_bits)
    shift = shifts[pick][:, None]
    keep = np.arange(N_BYTES)[None, :] < count[:, None]
    rest = _cum(ps[:, :N_BYTES], reverse=True)[np.arange(len(p)), count]  # as kl_by_count sums it
    stored = VarRows(count.astype(np.uint8), log_codes(ps[:, EOT:], step, shift).ravel(),
                     log_codes(rest[:, None], step, shift).ravel(),
                     order[keep].astype(np.uint8),
                     log_codes(ps[:, :N_BYTES], step, shift)[keep])
    return Encoded(stored, kl[np.arange(len(p)), pick, count])


def var_distribution(stored: VarRows, step: int) -> np.ndarray:
    """Dense float32 rows of the stored distribution (rows of zero weight stay zeros).

    Examples
    --------
    >>> s = VarRows(*(np.array(x, dtype=np.uint8) for x in ([1], [16], [16], [97], [0])))
    >>> q = var_distribution(s, 16)
    >>> float(q[0, 97]), float(q[0, EOT]), float(q[0, 98] * 255), round(float(q.sum()), 6)
    (0.5, 0.25, 0.25, 1.0)
    """
    n = len(stored.count)
    count = stored.count.astype(np.intp)
    out = np.empty((n, ROW_WIDTH), dtype=np.float64)
    out[:, :N_BYTES] = (code_weight(stored.rest, step) / (N_BYTES - count))[:, None]
    rows = np.repeat(np.arange(n), count)
    out[rows, stored.index.astype(np.intp)] = code_weight(stored.code, step)
    out[:, EOT] = code_weight(stored.eot, step)
    total = out.sum(1, keepdims=True)
    return np.divide(out, total, out=out, where=total > 0).astype(np.float32)


def pack(stored: VarRows) -> bytes:
    """The record of a text: the fields one after the other, codes as differences within each
    row (the first code of a row as itself), compressed (raw LZMA2)."""
    count = stored.count.astype(np.intp)
    code = stored.code.astype(np.int16)
    diff = np.diff(code, prepend=np.int16(0))
    first = np.cumsum(count) - count
    diff[first[count > 0]] = code[first[count > 0]]
    raw = [stored.count, stored.eot, stored.rest, stored.index, diff.astype(np.uint8)]
    return lzma.compress(b"".join(x.tobytes() for x in raw), lzma.FORMAT_RAW, filters=_FILTERS)


def unpack(buf: np.ndarray, n_rows: int) -> VarRows:
    """The fields of a record; ``ValueError`` if it does not hold ``n_rows`` rows."""
    limit = 3 * n_rows + 2 * MAX_COUNT * n_rows
    try:
        raw = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=_FILTERS).decompress(
            buf.tobytes(), max_length=limit + 1)
    except lzma.LZMAError as e:
        raise ValueError(f"record does not decompress ({e})") from None
    a = np.frombuffer(raw, dtype=np.uint8)
    count = a[:n_rows]
    n_stored = int(count.sum(dtype=np.int64))
    if len(a) != 3 * n_rows + 2 * n_stored:
        raise ValueError(f"{len(a)} bytes do not hold {n_rows} rows")
    start = np.cumsum(count, dtype=np.int64) - count
    diff = a[3 * n_rows + n_stored :].astype(np.int64)
    run = np.cumsum(diff)  # codes: running sums of the differences within each row
    before = np.repeat(run[start[count > 0]] - diff[start[count > 0]], count[count > 0])
    code = (run - before) % 256
    return VarRows(count, a[n_rows : 2 * n_rows], a[2 * n_rows : 3 * n_rows],
                   a[3 * n_rows : 3 * n_rows + n_stored], code.astype(np.uint8))


@dataclass(frozen=True)
class QuantisedCodec:
    """Variable-length rows: each row's most probable bytes until its KL meets a budget.

    See the module docstring for the format. ``step`` fixes the format (it is in the name);
    ``budget_bits`` only what the encoder writes, so records written with any budget decode
    alike.

    Examples
    --------
    >>> codec = QuantisedCodec()
    >>> rows = np.random.default_rng(0).dirichlet(np.full(ROW_WIDTH, 0.01), size=3)
    >>> blob = codec.encode(rows)
    >>> q = codec.decode(np.frombuffer(blob, dtype=np.uint8), 3)
    >>> q.shape, q.dtype, bool(abs(q.sum(1) - 1).max() < 1e-6)
    ((3, 257), dtype('float32'), True)
    """

    step: int = 12
    budget_bits: float = 4e-4
    align: int = 1

    @property
    def name(self) -> str:
        """``"q<step>v"``, stored in the index."""
        return f"q{self.step}v"

    @property
    def suffix(self) -> str:
        """Same as :attr:`name`."""
        return self.name

    def encode(self, rows: np.ndarray) -> bytes:
        """Bytes of ``rows``; ``ValueError`` unless (n, ROW_WIDTH), finite and non-negative."""
        return pack(encode_rows(rows, self.step, self.budget_bits).stored)

    def decode(self, buf: np.ndarray, n_rows: int) -> np.ndarray:
        """Rows of the stored distribution, float32, read-only."""
        out = var_distribution(unpack(buf, n_rows), self.step)
        out.flags.writeable = False
        return out
