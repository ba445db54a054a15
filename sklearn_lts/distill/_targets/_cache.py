"""ByteTargetCache: teacher next-byte rows of a corpus, computed once, checked on every read."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from sklearn_lts.distill._targets._codecs import CODECS, DEFAULT_CODEC
from sklearn_lts.distill._targets._datafiles import DataFiles
from sklearn_lts.distill._targets._fingerprint import byte_lm_fingerprint, check_key, text_hash
from sklearn_lts.distill._targets._records import (
    IndexRecord,
    IndexScan,
    payload_digest,
    scan_index,
)

__all__ = ["ByteTargetCache", "TargetCacheWarning"]

logger = logging.getLogger("sklearn_lts")


class TargetCacheWarning(RuntimeWarning):
    """Damage found in a teacher-target cache (it is recomputed, never served)."""


class ByteTargetCache:
    """Teacher next-byte distributions of a corpus, computed once and memory-mapped.

    Every read is checked (the record's checksum, its extent against the data file); damaged
    texts are reported with a :class:`TargetCacheWarning` and recomputed, valid ones are never
    touched. Several processes may precompute into one folder at once (a file lock).

    Parameters
    ----------
    folder : str
        Root folder; the data go to ``folder/<key>/``.
    byte_lm : ByteLevelLM, optional
        Computes missing rows (``next_byte_proba_batch``). Not needed to read a finished cache.
    key : str, optional
        Cache key, a plain folder name; default :func:`byte_lm_fingerprint` of ``byte_lm``.
    codec : {"q12v", "top19", "f32"}, default="q12v"
        How new rows are stored. ``"q12v"``: per row the fewest most probable bytes that keep
        the row's KL from the stored distribution under 4e-4 bits (1/12-bit log codes, LZMA
        per text; about 53 bytes per text byte on SmolLM2 rows). ``"top19"``: the 19 most
        probable bytes (float16), the end-of-text probability and the remaining mass, 61 bytes
        per text byte. Reads of both give the *stored distribution* (the remaining mass spread
        uniformly over the bytes not stored, renormalised). ``"f32"``: the dense float32 rows,
        1,028 bytes per text byte, read back bit for bit. Records of every codec are read
        whatever this is.

    Attributes
    ----------
    key : str
    path : str
        ``folder/<key>``.
    codec : str
        The codec new rows are written with.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn_lts.distill import ByteTargetCache
    >>> class Uniform:  # anything with next_byte_proba_batch works
    ...     def next_byte_proba_batch(self, texts):
    ...         return [np.full((len(t.encode()) + 1, 257), 1 / 257) for t in texts]
    >>> cache = ByteTargetCache(tempfile.mkdtemp(), Uniform(), key="uniform")
    >>> cache.precompute(["ab", "c"], progress=False)
    2
    >>> cache.get("ab").shape, "c" in cache, "d" in cache
    ((3, 257), True, False)
    """

    def __init__(
        self, folder: str, byte_lm: Any = None, key: str | None = None, codec: str = DEFAULT_CODEC
    ):
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {sorted(CODECS)}, got {codec!r}")
        if key is None:
            if byte_lm is None:
                raise ValueError("give a key or a byte_lm to derive it from")
            key = byte_lm_fingerprint(byte_lm)
        self.key = check_key(key)
        self.byte_lm = byte_lm
        root = os.path.abspath(os.path.expanduser(folder))
        self.path = os.path.join(root, self.key)
        os.makedirs(self.path, exist_ok=True)
        self._index_path = os.path.join(self.path, "index.jsonl")
        self._files = DataFiles(self.path)
        self.codec = codec
        self._codec = CODECS[codec]
        self._warned: set[str] = set()
        self._load(locked=False)
        logger.info("teacher-target cache at %s: %d texts", self.path, len(self))

    # ---------------------------------------------------------------------------- reading
    def _load(self, locked: bool) -> IndexScan:
        scan = scan_index(self._index_path)
        damaged = list(scan.damaged)
        if scan.torn_tail and damaged and damaged[-1] == scan.n_lines and not locked:
            damaged.pop()  # maybe a line being written right now: only a writer can tell
            logger.debug("%s: unfinished last line (a write in progress?)", self._index_path)
        if damaged:
            self._warn(
                f"{self._index_path}: {len(damaged)} damaged line(s) skipped (line "
                f"{', '.join(map(str, damaged[:5]))}{', ...' if len(damaged) > 5 else ''}); "
                "their texts count as missing and are recomputed"
            )
        self._records = dict(scan.records)
        return scan

    def _warn(self, message: str, topic: str | None = None) -> None:
        """Warn once per cache object and topic (default: the message); log the repeats."""
        topic = message if topic is None else topic
        if topic in self._warned:
            logger.info(message)
            return
        self._warned.add(topic)
        warnings.warn(message, TargetCacheWarning, stacklevel=4)

    def _rows(self, h: str) -> np.ndarray | None:
        """Checked rows of a text hash; a damaged record is reported and forgotten."""
        rec = self._records.get(h)
        if rec is None:
            return None
        got = self._files.read(rec)
        if got.rows is None:
            self._warn(
                f"teacher targets of text {h[:12]} in {self.path} are damaged ({got.problem}); "
                "they count as missing and are recomputed (more such texts are logged to the "
                "'sklearn_lts' logger)",
                topic=f"{rec.file}:{got.kind}",
            )
            del self._records[h]
        return got.rows

    def refresh(self) -> None:
        """Re-read the index, to see texts that other processes stored since."""
        self._load(locked=False)

    def __len__(self) -> int:
        """Number of texts listed in the index (their rows are checked when read)."""
        return len(self._records)

    def __contains__(self, text: str | bytes) -> bool:
        """Whether the text's rows are stored and intact (reads and checks them)."""
        return self._rows(text_hash(text)) is not None

    def get(self, text: str | bytes) -> np.ndarray:
        """Rows of one text, (n_bytes + 1, 257) float32, read-only.

        A view into the memory map for ``"f32"`` records; the decoded stored distribution for
        compact ones.

        Damaged rows are recomputed when the cache has a ``byte_lm``; otherwise, and for a text
        never stored, ``KeyError``.
        """
        h = text_hash(text)
        known = h in self._records
        rows = self._rows(h)
        if rows is None and known and self.byte_lm is not None:
            self.precompute([text], progress=False)
            rows = self._rows(h)
        if rows is None:
            logger.debug("%s: miss for text %s", self.path, h[:12])
            what = "its stored rows are damaged" if known else "call precompute first"
            raise KeyError(f"text {h[:12]} not in the cache ({what})")
        return rows

    def get_many(self, texts: Sequence[str | bytes]) -> list[np.ndarray]:
        """:meth:`get` for several texts."""
        out = [self.get(t) for t in texts]
        logger.debug("%s: %d texts read", self.path, len(out))
        return out

    # ---------------------------------------------------------------------------- writing
    def precompute(
        self, texts: Iterable[str | bytes], batch_size: int = 32, progress: bool = True,
        on_batch: Callable[[int], object] | None = None,
    ) -> int:
        """Compute and store the rows of every text not cached intact; returns how many.

        Texts are processed ``batch_size`` at a time (one batched byte-LM call each: more texts
        make each LM forward call larger, which is what makes it cheap per token on a CPU). Safe
        to interrupt: finished batches stay, and the next call continues with the rest. Safe to
        run from several processes at once: one writes at a time, and each skips what the
        others stored meanwhile. ``progress`` shows a tqdm bar; ``on_batch``, if given, is
        called with the number of texts of each batch once it is stored (e.g. an outer bar's
        ``update``).
        """
        if self.byte_lm is None:
            raise ValueError("this cache has no byte_lm to compute missing texts with")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        unique: dict[str, str | bytes] = {}
        for t in texts:
            unique.setdefault(text_hash(t), t)
        todo = [t for h, t in unique.items() if self._rows(h) is None]
        logger.info("%s: %d of %d texts cached, %d to compute", self.path,
                    len(unique) - len(todo), len(unique), len(todo))
        if not todo:
            return 0
        from filelock import FileLock

        with FileLock(os.path.join(self.path, ".lock")):  # one writer per cache folder
            scan = self._load(locked=True)  # other writers may have added texts meanwhile
            self._repair_index(scan)
            todo = [t for t in todo if self._rows(text_hash(t)) is None]
            return self._compute(todo, scan.claims, batch_size, progress, on_batch)

    def _repair_index(self, scan: IndexScan) -> None:
        """Rewrite the index without its damaged and superseded lines (a writer, locked).

        The new index replaces the old one atomically; readers that opened the old one keep
        reading it. Data files are not touched.
        """
        if not scan.needs_rewrite:
            return
        tmp = self._index_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(scan.keep)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.replace(tmp, self._index_path)
        except OSError:  # e.g. Windows, while a reader has it open: end the torn line instead
            os.remove(tmp)
            with open(self._index_path, "a", encoding="utf-8") as f:
                f.write("\n" if scan.torn_tail else "")
            return
        logger.info("%s: index rewritten, %d of %d lines kept", self.path, len(scan.keep),
                    scan.n_lines)

    def _compute(
        self, todo: list, claims: dict[str, int], batch_size: int, progress: bool,
        on_batch: Callable[[int], object] | None = None,
    ) -> int:
        """Compute ``todo`` batch by batch; rows are flushed to disk before the index names them."""
        from tqdm.auto import tqdm

        codec = self._codec
        name = self._files.choose_file(claims, codec)
        with tqdm(total=len(todo), desc="teacher byte targets", unit="text",
                  disable=not progress) as bar, open(
            self._index_path, "a", encoding="utf-8"
        ) as index:
            for a in range(0, len(todo), batch_size):
                chunk = todo[a : a + batch_size]
                rows = list(self.byte_lm.next_byte_proba_batch(chunk))
                if len(rows) != len(chunk):
                    raise ValueError(f"{len(rows)} row blocks for {len(chunk)} texts")
                blobs = [codec.encode(r) for r in rows]  # checks every shape before writing
                offsets = self._files.append(name, blobs, codec.align)
                recs = [IndexRecord(text_hash(t), codec.name, name, o, len(b), len(r),
                                    payload_digest(b))
                        for t, r, o, b in zip(chunk, rows, offsets, blobs, strict=True)]
                index.write("".join(r.to_line() for r in recs))
                index.flush()
                os.fsync(index.fileno())
                self._records.update((r.text, r) for r in recs)
                bar.update(len(chunk))
                if on_batch is not None:
                    on_batch(len(chunk))
        return len(todo)
