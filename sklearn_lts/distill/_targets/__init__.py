"""Teacher-target cache: next-byte rows of a corpus on disk, computed once, never served damaged.

Teacher targets do not depend on the student, so they are computed once per corpus and reused
by every distillation run. A cache folder ``<root>/<key>/`` holds, per key
(:func:`byte_lm_fingerprint`: every weight, the tokenizer's bytes, the method and its
parameters):

* ``rows-00000.top19`` (then ``rows-00001.top19``, ...): the rows of the texts, appended text
  after text and memory-mapped for reading; files are append-only, one codec per file
  (``.top19``: the compact default, 61 bytes per row; ``.f32``: dense float32 rows, 1,028
  bytes per row; see :mod:`._codecs` for the stored distribution of a compact row);
* ``index.jsonl``: one checksummed line per stored text (format version, text SHA-1, row codec,
  data file, byte offset and length, row count, SHA-256 of the bytes);
* ``.lock``: the writers' file lock.

Recovery rules
--------------
* **Nothing damaged is served.** Every read checks the record's extent against its data file
  and the checksum of its bytes; an index line that does not parse or fails its own checksum
  is skipped. Either way the text counts as missing: ``text in cache`` is ``False``,
  :meth:`~ByteTargetCache.precompute` recomputes it and :meth:`~ByteTargetCache.get` does too
  when the cache has a byte LM (``KeyError`` otherwise). Each damage is reported once per cache
  object with a :class:`TargetCacheWarning`.
* **Only the damaged texts are recomputed.** Damage to one record (a bad index line, cut or
  overwritten rows) costs that text alone; every other record stays valid and is kept.
* **Valid data is never truncated.** Data files are never cut, rewritten or shrunk, so a
  process holding a memory map of one (a :meth:`~ByteTargetCache.get` view) never sees its
  bytes vanish. Bytes of an interrupted write or of a damaged record stay as dead space. If a
  data file lost bytes that index lines name (cut or deleted), writers continue in a new file.
* **Interrupted writes lose at most the batch in flight.** Rows are flushed to disk before the
  index names them; a torn last index line is skipped, and the next writer rewrites the index
  (atomically, without its damaged and superseded lines) before appending, so the cache keeps
  growing.
* **Concurrent writers are safe.** :meth:`~ByteTargetCache.precompute` holds a file lock
  (``filelock``) while it writes and re-reads the index once it has it, skipping what others
  stored meanwhile. Readers take no lock.
* **Keys stay inside the root.** A key is one plain folder name; anything else (``..``,
  separators, absolute paths) is a ``ValueError``.
* **Versioned records.** Each index line carries the record format version and its row codec;
  lines of another version or an unknown codec are kept but never read, so a later codec
  adds records beside the old ones; records of every known codec are read, whichever codec
  the cache object writes with.

Messages go to ``logging.getLogger("sklearn_lts")``: the cache location (info), hits and misses
of each precompute (info) and of reads (debug).
"""

from sklearn_lts.distill._targets._cache import ByteTargetCache, TargetCacheWarning
from sklearn_lts.distill._targets._fingerprint import byte_lm_fingerprint, text_hash

__all__ = ["ByteTargetCache", "TargetCacheWarning", "byte_lm_fingerprint", "text_hash"]
