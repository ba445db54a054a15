"""Compact teacher targets: cache bytes per text byte, dense against compact, and the KL they add.

:func:`measure_compact` fills two real cache folders with the same teacher rows, one with
dense float32 records (``codec="f32"``) and one with the default compact codec, measures both
on disk, and compares the rows they serve. ``benchmarks/scale.py`` imports it; run alone::

    nice -n 10 python benchmarks/_scale_compact.py          # SmolLM2, about 3 KB of Hamlet

prints the result as JSON.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Sequence

import numpy as np

from sklearn_lts.distill import ByteLevelLM, ByteTargetCache


def folder_bytes(path: str) -> tuple[int, int]:
    """``(apparent bytes, bytes on disk)`` of the files below ``path``: the sum of their sizes,
    and of the blocks they take (what ``du`` counts, 512-byte units of ``st_blocks``)."""
    size = blocks = 0
    for root, _, names in os.walk(path):
        for name in names:
            st = os.stat(os.path.join(root, name))
            size += st.st_size
            blocks += st.st_blocks * 512
    return size, blocks


def kl_bits(dense: np.ndarray, approx: np.ndarray) -> np.ndarray:
    """Per row ``KL(dense || approx)`` in bits (rows normalised first; ``0 log 0 = 0``).

    Examples
    --------
    >>> p = np.array([[0.5, 0.5, 0.0]])
    >>> kl_bits(p, np.array([[0.25, 0.25, 0.5]])).tolist()
    [1.0]
    """
    p = dense / dense.sum(1, keepdims=True)
    q = approx / approx.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log2(p) - np.log2(q)), 0.0)
    return terms.sum(1)


class _Served:
    """A stand-in byte LM that hands out the rows a cache serves (so the teacher runs once)."""

    def __init__(self, cache: ByteTargetCache):
        self.cache = cache

    def next_byte_proba_batch(self, texts):
        return [np.asarray(self.cache.get(t), dtype=np.float64) for t in texts]


def _smollm2() -> ByteLevelLM:
    from sklearn_lts.models import load_smollm2

    model, tok = load_smollm2()
    return ByteLevelLM(model, tok)  # the covering beam, K=10: ByteDistiller's default


def measure_compact(
    texts: Sequence[str], byte_lm: ByteLevelLM | None = None, folder: str | None = None
) -> dict:
    """Cache bytes per text byte, dense against compact, and the KL of compact from dense rows.

    Parameters
    ----------
    texts : sequence of str
        The corpus (a few KB is enough: the teacher runs once over it).
    byte_lm : ByteLevelLM, optional
        The teacher; default SmolLM2-135M with the covering beam (``beam_width=10``).
    folder : str, optional
        Where the two cache folders go (default: a temporary folder, removed afterwards).

    Returns
    -------
    dict
        ``text_bytes``, ``n_texts``, ``n_rows`` (text bytes + one end-of-text row per text);
        ``codec`` (the compact codec); ``dense_bytes_per_text_byte`` and
        ``compact_bytes_per_text_byte``: file sizes of each cache folder (data files and
        index) per UTF-8 byte of the texts; ``dense_du_bytes_per_text_byte`` and
        ``compact_du_bytes_per_text_byte``: the same in disk blocks (``du``; small corpora pay
        for whole blocks); ``kl_bits_per_byte_mean`` / ``_median`` / ``_p99`` / ``_max``:
        ``KL(dense row || compact row)`` in bits per row; ``teacher_seconds``.
    """
    texts = list(dict.fromkeys(texts))  # each text once
    with tempfile.TemporaryDirectory() as tmp:
        root = tmp if folder is None else folder
        t0 = time.perf_counter()
        byte_lm = _smollm2() if byte_lm is None else byte_lm
        dense = ByteTargetCache(os.path.join(root, "dense"), byte_lm, codec="f32")
        dense.precompute(texts, progress=False)
        seconds = time.perf_counter() - t0
        compact = ByteTargetCache(os.path.join(root, "compact"), _Served(dense), key=dense.key)
        compact.precompute(texts, progress=False)
        kl = np.concatenate([kl_bits(np.asarray(dense.get(t), np.float64),
                                     np.asarray(compact.get(t), np.float64)) for t in texts])
        n_bytes = sum(len(t.encode("utf-8")) for t in texts)
        (d_size, d_du), (c_size, c_du) = folder_bytes(dense.path), folder_bytes(compact.path)
    return {
        "text_bytes": n_bytes, "n_texts": len(texts), "n_rows": int(kl.size),
        "codec": compact.codec,
        "dense_bytes_per_text_byte": d_size / n_bytes,
        "compact_bytes_per_text_byte": c_size / n_bytes,
        "dense_du_bytes_per_text_byte": d_du / n_bytes,
        "compact_du_bytes_per_text_byte": c_du / n_bytes,
        "kl_bits_per_byte_mean": float(kl.mean()),
        "kl_bits_per_byte_median": float(np.median(kl)),
        "kl_bits_per_byte_p99": float(np.quantile(kl, 0.99)),
        "kl_bits_per_byte_max": float(kl.max()),
        "teacher_seconds": seconds,
    }


if __name__ == "__main__":
    import torch

    from sklearn_lts.datasets import load_hamlet

    torch.set_num_threads(1)
    print(json.dumps(measure_compact(load_hamlet(doc_bytes=500)[:6]), indent=1))
