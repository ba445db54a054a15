"""Teacher targets computed on the fly (``ByteDistiller(targets="on_the_fly")``): no cache, the
teacher runs when training first needs a text, and the student equals the one trained on a
cache of the same rows stored exactly (``"f32"`` records)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from sklearn_lts.distill import ByteDistiller, ByteLevelLM, ByteTargetCache
from sklearn_lts.distill._align import gather_byte_targets
from sklearn_lts.distill._lazy_rows import RowsOnDemand, byte_targets
from tests.distill.test_targets import Counting, fake_rows

TEXTS = ["the cat sat on the mat.", "the café was near the sea.", "déjà vu, naïve résumé",
         "then the theme of these theses"] * 2


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models, shared cores
    yield
    torch.set_num_threads(n)


@pytest.fixture
def teacher(tiny_model, tiny_tokenizer):
    return tiny_model, tiny_tokenizer


@pytest.fixture
def student_spec(tiny_tokenizer):
    from transformers import GPT2Config

    cfg = GPT2Config(vocab_size=len(tiny_tokenizer), n_layer=1, n_embd=16, n_head=2,
                     n_positions=64, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return cfg, tiny_tokenizer


def _bd(teacher, student_spec, tmp_path, **kw):
    params = dict(teacher=teacher, student=student_spec, max_steps=4, batch_size=4,
                  max_length=16, learning_rate=1e-2, random_state=0, device="cpu",
                  cache_dir=str(tmp_path), byte_method="boundary")  # cheap teacher targets
    return ByteDistiller(**(params | kw))


def _counting_lm(monkeypatch):
    """Record every batch of texts ByteLevelLM converts."""
    calls = []
    real = ByteLevelLM.next_byte_proba_batch

    def counting(self, texts):
        calls.append(list(texts))
        return real(self, texts)

    monkeypatch.setattr(ByteLevelLM, "next_byte_proba_batch", counting)
    return calls


def test_on_the_fly_student_equals_the_cached_one(teacher, student_spec, tmp_path, monkeypatch):
    # the cache of the first run holds the teacher's rows as f32 records, one text per call
    byte_lm = ByteLevelLM(teacher[0], teacher[1], method="boundary")
    cache = ByteTargetCache(os.path.join(tmp_path, "cached", "bld_targets"), byte_lm, codec="f32")
    assert cache.precompute(TEXTS, batch_size=1, progress=False) == len(set(TEXTS))
    calls = _counting_lm(monkeypatch)
    cached = _bd(teacher, student_spec, tmp_path / "cached", kl_weight=1.0,
                 token_kl_weight=1.0).fit(TEXTS)
    assert calls == []  # read from the cache
    fly = _bd(teacher, student_spec, tmp_path / "fly", kl_weight=1.0, token_kl_weight=1.0,
              targets="on_the_fly").fit(TEXTS)
    assert not os.path.exists(tmp_path / "fly" / "bld_targets")  # nothing written
    assert calls and all(len(c) == 1 for c in calls)  # one text at a time, inside training
    assert sorted({c[0] for c in calls}) == sorted(set(TEXTS))
    assert [h["loss"] for h in fly.history_] == [h["loss"] for h in cached.history_]
    assert [h["kl"] for h in fly.history_] == [h["kl"] for h in cached.history_]
    for a, b in zip(fly.student_.parameters(), cached.student_.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(fly.byte_head_.parameters(), cached.byte_head_.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_the_compact_cache_trains_on_the_stored_distribution(teacher, student_spec, tmp_path):
    """The default cache (top19) gives other targets than the exact rows: a different KL."""
    exact = _bd(teacher, student_spec, tmp_path / "a", kl_weight=1.0, targets="on_the_fly",
                max_steps=1).fit(TEXTS)
    compact = _bd(teacher, student_spec, tmp_path / "b", kl_weight=1.0, max_steps=1).fit(TEXTS)
    assert os.listdir(tmp_path / "b" / "bld_targets")
    assert exact.history_[0]["token_ce"] == compact.history_[0]["token_ce"]
    assert exact.history_[0]["kl"] != compact.history_[0]["kl"]


def test_cached_targets_are_computed_first_and_read_when_needed(teacher, student_spec, tmp_path,
                                                                monkeypatch):
    rows = byte_targets(_bd(teacher, student_spec, tmp_path), TEXTS)
    byte_lm = ByteLevelLM(teacher[0], teacher[1], method="boundary")
    cache = ByteTargetCache(os.path.join(tmp_path, "bld_targets"), byte_lm)
    assert all(t in cache for t in TEXTS)  # every text computed before training starts
    expected = cache.get(TEXTS[1])
    reads = []
    real_get = ByteTargetCache.get
    monkeypatch.setattr(ByteTargetCache, "get",
                        lambda self, t: reads.append(t) or real_get(self, t))
    lazy = list(rows)
    assert reads == [] and lazy[1].shape == expected.shape  # nothing read, not even decoded
    np.testing.assert_array_equal(lazy[1][[0, 3]], expected[[0, 3]])
    np.testing.assert_array_equal(np.asarray(lazy[1]), expected)
    assert reads == [TEXTS[1]]  # read once, then kept


def test_targets_is_validated(teacher, student_spec, tmp_path):
    with pytest.raises(ValueError, match="targets"):
        _bd(teacher, student_spec, tmp_path, targets="disk").fit(TEXTS)


def test_rows_are_computed_when_first_read_and_kept_in_a_small_store():
    texts = ["the cat", "sat on", "the mat.", "café"]
    lm = Counting()
    rows = RowsOnDemand(lm, texts, max_rows=20)  # room for two or three of these texts
    lazy = list(rows)
    assert lm.calls == [] and [r.shape for r in lazy] == [(len(t.encode()) + 1, 257)
                                                          for t in texts]
    for i, t in enumerate(texts):
        np.testing.assert_array_equal(lazy[i][np.arange(len(lazy[i]))],
                                      fake_rows(t).astype(np.float32))
        np.testing.assert_array_equal(np.asarray(lazy[i]), fake_rows(t).astype(np.float32))
    assert lm.calls == texts  # each once, while it stayed in the store
    lazy[3][0]
    lazy[2][0]
    assert lm.calls == texts  # the last two are still there
    lazy[0][0]
    assert lm.calls == [*texts, texts[0]]  # the first was evicted: computed again
    one = RowsOnDemand(Counting(), ["x" * 50], max_rows=1)
    assert one[0][-1].shape == (257,) and one[-1].shape == (51, 257)  # kept though too long
    with pytest.raises(IndexError):
        rows[4]
    twice = Counting()
    rows = RowsOnDemand(twice, ["ab", "cd", "ab"])
    assert [r[0].sum() > 0 for r in rows] == [True] * 3 and twice.calls == ["ab", "cd"]


def test_training_gathers_the_same_targets_from_lazy_rows():
    text = "the mat. café"
    data = text.encode()
    starts, lengths = np.array([0, 4, 9, 11]), np.array([4, 5, 2, 3])
    lazy = RowsOnDemand(Counting(), [text])[0]
    for k in (1, 3, None):
        g1, r1 = gather_byte_targets(data, starts, lengths, k, lazy)
        g2, r2 = gather_byte_targets(data, starts, lengths, k, fake_rows(text).astype(np.float32))
        np.testing.assert_array_equal(g1, g2)
        np.testing.assert_array_equal(r1, r2)
