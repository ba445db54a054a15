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
from sklearn_lts.distill._targets._quantised import code_weight, encode_rows, log_codes
from tests.distill.test_targets import Counting, assert_serves_exactly, decoded

CODEC = CODECS["top19"]  # the fixed-size compact codec of the version before
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
    q = decoded(rows, "top19")
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
    q = decoded(rows, "top19").astype(np.float64)
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
    for codec in ("top19", DEFAULT_CODEC):
        np.testing.assert_array_equal(decoded(rows, codec), rows.astype(np.float32))


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


def test_a_folder_with_records_of_every_codec_serves_them_all(tmp_path):
    texts = ["the cat", "sat on", "the mat.", "café", "", "a", "on the", "mat"]
    old = ByteTargetCache(str(tmp_path), Counting(), key="k", codec="f32")  # an older version
    assert old.precompute(texts[:3], progress=False) == 3
    older = ByteTargetCache(str(tmp_path), Counting(), key="k", codec="top19")
    assert older.precompute(texts[:5], progress=False) == 2
    lm = Counting()
    new = ByteTargetCache(str(tmp_path), lm, key="k")  # the default
    assert new.codec == DEFAULT_CODEC == "q12v"
    assert new.precompute(texts, progress=False) == 3
    assert lm.calls == texts[5:]  # the f32 and top19 records are served, not recomputed
    for reader in (new, ByteTargetCache(str(tmp_path), key="k")):
        assert_serves_exactly(reader, texts[:3], "f32")
        assert_serves_exactly(reader, texts[3:5], "top19")
        assert_serves_exactly(reader, texts[5:], "q12v")
    assert sorted(n for n in os.listdir(new.path) if n.startswith("rows-")) == [
        "rows-00000.f32", "rows-00000.q12v", "rows-00000.top19"]


# ------------------------------------------------------------------ q12v: variable length
Q = CODECS["q12v"]
BUDGET = Q.budget_bits
N_SHIFTS = 4


def _q_encoded(rows):
    return encode_rows(rows, Q.step, BUDGET, N_SHIFTS)


def _q_decoded(rows):
    blob = Q.encode(rows)
    return Q.decode(np.frombuffer(blob, dtype=np.uint8), len(rows))


def _kl_bits(p, q):
    return _kl_nats(p, q) / math.log(2)


def _stored_rows_brute(p, order, shift):
    """Every candidate stored row of the normalised row ``p``: row ``k`` keeps the ``k`` bytes
    ``order[:k]`` at their own weights, spreads the weight of the rest (its mass summed with
    ``math.fsum``) uniformly over the other bytes, and is renormalised."""
    def w(x):
        return code_weight(log_codes(np.asarray(x, dtype=np.float64), Q.step, shift), Q.step)

    rank = np.empty(256, dtype=int)
    rank[order] = np.arange(256)
    kept = rank[None, :] < np.arange(256)[:, None]  # (k, byte)
    rest = w([math.fsum(p[order[k:]]) for k in range(256)]) / (256 - np.arange(256))
    out = np.empty((256, ROW_WIDTH))
    out[:, :256] = np.where(kept, w(p[:256])[None, :], rest[:, None])
    out[:, EOT] = w(p[EOT])
    return out / out.sum(1, keepdims=True)


def _kl_table_brute(p, order):
    """(shifts, 256) KL in bits of every candidate, computed densely row by row."""
    table = np.empty((N_SHIFTS, 256))
    for s in range(N_SHIFTS):
        q = _stored_rows_brute(p, order, s / N_SHIFTS)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(p > 0, p * np.log2(p / q), 0.0)
        table[s] = terms.sum(1)
    return table


Q_ROWS = st.one_of(
    ROWS,
    st.integers(1, 3).flatmap(lambda n: arrays(  # tiny probabilities beside large ones
        np.float64, (n, ROW_WIDTH), elements=st.sampled_from([0.0, 1e-300, 1e-12, 1e-6, 0.3]),
        fill=st.just(1e-9))),
).filter(lambda r: (r.sum(1) > 0).all())
EOT_HEAVY = np.full((1, ROW_WIDTH), 1e-4)
EOT_HEAVY[0, EOT] = 1.0


@settings(max_examples=200, deadline=None)
@given(rows=Q_ROWS)
@example(rows=_one_hot(97))
@example(rows=_one_hot(EOT))
@example(rows=np.ones((2, ROW_WIDTH)))  # all tied
@example(rows=EOT_HEAVY)
@example(rows=np.eye(ROW_WIDTH)[[0, 255, 256]] * 1e-300)  # tiny, unnormalised
@example(rows=np.eye(ROW_WIDTH)[[0]] + np.eye(ROW_WIDTH)[[1]] + np.eye(ROW_WIDTH)[[2]] * 5e-324)
def test_q12v_decodes_to_distributions_with_mass_where_the_row_has_mass(rows):
    q = _q_decoded(rows)
    assert q.dtype == np.float32 and q.shape == rows.shape and not q.flags.writeable
    assert np.isfinite(q).all() and (q >= 0).all()
    np.testing.assert_allclose(q.astype(np.float64).sum(1), 1.0, rtol=0, atol=1e-6)
    assert (q[rows > 0] > 0).all()  # nothing with mass decodes as impossible


@settings(max_examples=40, deadline=None)
@given(rows=Q_ROWS)
@example(rows=_one_hot(97))
@example(rows=np.ones((1, ROW_WIDTH)))
@example(rows=EOT_HEAVY)
def test_q12v_stores_the_fewest_top_bytes_that_meet_the_kl_budget(rows):
    """Against a brute-force oracle: the stored bytes are the most probable ones (ties: lower
    byte first), the count is the fewest whose KL (quantisation included) meets the budget for
    some shift, else the smallest KL of all; the KL of the decoded row is the one reported."""
    enc = _q_encoded(rows)
    q = _q_decoded(rows).astype(np.float64)
    starts = np.cumsum(enc.stored.count.astype(int)) - enc.stored.count
    for i, raw in enumerate(rows):
        p = raw / math.fsum(raw)
        order = np.array(sorted(range(256), key=lambda j: (-p[j], j)))
        k = int(enc.stored.count[i])
        assert enc.stored.index[starts[i] : starts[i] + k].tolist() == order[:k].tolist()
        kl = _kl_bits(p.tolist(), q[i].tolist())
        assert abs(kl - enc.kl_bits[i]) <= 1e-6  # float32 rounding of the decoded row
        table = _kl_table_brute(p, order)
        met = (table <= BUDGET + 1e-12).any(0)
        if met.any():
            assert k == int(met.argmax()) and kl <= BUDGET + 1e-6
        else:
            assert abs(enc.kl_bits[i] - table.min()) <= 1e-9


def test_q12v_rows_with_few_nonzeros_or_all_ties_decode_exactly():
    rows = np.vstack([_one_hot(97), _one_hot(EOT), np.ones((1, ROW_WIDTH)),
                      np.eye(ROW_WIDTH)[[3]] * 0.5 + np.eye(ROW_WIDTH)[[200]] * 0.25
                      + np.eye(ROW_WIDTH)[[EOT]] * 0.25])
    want = rows / rows.sum(1, keepdims=True)
    np.testing.assert_allclose(_q_decoded(rows), want, rtol=1e-6, atol=0)
    assert _q_encoded(rows).stored.count.tolist() == [1, 0, 0, 2]


def test_q12v_refuses_what_it_cannot_read():
    rows = np.random.default_rng(0).dirichlet(np.full(ROW_WIDTH, 0.05), size=4)
    buf = np.frombuffer(Q.encode(rows), dtype=np.uint8)
    assert Q.decode(buf, 4).shape == (4, ROW_WIDTH)
    for n in (3, 5):
        with pytest.raises(ValueError, match="do not hold"):
            Q.decode(buf, n)
    with pytest.raises(ValueError, match="decompress"):
        Q.decode(np.frombuffer(b"not a record", dtype=np.uint8), 4)
    with pytest.raises(ValueError, match="non-negative"):
        Q.encode(-np.ones((1, ROW_WIDTH)))
    with pytest.raises(ValueError, match="shape"):
        Q.encode(np.ones((2, 256)))
    assert Q.decode(np.frombuffer(Q.encode(np.ones((0, ROW_WIDTH))), np.uint8), 0).shape == (
        0, ROW_WIDTH)


def test_q12v_keeps_the_kl_budget_on_peaked_rows_with_a_long_tail():
    """Rows like a teacher's: a few likely bytes and a tail of small ones; every row meets the
    budget, with far fewer than 255 bytes stored."""
    rng = np.random.default_rng(1)
    rows = rng.dirichlet(np.full(ROW_WIDTH, 0.02), size=200) + rng.random((200, ROW_WIDTH)) * 1e-5
    enc = _q_encoded(rows)
    q = _q_decoded(rows).astype(np.float64)
    p = rows / rows.sum(1, keepdims=True)
    kl = np.array([_kl_bits(a.tolist(), b.tolist()) for a, b in zip(p, q, strict=True)])
    assert (kl <= BUDGET + 1e-6).all()
    np.testing.assert_allclose(kl, enc.kl_bits, rtol=0, atol=1e-6)
    assert enc.stored.count.max() < 255
