"""The byte table and trie of a tokenizer, cached per tokenizer object."""

from __future__ import annotations

import weakref
from typing import Any, NamedTuple

from sklearn_lts.distill._token_bytes import TokenBytes, token_bytes
from sklearn_lts.distill._trie import VocabTrie

__all__ = ["Vocabulary", "vocabulary"]


class Vocabulary(NamedTuple):
    """The bytes of every token id and the byte trie over them."""

    tb: TokenBytes
    trie: VocabTrie


_CACHE: list = []  # a few (weakref to tokenizer, key, Vocabulary), most recent last
_CACHE_SIZE = 4


def _mutable_state(tokenizer: Any) -> tuple:
    """What can change in a tokenizer object in place: its size (added tokens), BOS and EOS."""
    size = len(tokenizer) if hasattr(tokenizer, "__len__") else None
    return size, getattr(tokenizer, "bos_token_id", None), getattr(tokenizer, "eos_token_id", None)


def vocabulary(tokenizer: Any, vocab_size: int, bos: int | None, eos: int | None) -> Vocabulary:
    """TokenBytes and trie of a tokenizer, cached: reading a vocabulary takes 0.1-1 s.

    ``vocab_size`` is the size of the model's output layer; ``bos``/``eos`` override the
    tokenizer's own ids. A table is reused only for the same tokenizer object, output size and
    overrides, and while the tokenizer's size and special ids are unchanged.
    """
    key = (vocab_size, bos, eos, _mutable_state(tokenizer))
    for ref, k, vocab in _CACHE:
        if ref() is tokenizer and k == key:
            return vocab
    tb = token_bytes(tokenizer, vocab_size, bos_token_id=bos, eos_token_id=eos)
    vocab = Vocabulary(tb, VocabTrie(tb))
    try:
        ref = weakref.ref(tokenizer)
    except TypeError:  # e.g. a plain dict vocabulary
        return vocab
    _CACHE.append((ref, key, vocab))
    del _CACHE[:-_CACHE_SIZE]
    return vocab
