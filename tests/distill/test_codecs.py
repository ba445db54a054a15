"""Row codecs: the compact codec stores exactly what it says (top-k bytes, float16 probabilities,
end-of-text, the remaining mass), decodes to the stored distribution (rows that sum to 1), and
its KL from the dense rows is the tail's KL from uniform plus float16 rounding; a cache folder
with records of both codecs serves both."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sklearn_lts.distill import EOT, ROW_WIDTH, ByteTargetCache
from sklearn_lts.distill._targets._codecs import CODECS, DEFAULT_CODEC, TopKCodec
from tests.distill.test_targets import Counting, assert_serves_exactly, decoded

CODEC = CODECS[DEFAULT_CODEC]
K = CODEC.k
F16_TINY = 2.0**-24  # the smallest positive float16


def _one_hot(col):
    row = np.zeros((1, ROW_WIDTH))
    row[0, col] = 1.0
    return row


# rows of a few distinct values and many zeros (ties, rows with fewer than K nonzeros), or dense
_VALUES = st.one_of(st.sampled_from([0.0, 0.25, 1e-3, 1e-9]), st.floats(0.0, 1.0))
ROWS = st.integers(1, 4).flatmap(
    lambda n: st.one_of(
        arrays(np.float64, (n, ROW_WIDTH), elements=_VALUES, fill=st.just(0.0)),
        arrays(np.float64, (n, ROW_WIDTH), elements=st.floats(1e-12, 1.0)),
    )
).filter(lambda r: (r.sum(1) > 0).all())


def _stored(rows):
    return CODEC.stored(np.frombuffer(CODEC.encode(rows), dtype=np.uint8), len(rows))


def _f16_close(got, mass, total):
    """``got`` is ``mass / total`` to float16 precision: the nearest float16 (or the one next to
    it, for a float64 quotient on a rounding boundary), ``2 ** -24`` for a tiny positive mass."""
    want = np.float16(mass / total)
    if want == 0 and mass > 0:
        want = np.float16(F16_TINY)
    return abs(float(got) - float(want)) <= float(np.spacing(want))


@settings(max_examples=300, deadline=None)
@given(rows=ROWS)
@example(rows=_one_hot(97))
@example(rows=_one_hot(EOT))
@example(rows=np.ones((2, ROW_WIDTH)))  # all tied
@example(rows=np.eye(ROW_WIDTH)[[0, 255, 256]] + np.eye(ROW_WIDTH)[[256, 3, 5]])  # EOT on top
def test_what_is_stored_is_the_top_k_bytes_eot_and_the_rest(rows):
    stored = _stored(rows)
    for i, raw in enumerate(rows):
        total = math.fsum(raw)
        idx = stored.index[i].astype(int).tolist()
        assert len(set(idx)) == K  # K distinct bytes (zeros too, when fewer are nonzero)
        others = sorted(set(range(256)) - set(idx))
        assert min(raw[idx]) >= max(raw[others])  # a top-k set of the bytes
        ranked = sorted(range(256), key=lambda j: (-raw[j], j))  # ties: lower byte first
        assert [raw[j] for j in idx] == [raw[j] for j in ranked[:K]]
        assert all(_f16_close(stored.proba[i, a], raw[j], total) for a, j in enumerate(idx))
        assert _f16_close(stored.eot[i], raw[EOT], total)
        assert _f16_close(stored.rest[i], math.fsum(raw[others]), total)


def _brute_stored_distribution(stored, i):
    q = [float(stored.rest[i]) / (256 - K)] * 256 + [float(stored.eot[i])]
    for j, p in zip(stored.index[i].tolist(), stored.proba[i].tolist(), strict=True):
        q[j] = float(p)
    z = math.fsum(q)
    return [x / z for x in q]


@settings(max_examples=300, deadline=None)
@given(rows=ROWS)
@example(rows=_one_hot(EOT))
@example(rows=np.ones((1, ROW_WIDTH)))
def test_decoded_rows_are_the_stored_distribution(rows):
    q = decoded(rows)
    stored = _stored(rows)
    assert q.dtype == np.float32 and q.shape == rows.shape
    assert np.isfinite(q).all() and (q >= 0).all()
    np.testing.assert_allclose(q.astype(np.float64).sum(1), 1.0, rtol=0, atol=1e-6)
    for i in range(len(rows)):
        want = np.asarray(_brute_stored_distribution(stored, i), dtype=np.float32)
        np.testing.assert_array_max_ulp(q[i], want, maxulp=2)
        assert (q[i][rows[i] > 0] > 0).all()  # nothing with mass decodes as impossible


def _kl_nats(p, q):
    return math.fsum(a * math.log(a / b) for a, b in zip(p, q, strict=True) if a > 0)


@settings(max_examples=300, deadline=None)
@given(rows=ROWS)
@example(rows=_one_hot(5))
@example(rows=np.ones((1, ROW_WIDTH)))
def test_kl_from_the_dense_row_is_the_tail_term_plus_float16_rounding(rows):
    """KL(dense || decoded) = r * KL(tail / r || uniform over the 256 - k bytes) + the KL of the
    float16 rounding of the (k + 2) stored masses, which is at most a few 1e-6 nats."""
    q = decoded(rows).astype(np.float64)
    stored = _stored(rows)
    for i, raw in enumerate(rows):
        p = raw / math.fsum(raw)
        tail = [p[j] for j in sorted(set(range(256)) - set(stored.index[i].tolist()))]
        r = math.fsum(tail)
        tail_kl = _kl_nats([t / r for t in tail], [1 / len(tail)] * len(tail)) if r > 0 else 0
        kl = _kl_nats(p.tolist(), q[i].tolist())
        assert -1e-6 <= kl - r * tail_kl <= 4e-6
        assert kl <= r * math.log(256 - K) + 4e-6


def test_one_hot_and_sparse_rows_decode_exactly():
    rows = np.vstack([_one_hot(97), _one_hot(EOT), np.eye(ROW_WIDTH)[[3]] * 0.5 + np.eye(
        ROW_WIDTH)[[200]] * 0.5])
    np.testing.assert_array_equal(decoded(rows), rows.astype(np.float32))


def test_encode_refuses_what_is_not_a_distribution():
    with pytest.raises(ValueError, match="shape"):
        CODEC.encode(np.ones((2, 256)))
    with pytest.raises(ValueError, match="non-negative"):
        CODEC.encode(-np.ones((1, ROW_WIDTH)))
    with pytest.raises(ValueError, match="finite"):
        CODEC.encode(np.full((1, ROW_WIDTH), np.nan))
    with pytest.raises(ValueError, match="do not hold"):
        CODEC.decode(np.zeros(51, dtype=np.uint8), 1)


def test_size_per_row():
    assert CODEC.name == "top19" and CODEC.dtype.itemsize == 3 * 19 + 4
    assert len(TopKCodec(8).encode(np.ones((5, ROW_WIDTH)))) == 5 * 28
    assert len(CODECS["f32"].encode(np.ones((5, ROW_WIDTH)))) == 5 * 1028


def test_a_folder_with_f32_and_compact_records_serves_both(tmp_path):
    texts = ["the cat", "sat on", "the mat.", "café", "", "a"]
    old = ByteTargetCache(str(tmp_path), Counting(), key="k", codec="f32")  # an older version
    assert old.precompute(texts[:3], progress=False) == 3
    lm = Counting()
    new = ByteTargetCache(str(tmp_path), lm, key="k")  # the compact default
    assert new.precompute(texts, progress=False) == 3
    assert lm.calls == texts[3:]  # the f32 records are served, not recomputed
    for reader in (new, ByteTargetCache(str(tmp_path), key="k")):
        assert_serves_exactly(reader, texts[:3], "f32")
        assert_serves_exactly(reader, texts[3:], "top19")
    assert sorted(n for n in os.listdir(new.path) if n.startswith("rows-")) == [
        "rows-00000.f32", "rows-00000.top19"]
