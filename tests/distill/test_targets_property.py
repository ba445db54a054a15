"""Property: after any interleaving of writes, interrupted writes and damage to the tails of the
files (cut, torn, garbage in the index), the cache serves exactly what was stored or nothing,
no data file shrinks except by the damage itself, and one precompute restores every text while
recomputing only the texts that were not served intact."""

from __future__ import annotations

import os
import tempfile
import warnings

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sklearn_lts.distill import ByteTargetCache
from sklearn_lts.distill._targets import TargetCacheWarning
from tests.distill.test_targets import Counting, assert_serves_exactly

TEXTS = ["", "a", "the cat", "sat on", "café", "the mat.", "日本", "x" * 9]

_subset = st.lists(st.sampled_from(TEXTS), min_size=1, max_size=6)
_where = st.floats(0.0, 1.0)
OPS = st.one_of(
    st.tuples(st.just("write"), _subset, st.integers(1, 4), st.booleans()),
    st.tuples(st.just("interrupted write"), _subset, st.integers(0, 5), st.booleans()),
    st.tuples(st.just("cut index"), _where),
    st.tuples(st.just("garbage in index"), _where, st.binary(min_size=1, max_size=12)),
    st.tuples(st.just("cut data"), _where),
    st.tuples(st.just("torn data tail"), st.binary(min_size=1, max_size=3000)),
    st.tuples(st.just("garbage in data"), _where, st.binary(min_size=1, max_size=64)),
)


def _data_sizes(folder):
    return {n: os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder)
            if n.startswith("rows-")}


def _newest_data(folder):
    names = sorted(_data_sizes(folder))
    return os.path.join(folder, names[-1]) if names else None


def _apply(folder, op, writer):
    """Run one operation (a write with a new cache object or with the long-lived ``writer``);
    returns False for the simulated damage (the files may shrink)."""
    kind, *args = op
    if kind in ("write", "interrupted write"):
        texts, n, reuse = args
        if not reuse:
            writer = ByteTargetCache(os.path.dirname(folder), key="k")
        writer.byte_lm = Counting(fail_after=n if kind == "interrupted write" else None)
        try:
            writer.precompute(texts, batch_size=1 + n % 3, progress=False)
        except KeyboardInterrupt:
            pass
        return True
    path = os.path.join(folder, "index.jsonl") if "index" in kind else _newest_data(folder)
    if path is None or not os.path.exists(path):
        return False
    size = os.path.getsize(path)
    at = int(args[0] * size) if kind != "torn data tail" else size
    if kind.startswith("cut"):
        os.truncate(path, at)
    else:
        with open(path, "r+b") as f:
            f.seek(at)
            f.write(args[-1])
    return False


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(OPS, min_size=1, max_size=10))
def test_cache_serves_what_was_stored_after_any_interruptions(ops):
    with tempfile.TemporaryDirectory() as root, warnings.catch_warnings():
        warnings.simplefilter("ignore", TargetCacheWarning)
        folder = os.path.join(root, "k")
        os.makedirs(folder)
        long_lived = ByteTargetCache(root, key="k")  # a reader that outlives every operation
        writer = ByteTargetCache(root, key="k")  # and a writer
        for op in ops:
            before = _data_sizes(folder)
            if _apply(folder, op, writer):  # no data file shrinks, and none is removed
                after = _data_sizes(folder)
                assert all(after.get(n, -1) >= s for n, s in before.items())
            long_lived.refresh()  # new index, same memory maps
            for reader in (ByteTargetCache(root, key="k"), long_lived, writer):
                assert_serves_exactly(reader, [t for t in TEXTS if t in reader])
        fresh = ByteTargetCache(root, key="k")
        intact = {t for t in TEXTS if t in fresh}
        lm = Counting()
        assert ByteTargetCache(root, lm, key="k").precompute(TEXTS, progress=False) == len(
            set(TEXTS) - intact)
        assert sorted(lm.calls) == sorted(set(TEXTS) - intact)
        assert_serves_exactly(ByteTargetCache(root, key="k"), TEXTS)


@settings(max_examples=200, deadline=None)
@given(offset=st.integers(0, 2**40), n_rows=st.integers(0, 10**6), at=st.floats(0, 1),
       byte=st.integers(0, 255))
def test_a_changed_index_line_is_never_read_as_another_record(offset, n_rows, at, byte):
    from sklearn_lts.distill._targets._records import IndexRecord

    rec = IndexRecord("ab" * 20, "f32", "rows-00000.f32", offset, n_rows * 1028, n_rows,
                      "0123456789abcdef" * 2)
    line = rec.to_line().encode()
    i = min(int(at * len(line)), len(line) - 2)  # any byte but the newline
    changed = line[:i] + bytes([byte]) + line[i + 1 :]
    try:
        got = IndexRecord.from_line(changed.decode("utf-8"))
    except ValueError:  # bad UTF-8, bad JSON or bad checksum
        return
    assert got == rec  # only an unchanged (or equivalent) line parses
