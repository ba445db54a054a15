"""A per-text embedding cache on disk: one ``.npy`` file per (model, settings, text).

Entries are plain ``.npy`` arrays read with ``allow_pickle=False`` (a cache folder can never run
code). Each file is named by the SHA-256 of the model identity, the settings that change the
embedding and the text; a sidecar ``.sha256`` holds the hash of the array's dtype, shape and
bytes, so an entry replaced by another array is detected, logged and recomputed. Writes go
through a temporary file and ``os.replace``, so concurrent writers (``GridSearchCV(n_jobs=...)``)
never leave a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = ["EmbeddingStore", "array_digest"]

logger = logging.getLogger("sklearn_lts")
_SUBDIR = "sklearn_lts_embeddings"


def array_digest(a: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros(3, dtype=np.float32)
    >>> array_digest(a) == array_digest(a.copy())
    True
    >>> array_digest(a) == array_digest(a.astype(np.float64))
    False
    """
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _write_atomic(path: str, write: Callable) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


@dataclass(frozen=True)
class EmbeddingStore:
    """Embeddings of single texts under ``<folder>/sklearn_lts_embeddings``.

    Parameters
    ----------
    folder : str
        Cache folder (created on first write).
    identity : dict
        Everything besides the text that changes an embedding: model fingerprint,
        ``normalize``, prompt, ...; JSON-serialisable.
    dim : int
        Embedding dimension; an entry of another shape or dtype is a miss.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> store = EmbeddingStore(tempfile.mkdtemp(), {"model": "m", "normalize": True}, dim=2)
    >>> X, missing = store.get(["a", "b"])
    >>> missing
    [0, 1]
    >>> store.put(["a"], np.ones((1, 2), dtype=np.float32))
    >>> X, missing = store.get(["a", "b"])
    >>> X[0].tolist(), missing
    ([1.0, 1.0], [1])
    """

    folder: str
    identity: dict
    dim: int

    @cached_property
    def _prefix(self) -> hashlib._Hash:
        h = hashlib.sha256(json.dumps(self.identity, sort_keys=True).encode())
        h.update(b"\0")
        return h

    def _paths(self, text: str) -> tuple[str, str]:
        h = self._prefix.copy()
        h.update(text.encode("utf-8", "surrogatepass"))
        key = h.hexdigest()
        base = os.path.join(os.fspath(self.folder), _SUBDIR, key[:2], key)
        return base + ".npy", base + ".sha256"

    def _read(self, text: str) -> np.ndarray | None:
        npy, sidecar = self._paths(text)
        if not (os.path.exists(npy) and os.path.exists(sidecar)):
            return None
        try:
            a = np.load(npy, allow_pickle=False)
            with open(sidecar, encoding="ascii") as f:
                expected = f.read().strip()
        except (OSError, ValueError) as exc:
            logger.warning("Embedding cache entry %s unreadable (%s); recomputing.", npy, exc)
            return None
        if a.dtype != np.float32 or a.shape != (self.dim,) or array_digest(a) != expected:
            logger.warning("Embedding cache entry %s does not match its checksum, dtype or "
                           "shape; recomputing it.", npy)
            return None
        return a

    def get(self, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        """Cached rows (zeros where missing) and the indices of the missing texts."""
        X = np.zeros((len(texts), self.dim), dtype=np.float32)
        missing = []
        for i, t in enumerate(texts):
            a = self._read(t)
            if a is None:
                missing.append(i)
            else:
                X[i] = a
        return X, missing

    def put(self, texts: list[str], X: np.ndarray) -> None:
        """Store row ``i`` of ``X`` as the embedding of ``texts[i]``."""
        for t, row in zip(texts, np.asarray(X, dtype=np.float32), strict=True):
            npy, sidecar = self._paths(t)
            os.makedirs(os.path.dirname(npy), exist_ok=True)
            row = np.ascontiguousarray(row)
            _write_atomic(npy, lambda f, row=row: np.save(f, row, allow_pickle=False))
            digest = array_digest(row).encode("ascii")
            _write_atomic(sidecar, lambda f, d=digest: f.write(d))
