"""The on-disk teacher-target cache: keyed, memory-mapped, resumable."""

from __future__ import annotations

import os

import numpy as np
import pytest

from sklearn_lts.distill import ByteLevelLM, ByteTargetCache, byte_lm_fingerprint

TEXTS = ["the cat", "sat on", "the mat.", "café", "", "a"]


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
            n = len(t.encode()) + 1
            r = np.arange(n * 257, dtype=np.float64).reshape(n, 257) + len(t)
            out.append(r / r.sum(1, keepdims=True))
        return out


def test_roundtrip_memmap(tmp_path):
    cache = ByteTargetCache(str(tmp_path), Counting(), key="k")
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


def test_resume_after_interruption(tmp_path):
    broken = Counting(fail_after=3)
    cache = ByteTargetCache(str(tmp_path), broken, key="k")
    with pytest.raises(KeyboardInterrupt):
        cache.precompute(TEXTS, batch_size=2, progress=False)
    done = ByteTargetCache(str(tmp_path), key="k")
    assert len(done) == 2  # the first batch of 2 finished; the 3rd text was in flight
    # simulate a torn write: garbage after the last indexed row
    with open(os.path.join(done.path, "rows.f32"), "ab") as f:
        f.write(b"\x00" * 1000)
    fresh = Counting()
    resumed = ByteTargetCache(str(tmp_path), fresh, key="k")
    assert resumed.precompute(TEXTS, batch_size=2, progress=False) == len(TEXTS) - 2
    assert fresh.calls == TEXTS[2:]  # only the missing ones were computed
    ref = Counting().next_byte_proba_batch(TEXTS)
    for t, r in zip(TEXTS, ref, strict=True):
        np.testing.assert_allclose(resumed.get(t), r, rtol=1e-6)
    size = os.path.getsize(os.path.join(resumed.path, "rows.f32"))
    assert size == sum(r.size for r in ref) * 4  # the torn bytes were dropped


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
    np.testing.assert_allclose(cache.get("the cat"), a.next_byte_proba("the cat"), atol=1e-6)
