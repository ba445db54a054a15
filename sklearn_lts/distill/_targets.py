"""On-disk, memory-mapped cache of teacher next-byte distributions, resumable.

Teacher targets do not depend on the student, so they are computed once per corpus and reused by
every distillation run. A cache folder holds, per key (model, tokenizer, method and its
parameters):

* ``rows.f32``: all rows of all texts, float32, appended text after text (one memory map);
* ``index.jsonl``: one line per finished text: its SHA-1, first row and number of rows.

A text is only listed in the index after its rows are flushed to disk, so an interrupted
precompute loses at most the texts in flight; the next run truncates the data file to the last
indexed row and continues with the texts that are missing.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["ByteTargetCache", "byte_lm_fingerprint", "text_hash"]

_N_COLS = 257


def text_hash(text: str | bytes) -> str:
    """SHA-1 of the text's UTF-8 bytes (the per-text key of the cache).

    Examples
    --------
    >>> text_hash("abc")
    'a9993e364706816aba3e25717850c26c9cd0d89d'
    """
    raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    return hashlib.sha1(raw).hexdigest()


def byte_lm_fingerprint(byte_lm: Any) -> str:
    """A short key for (model, tokenizer, method, parameters) of a :class:`ByteLevelLM`.

    The model part hashes its config and a sample of its weights (cheap, but it tells two
    checkpoints of the same architecture apart); the tokenizer part hashes every token's bytes
    and the BOS/EOS/prefix conventions.
    """
    h = hashlib.sha1()
    model = byte_lm.model
    cfg = getattr(model, "config", None)
    if cfg is not None:
        h.update(json.dumps(cfg.to_dict(), sort_keys=True, default=str).encode())
    import torch

    with torch.no_grad():
        named = list(model.named_parameters())
        for name, p in named[:: max(1, len(named) // 8)]:
            flat = p.detach().reshape(-1)
            h.update(name.encode())
            h.update(flat[:: max(1, flat.numel() // 4096)].float().cpu().numpy().tobytes())
    tb = byte_lm.token_bytes_
    h.update(repr((tb.prefix, tb.bos_token_id, tb.eos_token_id)).encode())
    for b in tb.token_bytes:
        h.update(b"\x00" if b is None else b"\x01" + len(b).to_bytes(2, "little") + b)
    params = (byte_lm.method, byte_lm.beam_width, byte_lm.prune_threshold,
              getattr(byte_lm, "merge", False))
    if byte_lm.method != "beam":
        params = (byte_lm.method,)
    h.update(repr(params).encode())
    return f"{byte_lm.method}-{h.hexdigest()[:16]}"


class ByteTargetCache:
    """Teacher next-byte distributions of a corpus, computed once and memory-mapped.

    Parameters
    ----------
    folder : str
        Root folder; the data go to ``folder/<key>/``.
    byte_lm : ByteLevelLM, optional
        Computes missing rows (``next_byte_proba_batch``). Not needed to read a finished cache.
    key : str, optional
        Cache key; default :func:`byte_lm_fingerprint` of ``byte_lm``.

    Examples
    --------
    >>> import tempfile
    >>> class Uniform:  # anything with next_byte_proba_batch works
    ...     def next_byte_proba_batch(self, texts):
    ...         return [np.full((len(t.encode()) + 1, 257), 1 / 257) for t in texts]
    >>> cache = ByteTargetCache(tempfile.mkdtemp(), Uniform(), key="uniform")
    >>> cache.precompute(["ab", "c"], progress=False)
    2
    >>> cache.get("ab").shape, "c" in cache, "d" in cache
    ((3, 257), True, False)
    """

    def __init__(self, folder: str, byte_lm: Any = None, key: str | None = None):
        if key is None:
            if byte_lm is None:
                raise ValueError("give a key or a byte_lm to derive it from")
            key = byte_lm_fingerprint(byte_lm)
        self.key = key
        self.byte_lm = byte_lm
        self.path = os.path.join(os.path.abspath(os.path.expanduser(folder)), key)
        os.makedirs(self.path, exist_ok=True)
        self._data = os.path.join(self.path, "rows.f32")
        self._index_path = os.path.join(self.path, "index.jsonl")
        self._index: dict[str, tuple[int, int]] = {}
        self._mm: np.memmap | None = None
        self._load_index()

    # ---------------------------------------------------------------------------- reading
    def _load_index(self) -> None:
        self._index = {}
        end = 0
        if os.path.isfile(self._index_path):
            with open(self._index_path, encoding="utf-8") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:  # a torn last line: that text is redone
                        break
                    self._index[rec["h"]] = (int(rec["start"]), int(rec["n"]))
                    end = max(end, int(rec["start"]) + int(rec["n"]))
        self._n_rows = end
        self._mm = None

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, text: str | bytes) -> bool:
        return text_hash(text) in self._index

    def _map(self) -> np.memmap:
        if self._mm is None or self._mm.shape[0] < self._n_rows:
            self._mm = np.memmap(self._data, dtype=np.float32, mode="r",
                                 shape=(self._n_rows, _N_COLS))
        return self._mm

    def get(self, text: str | bytes) -> np.ndarray:
        """Rows of one text, (n_bytes + 1, 257) float32, a read-only view into the memory map."""
        got = self._index.get(text_hash(text))
        if got is None:
            raise KeyError("text not in the cache; call precompute first")
        start, n = got
        return self._map()[start : start + n]

    def get_many(self, texts: Sequence[str | bytes]) -> list[np.ndarray]:
        """:meth:`get` for several texts."""
        return [self.get(t) for t in texts]

    # ---------------------------------------------------------------------------- writing
    def precompute(
        self, texts: Iterable[str | bytes], batch_size: int = 32, progress: bool = True
    ) -> int:
        """Compute and store the rows of every text not cached yet; returns how many were added.

        Texts are processed ``batch_size`` at a time (one batched byte-LM call each: more texts
        make each LM forward call larger, which is what makes it cheap per token on a CPU). Safe
        to interrupt: finished batches stay, and the next call continues with the rest.
        """
        if self.byte_lm is None:
            raise ValueError("this cache has no byte_lm to compute missing texts with")
        import fcntl

        seen: set[str] = set()
        todo = []
        for t in texts:
            h = text_hash(t)
            if h not in self._index and h not in seen:
                seen.add(h)
                todo.append(t)
        if not todo:
            return 0
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo), desc="teacher byte targets", unit="text")
        added = 0
        with open(os.path.join(self.path, ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one writer per cache folder
            self._load_index()  # another process may have added texts meanwhile
            self._truncate_to_index()
            todo = [t for t in todo if text_hash(t) not in self._index]
            try:
                with open(self._data, "ab") as data, open(
                    self._index_path, "a", encoding="utf-8"
                ) as index:
                    for a in range(0, len(todo), batch_size):
                        chunk = todo[a : a + batch_size]
                        rows = self.byte_lm.next_byte_proba_batch(chunk)
                        for t, r in zip(chunk, rows, strict=True):
                            r = np.ascontiguousarray(r, dtype=np.float32)
                            if r.ndim != 2 or r.shape[1] != _N_COLS:
                                raise ValueError(f"rows of shape {r.shape}, expected (n, 257)")
                            data.write(r.tobytes())
                            data.flush()
                            os.fsync(data.fileno())  # rows on disk before the index names them
                            h = text_hash(t)
                            rec = {"h": h, "start": self._n_rows, "n": int(r.shape[0])}
                            index.write(json.dumps(rec) + "\n")
                            index.flush()
                            self._index[h] = (self._n_rows, int(r.shape[0]))
                            self._n_rows += int(r.shape[0])
                            added += 1
                        if bar is not None:
                            bar.update(len(chunk))
            finally:
                if bar is not None:
                    bar.close()
                fcntl.flock(lock, fcntl.LOCK_UN)
        self._mm = None
        return added

    def _truncate_to_index(self) -> None:
        """Drop rows written after the last indexed text (an interrupted write)."""
        size = self._n_rows * _N_COLS * 4
        if os.path.isfile(self._data) and os.path.getsize(self._data) > size:
            with open(self._data, "r+b") as f:
                f.truncate(size)
