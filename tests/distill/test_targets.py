"""The on-disk teacher-target cache: keyed, memory-mapped, resumable, safe for concurrent writers.

Damage and recovery: test_targets_integrity.py; keys: test_targets_keys.py; interleaved
interruptions (hypothesis): test_targets_property.py.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from sklearn_lts.distill import ByteLevelLM, ByteTargetCache, byte_lm_fingerprint, text_hash
from sklearn_lts.distill._targets._codecs import CODECS, DEFAULT_CODEC

TEXTS = ["the cat", "sat on", "the mat.", "café", "", "a"]


def fake_rows(text):
    """Rows of the fake byte LMs: a distribution per byte offset, different for every text."""
    n = len(text.encode()) + 1
    r = np.arange(n * 257, dtype=np.float64).reshape(n, 257) + int(text_hash(text)[:6], 16)
    return r / r.sum(1, keepdims=True)


def decoded(rows, codec=DEFAULT_CODEC):
    """``rows`` stored with ``codec`` and read back: float32 for "f32", the stored distribution
    for a compact codec."""
    c = CODECS[codec]
    return c.decode(np.frombuffer(c.encode(rows), dtype=np.uint8), len(rows))


def assert_serves_exactly(cache, texts, codec=DEFAULT_CODEC):
    """Every text's rows are what the fake LM gave, as ``codec`` stores them (bit for bit)."""
    for t in texts:
        np.testing.assert_array_equal(cache.get(t), decoded(fake_rows(t), codec))


def data_file(cache, number=0, codec=DEFAULT_CODEC):
    return os.path.join(cache.path, f"rows-{number:05d}.{CODECS[codec].suffix}")


class Counting:
    """Deterministic fake byte LM that counts texts and can fail after a number of them."""

    def __init__(self, fail_after=None):
        self.calls, self.fail_after = [], fail_after

    def next_byte_proba_batch(self, texts):
        out = []
        for t in texts:
            if self.fail_after is not None and len(self.calls) >= self.fail_after:
                raise KeyboardInterrupt("simulated interruption")
            self.calls.append(t)
            out.append(fake_rows(t))
        return out


def test_decoded_f32_rows_are_the_float32_rows():
    for t in TEXTS:
        np.testing.assert_array_equal(decoded(fake_rows(t), "f32"), fake_rows(t).astype(np.float32))


def test_roundtrip_memmap(tmp_path):
    cache = ByteTargetCache(str(tmp_path), Counting(), key="k", codec="f32")
    assert cache.precompute(TEXTS, batch_size=4, progress=False) == len(TEXTS)
    again = ByteTargetCache(str(tmp_path), key="k")  # read-only use, a new process
    ref = Counting().next_byte_proba_batch(TEXTS)
    for t, r in zip(TEXTS, ref, strict=True):
        got = again.get(t)
        assert isinstance(got.base, np.memmap) or isinstance(got, np.memmap)
        np.testing.assert_allclose(got, r, rtol=1e-6)
    with pytest.raises(KeyError):
        again.get("never seen")
    assert cache.precompute(TEXTS, progress=False) == 0  # nothing recomputed


@pytest.mark.parametrize("codec", ["top19", "q12v"])
def test_roundtrip_compact(tmp_path, codec):
    """A compact codec serves the decoded stored distribution, read-only, from its records:
    61 bytes/row for top19, one compressed record per text for q12v (the default)."""
    cache = ByteTargetCache(str(tmp_path), Counting(), key="k", codec=codec)
    assert cache.precompute(TEXTS, batch_size=4, progress=False) == len(TEXTS)
    again = ByteTargetCache(str(tmp_path), key="k", codec="f32")  # the reader's codec: no matter
    assert_serves_exactly(again, TEXTS, codec)
    assert not any(again.get(t).flags.writeable for t in TEXTS)
    n_rows = sum(len(t.encode()) + 1 for t in TEXTS)
    blobs = [CODECS[codec].encode(fake_rows(t)) for t in TEXTS]
    assert os.path.getsize(data_file(cache, codec=codec)) == sum(map(len, blobs))
    if codec == "top19":
        assert sum(map(len, blobs)) == n_rows * 61
    with pytest.raises(ValueError, match="codec"):
        ByteTargetCache(str(tmp_path), key="k", codec="top5")


@pytest.mark.parametrize("codec", ["f32", "top19", "q12v"])
def test_resume_after_interruption(tmp_path, codec):
    broken = Counting(fail_after=3)
    cache = ByteTargetCache(str(tmp_path), broken, key="k", codec=codec)
    with pytest.raises(KeyboardInterrupt):
        cache.precompute(TEXTS, batch_size=2, progress=False)
    done = ByteTargetCache(str(tmp_path), key="k")
    assert len(done) == 2  # the first batch of 2 finished; the 3rd text was in flight
    # simulate a torn write: garbage after the last indexed row
    with open(data_file(done, codec=codec), "ab") as f:
        f.write(b"\x00" * 1000)
    fresh = Counting()
    resumed = ByteTargetCache(str(tmp_path), fresh, key="k", codec=codec)
    assert resumed.precompute(TEXTS, batch_size=2, progress=False) == len(TEXTS) - 2
    assert fresh.calls == TEXTS[2:]  # only the missing ones were computed
    ref = Counting().next_byte_proba_batch(TEXTS)
    assert_serves_exactly(resumed, TEXTS, codec)
    assert_serves_exactly(ByteTargetCache(str(tmp_path), key="k"), TEXTS, codec)
    # the torn bytes are never served and never cut (a reader may map the file): dead space
    size = sum(len(CODECS[codec].encode(r)) for r in ref) + 1000
    assert os.path.getsize(data_file(resumed, codec=codec)) == size


def test_key_depends_on_model_tokenizer_and_method(tmp_path, tiny_model, tiny_tokenizer):
    import copy

    a = ByteLevelLM(tiny_model, tiny_tokenizer, method="beam", beam_width=4)
    b = ByteLevelLM(tiny_model, tiny_tokenizer, method="beam", beam_width=8)
    c = ByteLevelLM(tiny_model, tiny_tokenizer, method="boundary")
    other = copy.deepcopy(tiny_model)
    with __import__("torch").no_grad():
        other.lm_head.weight.mul_(1.01)
    d = ByteLevelLM(other, tiny_tokenizer, method="beam", beam_width=4)
    keys = [byte_lm_fingerprint(m) for m in (a, b, c, d)]
    assert len(set(keys)) == 4
    assert byte_lm_fingerprint(a) == byte_lm_fingerprint(
        ByteLevelLM(tiny_model, tiny_tokenizer, method="beam", beam_width=4)
    )
    cache = ByteTargetCache(str(tmp_path), a)
    cache.precompute(["the cat"], progress=False)
    np.testing.assert_array_equal(cache.get("the cat"), decoded(a.next_byte_proba("the cat")))


class Slow(Counting):
    """A fake LM slow enough for writers in other processes to overlap with it."""

    def next_byte_proba_batch(self, texts):
        import time

        time.sleep(0.01 * len(texts))
        return super().next_byte_proba_batch(texts)


def _write_in_child(root, texts, results):
    cache = ByteTargetCache(root, Slow(), key="k")
    results.put(cache.precompute(texts, batch_size=3, progress=False))


def test_concurrent_writers(tmp_path):
    """Writers in several processes at once: each text is stored once, intact, and a reader
    polling meanwhile only ever gets exact rows."""
    import multiprocessing
    import warnings

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs the fork start method (the children must not re-import torch)")
    ctx = multiprocessing.get_context("fork")
    texts = [f"text {i} " * (1 + i % 4) for i in range(24)]
    results = ctx.Queue()
    children = [
        ctx.Process(target=_write_in_child, args=(str(tmp_path), texts[k::2] + texts, results))
        for k in range(3)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: not used here
        for c in children:
            c.start()
    while any(c.is_alive() for c in children):
        reader = ByteTargetCache(str(tmp_path), key="k")
        present = [t for t in texts if t in reader]
        assert_serves_exactly(reader, present)
    for c in children:
        c.join()
        assert c.exitcode == 0
    assert sum(results.get(timeout=5) for _ in children) == len(texts)  # each text once
    with open(os.path.join(tmp_path, "k", "index.jsonl")) as f:
        assert len(f.readlines()) == len(texts)
    assert_serves_exactly(ByteTargetCache(str(tmp_path), key="k"), texts)


def test_messages_and_progress_bar(tmp_path, caplog, capsys):
    import logging

    caplog.set_level(logging.DEBUG, logger="sklearn_lts")
    cache = ByteTargetCache(str(tmp_path), Counting(), key="k")
    assert any(cache.path in r.getMessage() for r in caplog.records)  # where the cache is
    caplog.clear()
    assert cache.precompute(TEXTS, batch_size=2, progress=True) == len(TEXTS)
    assert "teacher byte targets" in capsys.readouterr().err  # the tqdm bar
    assert "0 of 6 texts cached, 6 to compute" in caplog.text
    caplog.clear()
    assert cache.precompute(TEXTS[:2] + ["new"], progress=False) == 1
    assert "2 of 3 texts cached, 1 to compute" in caplog.text
    with pytest.raises(KeyError):
        cache.get("never seen")
    assert "miss" in caplog.text
    assert all(r.name == "sklearn_lts" for r in caplog.records)


def test_on_batch_reports_each_stored_batch(tmp_path):
    # an outer progress bar (the distiller's) moves once per stored batch, not per call
    cache = ByteTargetCache(str(tmp_path), Counting(), key="k")
    seen = []

    def on_batch(n):
        seen.append((n, len(cache)))  # called after the batch is stored

    assert cache.precompute(TEXTS[:5], batch_size=2, progress=False, on_batch=on_batch) == 5
    assert seen == [(2, 2), (2, 4), (1, 5)]
    assert cache.precompute(TEXTS, batch_size=2, progress=False, on_batch=seen.append) == 1
    assert seen[-1] == 1
