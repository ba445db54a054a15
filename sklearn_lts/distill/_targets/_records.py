"""Index records: one JSON line per stored text, checksummed, and the scan of an index file.

A line is ``{"v": 2, "h": text SHA-1, "c": codec, "f": data file, "o": byte offset,
"b": byte length, "n": rows, "d": SHA-256 of the bytes (128 bits), "k": CRC-32 of the line}``
(``"k"`` covers the other fields, serialised with sorted keys and no spaces). A line that does
not parse or whose ``"k"`` does not match is *damaged*; a line with a valid ``"k"`` but another
version or an unknown codec is *foreign* (written by another version): kept, never read.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass, field

import numpy as np

from sklearn_lts.distill._targets._codecs import CODECS
from sklearn_lts.distill._targets._fingerprint import PLAIN_NAME

__all__ = [
    "FORMAT_VERSION", "IndexRecord", "IndexScan", "checked_fields", "payload_digest", "scan_index"
]

#: Version of the record format (1 was the unchecked ``{"h", "start", "n"}`` lines of before).
FORMAT_VERSION = 2
_SHORT = {"text": "h", "codec": "c", "file": "f", "offset": "o", "nbytes": "b", "n_rows": "n",
          "digest": "d"}


def payload_digest(buf: bytes | np.ndarray) -> str:
    """Checksum of a record's bytes: the first 128 bits of their SHA-256, in hex.

    Examples
    --------
    >>> payload_digest(b"")
    'e3b0c44298fc1c149afbf4c8996fb924'
    """
    return hashlib.sha256(buf).hexdigest()[:32]


def _canonical(fields: dict) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"))


def _line_check(fields: dict) -> str:
    return f"{zlib.crc32(_canonical(fields).encode()):08x}"


@dataclass(frozen=True)
class IndexRecord:
    """Where one text's rows are and how to check them.

    Examples
    --------
    >>> rec = IndexRecord("ab" * 20, "f32", "rows-00000.f32", 0, 2056, 2, "0" * 32)
    >>> IndexRecord.from_line(rec.to_line()) == rec, rec.end
    (True, 2056)
    >>> IndexRecord.from_line(rec.to_line().replace('"n":2', '"n":3'))
    Traceback (most recent call last):
    ...
    ValueError: index line checksum mismatch
    """

    text: str
    codec: str
    file: str
    offset: int
    nbytes: int
    n_rows: int
    digest: str

    @property
    def end(self) -> int:
        """Byte offset just past the record in its data file."""
        return self.offset + self.nbytes

    def to_line(self) -> str:
        """The index line (with its newline)."""
        fields = {"v": FORMAT_VERSION} | {s: getattr(self, f) for f, s in _SHORT.items()}
        return _canonical(fields | {"k": _line_check(fields)}) + "\n"

    @classmethod
    def from_line(cls, line: str) -> IndexRecord | None:
        """The record of a line; ``None`` for a foreign line, ``ValueError`` for a damaged one."""
        return cls.from_fields(checked_fields(line))

    @classmethod
    def from_fields(cls, fields: dict) -> IndexRecord | None:
        """The record of a line's checked fields; ``None`` if another version wrote them."""
        if fields.get("v") != FORMAT_VERSION or str(fields.get("c")) not in CODECS:
            return None
        try:
            rec = cls(**{f: fields[s] for f, s in _SHORT.items()})
        except KeyError as e:
            raise ValueError(f"index record without {e}") from None
        ints_ok = all(type(i) is int and i >= 0 for i in (rec.offset, rec.nbytes, rec.n_rows))
        strs_ok = all(isinstance(x, str) for x in (rec.text, rec.file, rec.digest))
        if not (ints_ok and strs_ok and PLAIN_NAME.fullmatch(rec.file)):
            raise ValueError("index record with an invalid extent or file name")
        return rec


def checked_fields(line: str) -> dict:
    """The fields of an index line whose checksum holds, else ``ValueError``."""
    fields = json.loads(line)  # JSONDecodeError is a ValueError
    if not isinstance(fields, dict) or fields.pop("k", None) != _line_check(fields):
        raise ValueError("index line checksum mismatch")
    return fields


@dataclass
class IndexScan:
    """What one reading of an index file found.

    Attributes
    ----------
    records : dict
        Text hash -> its last valid record.
    claims : dict
        Data file -> the largest end offset any checksummed line gives in it (records that
        were superseded included): a writer never puts new bytes below it.
    keep : list of str
        The lines a rewrite keeps: the current records and the foreign lines.
    damaged : list of int
        Numbers (from 1) of the damaged lines.
    torn_tail : bool
        The file does not end with a newline: an interrupted write, or one in flight.
    n_lines : int
    """

    records: dict[str, IndexRecord] = field(default_factory=dict)
    claims: dict[str, int] = field(default_factory=dict)
    keep: list[str] = field(default_factory=list)
    damaged: list[int] = field(default_factory=list)
    torn_tail: bool = False
    n_lines: int = 0

    @property
    def needs_rewrite(self) -> bool:
        """Damaged, superseded or unterminated lines that a rewrite would drop."""
        return bool(self.damaged) or self.torn_tail or len(self.keep) < self.n_lines


def _claim(scan: IndexScan, fields: dict) -> None:
    """Record the extent named by a checksummed line (current or foreign)."""
    try:
        end = int(fields["o"]) + int(fields["b"])
        name = str(fields["f"])
    except (KeyError, TypeError, ValueError):
        return
    scan.claims[name] = max(scan.claims.get(name, 0), end)


def scan_index(path: str) -> IndexScan:
    """Read an index file (missing: empty), sorting its lines into records and damage.

    Examples
    --------
    >>> import os, tempfile
    >>> rec = IndexRecord("ab" * 20, "f32", "rows-00000.f32", 0, 1028, 1, "0" * 32)
    >>> path = os.path.join(tempfile.mkdtemp(), "index.jsonl")
    >>> with open(path, "w") as f:
    ...     _ = f.write("{garbage\\n" + rec.to_line() + rec.to_line()[:20])
    >>> scan = scan_index(path)
    >>> list(scan.records.values()) == [rec], scan.damaged, scan.torn_tail
    (True, [1, 3], True)
    """
    scan = IndexScan()
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return scan
    lines = raw.split(b"\n")
    scan.torn_tail = lines[-1] != b""
    if not scan.torn_tail:
        lines.pop()
    scan.n_lines = len(lines)
    foreign = []
    for number, blob in enumerate(lines, start=1):
        try:
            line = blob.decode("utf-8")
            fields = checked_fields(line)
            _claim(scan, fields)
            rec = IndexRecord.from_fields(fields)
        except ValueError:  # bad UTF-8, bad JSON, bad checksum, bad fields
            scan.damaged.append(number)
            continue
        if rec is None:
            foreign.append(line + "\n")
        else:
            scan.records[rec.text] = rec  # a later record of a text supersedes earlier ones
    scan.keep = foreign + [rec.to_line() for rec in scan.records.values()]
    return scan
