"""BOS-started windows: every token predicted exactly once, every token seen in context."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sklearn_lts.distill._windows import context_windows, make_windows, pad_windows


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=6), st.integers(1, 12))
def test_windows_predict_each_token_once(n_tokens, max_length):
    windows = make_windows(n_tokens, max_length)
    seen = {d: [] for d in range(len(n_tokens))}
    for w in windows:
        assert 0 < w.end - w.start <= max_length
        seen[w.doc].extend(range(w.start, w.end))
    for d, n in enumerate(n_tokens):
        assert seen[d] == list(range(n))  # in order, no gap, no repeat


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(3, 99), min_size=1, max_size=9), min_size=1, max_size=5))
def test_pad_windows_shift_labels_by_one_after_bos(token_lists):
    tokens = [np.array(t) for t in token_lists]
    b = pad_windows(tokens, bos_id=1, pad_id=2)
    for i, t in enumerate(token_lists):
        n = len(t)
        # brute force: position p sees BOS + t[:p] and predicts t[p]
        for p in range(n):
            assert b.input_ids[i, p] == ([1] + t)[p]
            assert b.labels[i, p] == t[p]
        assert b.attention_mask[i].tolist() == [1] * n + [0] * (b.labels.shape[1] - n)
        assert (b.labels[i, n:] == -100).all() and (b.input_ids[i, n:] == 2).all()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(3, 99), max_size=30), st.integers(1, 10))
def test_context_windows_cover_every_token_once(ids, max_length):
    got = list(context_windows(np.array(ids, dtype=np.int64), max_length, bos_id=1))
    assert all(w[0] == 1 and len(w) <= max(max_length, 2) for _, w in got)
    assert [t for _, w in got for t in w[1:]] == ids
    assert [s for s, _ in got] == list(range(0, max(len(ids), 1), max(max_length - 1, 1)))
