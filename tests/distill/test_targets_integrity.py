"""Damaged caches: nothing damaged is served, only damaged texts are recomputed, and no data
file ever shrinks (a reader's memory map would die with SIGBUS)."""

from __future__ import annotations

import contextlib
import json
import os
import warnings

import numpy as np
import pytest

from sklearn_lts.distill import ByteTargetCache, text_hash
from sklearn_lts.distill._targets import TargetCacheWarning
from tests.distill.test_targets import (
    Counting,
    assert_serves_exactly,
    data_file,
    decoded,
    fake_rows,
)

TEXTS = [f"text {i}: " + "ab" * (i % 7) for i in range(240)]


def _index(cache):
    return os.path.join(cache.path, "index.jsonl")


def _filled(tmp_path, texts=TEXTS, codec="top19"):
    cache = ByteTargetCache(str(tmp_path), Counting(), key="k", codec=codec)
    assert cache.precompute(texts, batch_size=16, progress=False) == len(texts)
    return cache


@contextlib.contextmanager
def _no_warning():
    """A TargetCacheWarning inside is an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", TargetCacheWarning)
        yield


@pytest.mark.parametrize("codec", ["f32", "top19"])
def test_damaged_index_line_costs_only_its_text(tmp_path, codec):
    cache = _filled(tmp_path, codec=codec)
    held = ByteTargetCache(str(tmp_path), key="k").get(TEXTS[-1])  # a reader's view, file end
    expected = np.array(held)
    size = os.path.getsize(data_file(cache, codec=codec))
    with open(_index(cache)) as f:
        lines = f.readlines()
    lines[10] = "{garbage\n"
    with open(_index(cache), "w") as f:
        f.writelines(lines)
    new = [f"new text {i}" for i in range(30)]
    lm = Counting()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        writer = ByteTargetCache(str(tmp_path), lm, key="k", codec=codec)
        assert writer.precompute(TEXTS + new, progress=False) == 31
    assert os.path.getsize(data_file(cache, codec=codec)) >= size  # before the view is touched
    np.testing.assert_array_equal(held, expected)
    assert sorted(lm.calls) == sorted([TEXTS[10], *new])  # the damaged line's text, no other
    assert [str(w.message) for w in caught if w.category is TargetCacheWarning
            and "line 11" in str(w.message)]
    with _no_warning():  # the index was repaired: a new reader finds no damage
        assert_serves_exactly(ByteTargetCache(str(tmp_path), key="k"), TEXTS + new, codec)
    with open(_index(cache)) as f:
        assert len(f.readlines()) == len(TEXTS) + len(new)


def test_torn_last_index_line_is_recovered(tmp_path):
    cache = _filled(tmp_path, TEXTS[:20])
    with open(_index(cache), "rb+") as f:
        last = f.readlines()[-1]
        f.truncate(os.path.getsize(_index(cache)) - len(last) // 2)  # an interrupted write
    lm = Counting()
    writer = ByteTargetCache(str(tmp_path), lm, key="k")
    assert len(writer) == 19
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert writer.precompute(TEXTS[:25], batch_size=4, progress=False) == 6
    assert sorted(lm.calls) == sorted(TEXTS[19:25])  # the torn text and the five new ones
    assert [w for w in caught if w.category is TargetCacheWarning and "damaged line" in
            str(w.message)]
    again = Counting()
    with _no_warning():  # the cache grew: nothing is recomputed, and nothing is wrong any more
        resumed = ByteTargetCache(str(tmp_path), again, key="k")
        assert resumed.precompute(TEXTS[:25], progress=False) == 0
        assert_serves_exactly(resumed, TEXTS[:25])
    assert again.calls == []


def _records(cache):
    """Index records in the order written."""
    with open(_index(cache)) as f:
        return [json.loads(line) for line in f]


def _damage(path, how):
    """Damage a data file; returns the byte range [lo, hi) whose records are now invalid."""
    size = os.path.getsize(path)
    if how == "deleted":
        os.remove(path)
        return 0, size
    if how in ("cut", "emptied"):
        cut = size // 3 if how == "cut" else 0
        os.truncate(path, cut)
        return cut, size
    lo = size // 2  # random bytes in the middle
    with open(path, "r+b") as f:
        f.seek(lo)
        f.write(np.random.default_rng(0).bytes(40_000))
    return lo, lo + 40_000


@pytest.mark.parametrize("codec", ["f32", "top19"])
@pytest.mark.parametrize("how", ["cut", "emptied", "deleted", "random bytes"])
def test_damaged_rows_are_recomputed_not_served(tmp_path, how, codec):
    cache = _filled(tmp_path, TEXTS[:60], codec)
    lo, hi = _damage(data_file(cache, codec=codec), how)
    recs = _records(cache)
    assert [r["h"] for r in recs] == [text_hash(t) for t in TEXTS[:60]]
    extent = {t: (r["o"], r["o"] + r["b"]) for t, r in zip(TEXTS[:60], recs, strict=True)}
    damaged = [t for t, (a, b) in extent.items() if a < hi and b > lo]
    assert len(damaged) >= 2
    reader = ByteTargetCache(str(tmp_path), key="k")  # no byte LM: misses, never bad rows
    with pytest.warns(TargetCacheWarning, match="damaged") as caught:
        intact = [t for t in TEXTS[:60] if t in reader]
    assert len(caught) == 1  # one warning for the file, not one per text
    assert sorted(set(TEXTS[:60]) - set(intact)) == sorted(damaged)
    assert_serves_exactly(reader, intact, codec)
    with pytest.raises(KeyError, match="damaged|precompute"):
        reader.get(damaged[0])
    # get() with a byte LM recomputes a damaged text on the spot
    lm = Counting()
    with pytest.warns(TargetCacheWarning):
        rows = ByteTargetCache(str(tmp_path), lm, key="k", codec=codec).get(damaged[-1])
    np.testing.assert_array_equal(rows, decoded(fake_rows(damaged[-1]), codec))
    assert lm.calls == [damaged[-1]]
    # precompute reports what it did, and afterwards everything is served
    lm = Counting()
    writer = ByteTargetCache(str(tmp_path), lm, key="k", codec=codec)
    with pytest.warns(TargetCacheWarning):
        assert writer.precompute(TEXTS[:60], progress=False) == len(damaged) - 1
    assert sorted(lm.calls) == sorted(damaged[:-1])
    assert_serves_exactly(ByteTargetCache(str(tmp_path), key="k"), TEXTS[:60], codec)


def test_new_rows_never_land_where_old_records_point(tmp_path):
    """After a cut, writers continue in a new data file: the cut file is not appended to, so the
    bytes an old record names never change meaning."""
    cache = _filled(tmp_path, TEXTS[:10])
    os.truncate(data_file(cache), 5000)
    with pytest.warns(TargetCacheWarning):
        ByteTargetCache(str(tmp_path), Counting(), key="k").precompute(TEXTS[:12], progress=False)
    assert os.path.getsize(data_file(cache)) == 5000
    assert os.path.getsize(data_file(cache, 1)) > 0
    assert_serves_exactly(ByteTargetCache(str(tmp_path), key="k"), TEXTS[:12])


def test_records_of_another_version_are_kept_but_not_read(tmp_path):
    from sklearn_lts.distill._targets._records import _canonical, _line_check

    cache = _filled(tmp_path, TEXTS[:3])
    fields = {"v": 3, "h": "0" * 40, "c": "topk8", "f": "rows-r0-00000.top", "o": 0, "b": 10}
    line = _canonical(fields | {"k": _line_check(fields)}) + "\n"
    with open(_index(cache), "a") as f:
        f.write(line + "{garbage\n")  # the garbage makes the next writer rewrite the index
    with pytest.warns(TargetCacheWarning):
        writer = ByteTargetCache(str(tmp_path), Counting(), key="k")
    assert writer.precompute(TEXTS[:4], progress=False) == 1
    with open(_index(cache)) as f:
        lines = f.readlines()
    assert line in lines and len(lines) == 5  # 4 texts + the foreign line, no garbage
    assert_serves_exactly(ByteTargetCache(str(tmp_path), key="k"), TEXTS[:4])
